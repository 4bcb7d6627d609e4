//! Accounts, sessions, user-bound API tokens and the audit log. Secrets arrive here already
//! hashed: this layer never sees a password, a session id or a token.

use super::{db, Db, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// An account as stored.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct AccountRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub role: String,
    pub scope_code: Option<String>,
    pub department: Option<String>,
    pub must_change_password: bool,
    pub created_at: DateTime<Utc>,
    pub disabled_at: Option<DateTime<Utc>>,
}

/// An account to create; `password_hash` is an Argon2id PHC string.
#[derive(Debug, Clone)]
pub struct NewAccount<'a> {
    pub username: &'a str,
    pub display_name: &'a str,
    pub role: &'a str,
    pub scope_code: Option<&'a str>,
    pub department: Option<&'a str>,
    pub password_hash: &'a str,
    pub must_change_password: bool,
}

/// An audit entry to write.
#[derive(Debug, Clone, Copy)]
pub struct AuditEntry<'a> {
    pub account_id: Option<i64>,
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: &'a str,
    pub detail: &'a serde_json::Value,
}

/// Writes `entry` on `conn`: inside a change's own transaction, the line and the change commit
/// or fail together.
pub async fn write_audit(conn: &mut sqlx::PgConnection, entry: &AuditEntry<'_>) -> Result<()> {
    sqlx::query(
        "insert into audit_event (account_id, actor, action, subject, detail)
         values ($1, $2, $3, $4, $5)",
    )
    .bind(entry.account_id)
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.subject)
    .bind(entry.detail)
    .execute(conn)
    .await
    .map_err(db("writing the audit log"))?;
    Ok(())
}

/// One audit entry.
#[derive(Debug, Clone, sqlx::FromRow, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject: String,
    pub detail: serde_json::Value,
}

const ACCOUNT_COLUMNS: &str = "a.id, a.username, a.display_name, a.role, a.scope_code, \
     a.department, a.must_change_password, a.created_at, a.disabled_at";

