-- Delivery receipts from the SMS gateway, and what a machine client's key is for.
--
-- The courier hands a notice to the gateway's webhook; the gateway calls back once the text
-- reached the phone (or did not): POST /api/v1/notices/{id}/receipt with a key of purpose
-- 'sms_gateway'. A 'failed' receipt puts the notice back in the outbox, a few times at most.

alter table api_client add column purpose text not null default 'reports'
    check (purpose in ('reports', 'sms_gateway'));
-- a key tied to a user acts as that user; the purpose is for keys of no user
alter table api_client add constraint api_client_user_keys_file_reports
    check (account_id is null or purpose = 'reports');

alter table outbox add column receipt text check (receipt in ('delivered', 'failed'));
alter table outbox add column receipt_at timestamptz;
alter table outbox add column receipt_detail text check (length(receipt_detail) <= 500);
-- failed receipts so far; at the limit the notice is not sent again
alter table outbox add column receipt_failures integer not null default 0;
alter table outbox add constraint outbox_receipt_complete
    check ((receipt is null) = (receipt_at is null));
