-- Credentials are remembered for seconds by each serving process (access/credentials.rs). Any
-- update or delete of an account, a session or an API key tells every listening process to forget
-- them at once, whichever process made the change: the service, `gridwatch users disable`, a
-- script. New rows need no notice: unknown credentials are never remembered.
create function gridwatch_notify_accounts() returns trigger language plpgsql as $$
begin
    perform pg_notify('gridwatch_accounts', tg_table_name);
    return null;
end $$;

create trigger account_changes after update or delete on account
    for each statement execute function gridwatch_notify_accounts();
create trigger account_session_changes after update or delete on account_session
    for each statement execute function gridwatch_notify_accounts();
create trigger api_client_changes after update or delete on api_client
    for each statement execute function gridwatch_notify_accounts();