/// An API key or token as `gridwatch apikey list` shows it (never the key).
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ApiClientRow {
    pub id: i64,
    pub name: String,
    /// `reports` or `sms_gateway` ([`crate::access::ClientPurpose`])
    pub purpose: String,
    /// the user a token acts for; none: a machine client's key
    pub username: Option<String>,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub revoked_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Db {
    pub async fn account_count(&self) -> Result<i64> {
        sqlx::query_scalar("select count(*) from account")
            .fetch_one(&self.pool)
            .await
            .map_err(db("counting accounts"))
    }

    /// Creates an account; a taken username is a unique violation of `account_username_key`.
    pub async fn add_account(&self, a: &NewAccount<'_>) -> Result<i64> {
        sqlx::query_scalar(
            "insert into account (username, display_name, role, scope_code, department,
                                  password_hash, must_change_password)
             values ($1, $2, $3, $4, $5, $6, $7) returning id",
        )
        .bind(a.username)
        .bind(a.display_name)
        .bind(a.role)
        .bind(a.scope_code)
        .bind(a.department)
        .bind(a.password_hash)
        .bind(a.must_change_password)
        .fetch_one(&self.pool)
        .await
        .map_err(db("adding an account"))
    }

    pub async fn accounts(&self) -> Result<Vec<AccountRow>> {
        sqlx::query_as(&format!(
            "select {ACCOUNT_COLUMNS} from account a order by a.username"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing accounts"))
    }

    /// An account and its password hash, by username (disabled ones too).
    pub async fn account_for_login(&self, username: &str) -> Result<Option<(AccountRow, String)>> {
        let row: Option<(i64, String)> =
            sqlx::query_as("select id, password_hash from account where username = $1")
                .bind(username)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("looking up an account"))?;
        let Some((id, hash)) = row else {
            return Ok(None);
        };
        Ok(self.account(id).await?.map(|a| (a, hash)))
    }

    pub async fn account(&self, id: i64) -> Result<Option<AccountRow>> {
        sqlx::query_as(&format!(
            "select {ACCOUNT_COLUMNS} from account a where a.id = $1"
        ))
        .bind(id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("loading an account"))
    }

    /// Disables an account, ends its sessions and revokes its tokens. False: no such user.
    pub async fn disable_account(&self, username: &str) -> Result<bool> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(db("disabling an account"))?;
        let id: Option<i64> = sqlx::query_scalar(
            "update account set disabled_at = coalesce(disabled_at, now())
             where username = $1 returning id",
        )
        .bind(username)
        .fetch_optional(&mut *tx)
        .await
        .map_err(db("disabling an account"))?;
        let Some(id) = id else {
            return Ok(false);
        };
        sqlx::query("delete from account_session where account_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await
            .map_err(db("ending a disabled account's sessions"))?;
        sqlx::query(
            "update api_client set revoked_at = coalesce(revoked_at, now()) where account_id = $1",
        )
        .bind(id)
        .execute(&mut *tx)
        .await
        .map_err(db("revoking a disabled account's tokens"))?;
        tx.commit().await.map_err(db("disabling an account"))?;
        Ok(true)
    }

    /// Sets a password hash; ends the account's other sessions (all but `keep_session`).
    pub async fn set_password(
        &self,
        account_id: i64,
        password_hash: &str,
        must_change: bool,
        keep_session: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await.map_err(db("setting a password"))?;
        sqlx::query(
            "update account set password_hash = $2, must_change_password = $3 where id = $1",
        )
        .bind(account_id)
        .bind(password_hash)
        .bind(must_change)
        .execute(&mut *tx)
        .await
        .map_err(db("setting a password"))?;
        sqlx::query(
            "delete from account_session where account_id = $1 and id_sha256 is distinct from $2",
        )
        .bind(account_id)
        .bind(keep_session)
        .execute(&mut *tx)
        .await
        .map_err(db("ending sessions after a password change"))?;
        tx.commit().await.map_err(db("setting a password"))
    }

    pub async fn add_session(
        &self,
        id_sha256: &str,
        account_id: i64,
        expires_at: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query(
            "insert into account_session (id_sha256, account_id, expires_at) values ($1, $2, $3)",
        )
        .bind(id_sha256)
        .bind(account_id)
        .bind(expires_at)
        .execute(&self.pool)
        .await
        .map_err(db("starting a session"))?;
        Ok(())
    }

    /// The enabled account of a session that has not expired at `now`.
    pub async fn session_account(
        &self,
        id_sha256: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<AccountRow>> {
        sqlx::query_as(&format!(
            "select {ACCOUNT_COLUMNS} from account_session s join account a on a.id = s.account_id
             where s.id_sha256 = $1 and s.expires_at > $2 and a.disabled_at is null"
        ))
        .bind(id_sha256)
        .bind(now)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up a session"))
    }

    pub async fn end_session(&self, id_sha256: &str) -> Result<()> {
        sqlx::query("delete from account_session where id_sha256 = $1 or expires_at < now()")
            .bind(id_sha256)
            .execute(&self.pool)
            .await
            .map_err(db("ending a session"))?;
        Ok(())
    }

    /// The client of an unrevoked API key and the enabled account it acts for. A key whose
    /// account is disabled is not found.
    pub async fn token_client(
        &self,
        key_sha256: &str,
    ) -> Result<Option<(i64, String, String, Option<AccountRow>)>> {
        let row: Option<(i64, String, String, Option<i64>)> = sqlx::query_as(
            "select c.id, c.name, c.purpose, c.account_id from api_client c
             left join account a on a.id = c.account_id
             where c.key_sha256 = $1 and c.revoked_at is null
               and (c.account_id is null or a.disabled_at is null)",
        )
        .bind(key_sha256)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("looking up an API token"))?;
        let Some((id, name, purpose, account_id)) = row else {
            return Ok(None);
        };
        let account = match account_id {
            Some(a) => self.account(a).await?,
            None => None,
        };
        Ok(Some((id, name, purpose, account)))
    }

    /// Registers a token acting for `account_id` (its hash). Returns the client id.
    pub async fn add_user_token(
        &self,
        account_id: i64,
        name: &str,
        key_sha256: &str,
    ) -> Result<i64> {
        sqlx::query_scalar(
            "insert into api_client (name, key_sha256, account_id) values ($1, $2, $3) returning id",
        )
        .bind(name)
        .bind(key_sha256)
        .bind(account_id)
        .fetch_one(&self.pool)
        .await
        .map_err(db("adding an API token"))
    }

    /// Every API key and user token, oldest first.
    pub async fn api_clients(&self) -> Result<Vec<ApiClientRow>> {
        sqlx::query_as(
            "select k.id, k.name, k.purpose, a.username, k.created_at, k.revoked_at
               from api_client k left join account a on a.id = k.account_id
              order by k.id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing API keys"))
    }

    /// Revokes a key by name. Returns how many were revoked.
    pub async fn revoke_api_client(&self, name: &str) -> Result<u64> {
        sqlx::query(
            "update api_client set revoked_at = now() where name = $1 and revoked_at is null",
        )
        .bind(name)
        .execute(&self.pool)
        .await
        .map(|r| r.rows_affected())
        .map_err(db("revoking an API key"))
    }

    pub async fn audit(&self, entry: &AuditEntry<'_>) -> Result<()> {
        let mut conn = self
            .pool
            .acquire()
            .await
            .map_err(db("writing the audit log"))?;
        write_audit(&mut conn, entry).await
    }

    /// Audit entries newest first, optionally about one subject or by one actor.
    pub async fn audit_events(
        &self,
        subject: Option<&str>,
        actor: Option<&str>,
        limit: i64,
    ) -> Result<Vec<AuditRow>> {
        sqlx::query_as(
            "select id, at, actor, action, subject, detail from audit_event
             where ($1::text is null or subject = $1) and ($2::text is null or actor = $2)
             order by id desc limit $3",
        )
        .bind(subject)
        .bind(actor)
        .bind(limit)
        .fetch_all(&self.pool)
        .await
        .map_err(db("reading the audit log"))
    }

    /// Where a case is and which departments it involves (lead, assisting, whistled).
    pub async fn case_placement(&self, case_id: i64) -> Result<Option<crate::access::Placement>> {
        let row: Option<(Option<String>, Vec<String>)> = sqlx::query_as(
            "select coalesce(c.micro_grid_code, c.grid_code, c.community_code, c.street_code, c.district_code),
                    array(select d from unnest(array_append(c.co_departments, c.lead_department)) d
                          where d is not null
                          union select w.department from case_whistle w where w.case_id = c.id)
             from dispatch_case c where c.id = $1",
        )
        .bind(case_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("placing a case"))?;
        Ok(row.map(|(region, departments)| crate::access::Placement {
            region,
            departments,
        }))
    }

    /// The case of a report, if it has one.
    pub async fn case_id_of_report(&self, report_id: i64) -> Result<Option<i64>> {
        sqlx::query_scalar("select id from dispatch_case where report_id = $1")
            .bind(report_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("finding a report's case"))
    }

    /// Where a report is (its deepest region code), if it exists: `Some(None)` when outside
    /// every region.
    pub async fn report_placement(&self, report_id: i64) -> Result<Option<Option<String>>> {
        sqlx::query_scalar(
            "select coalesce(micro_grid_code, grid_code, community_code, street_code, district_code)
             from report where id = $1",
        )
        .bind(report_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("placing a report"))
    }

    /// The report a photo belongs to (`None`: not attached yet).
    pub async fn photo_report(&self, photo_id: &str) -> Result<Option<Option<i64>>> {
        sqlx::query_scalar(
            "select (select r.report_id from report_photo r where r.photo_id = p.id)
             from photo p where p.id = $1",
        )
        .bind(photo_id)
        .fetch_optional(&self.pool)
        .await
        .map_err(db("finding a photo's report"))
    }
}
