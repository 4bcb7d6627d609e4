//! Accounts as use cases: adding users (checked against the region registry and the
//! departments), logging in, sessions, user-bound API tokens, the first admin, the demo users,
//! and writing the audit log.

use super::{Gridwatch, Result, WorkflowError};
use crate::access::credentials::Credential;
use crate::access::password::{
    check_new_password, dummy_hash, hash_password, one_time_password, random_secret, sha256_hex,
    verify_password,
};
use crate::access::{check_username, AccountError, Caller, ClientPurpose, Principal, Role};
use crate::domain::GridCode;
use crate::storage::accounts::{AccountRow, AuditEntry, NewAccount};
use chrono::{DateTime, Duration, Utc};
use std::time::Instant;

/// How long a browser session lasts.
pub const SESSION_HOURS: i64 = 12;

/// The password of every demo user (README lists them).
pub const DEMO_PASSWORD: &str = "gridwatch-demo";

/// A demo user: username, the name shown in histories, role, region scope, department.
#[derive(Debug, Clone, Copy)]
pub struct DemoUser {
    pub username: &'static str,
    pub display_name: &'static str,
    pub role: Role,
    pub scope: Option<&'static str>,
    pub department: Option<&'static str>,
}

/// The demo's users, one per role (README lists them).
pub const DEMO_USERS: [DemoUser; 8] = [
    DemoUser {
        username: "admin",
        display_name: "系统管理员",
        role: Role::Admin,
        scope: None,
        department: None,
    },
    DemoUser {
        username: "diaodu",
        display_name: "王敏（区综治中心调度员）",
        role: Role::Dispatcher,
        scope: None,
        department: None,
    },
    DemoUser {
        username: "xinhua",
        display_name: "李娜（新华街道党工委书记）",
        role: Role::StreetLeader,
        scope: Some("150302001"),
        department: None,
    },
    DemoUser {
        username: "kangle",
        display_name: "张伟（康乐社区党委书记）",
        role: Role::CommunityLeader,
        scope: Some("150302001001"),
        department: None,
    },
    DemoUser {
        username: "guihua",
        display_name: "赵磊（海勃湾区网格规划员）",
        role: Role::Planner,
        scope: Some("150302"),
        department: None,
    },
    DemoUser {
        username: "wanggeyuan",
        display_name: "刘洋（康乐社区第1网格网格员）",
        role: Role::GridWorker,
        scope: Some("150302001001001"),
        department: None,
    },
    DemoUser {
        username: "chengguan",
        display_name: "陈刚（城市管理综合执法局）",
        role: Role::Responder,
        scope: None,
        department: Some("urban_management"),
    },
    DemoUser {
        username: "guancha",
        display_name: "孙丽（只读）",
        role: Role::Viewer,
        scope: None,
        department: None,
    },
];

/// A user to add.
#[derive(Debug, Clone)]
pub struct NewUser {
    pub username: String,
    pub display_name: Option<String>,
    pub role: Role,
    pub scope: Option<String>,
    pub department: Option<String>,
    /// none: a one-time password is generated, returned once, and must be changed at first login
    pub password: Option<String>,
}

/// Why a login failed. Deliberately one message: the caller is not told whether the username
/// exists.
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    #[error("wrong username or password")]
    Wrong,
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
}

fn invalid(e: AccountError) -> WorkflowError {
    WorkflowError::invalid(e.field, e.message)
}

/// A principal from its stored account; a row the checks of today would refuse is an error.
pub fn principal(row: &AccountRow) -> Result<Principal> {
    let role = Role::parse(&row.role).map_err(invalid)?;
    let scope = row
        .scope_code
        .as_deref()
        .map(GridCode::parse)
        .transpose()
        .map_err(|e| WorkflowError::invalid("scope", e.to_string()))?;
    Ok(Principal {
        account_id: row.id,
        username: row.username.clone(),
        display_name: row.display_name.clone(),
        role,
        scope,
        department: row.department.clone(),
        must_change_password: row.must_change_password,
    })
}

async fn hash(password: String) -> Result<String> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| WorkflowError::Unavailable(format!("password hashing stopped: {e}")))?
        .map_err(|e| WorkflowError::Unavailable(format!("password hashing failed: {e}")))
}

async fn verify(password: String, stored: String) -> bool {
    tokio::task::spawn_blocking(move || verify_password(&password, &stored))
        .await
        .unwrap_or(false)
}

impl Gridwatch {
    /// Adds a user. Returns the account and, when no password was given, the one-time password.
    pub async fn add_user(&self, user: NewUser) -> Result<(AccountRow, Option<String>)> {
        check_username(&user.username).map_err(invalid)?;
        let scope = user
            .scope
            .as_deref()
            .map(|s| GridCode::parse(s).map_err(|e| WorkflowError::invalid("scope", e.to_string())))
            .transpose()?;
        Principal::check(user.role, scope.as_ref(), user.department.as_deref()).map_err(invalid)?;
        if let Some(code) = &scope {
            if self.index().get(code.as_str()).is_none() {
                return Err(WorkflowError::invalid(
                    "scope",
                    format!("no region with code {code}"),
                ));
            }
        }
        if let Some(d) = &user.department {
            let known: Vec<String> = self.departments().into_iter().map(|d| d.code).collect();
            if !known.contains(d) {
                return Err(WorkflowError::invalid(
                    "department",
                    format!(
                        "unknown department {d:?}: expected one of {}",
                        known.join(", ")
                    ),
                ));
            }
        }
        let (password, one_time) = match user.password {
            Some(p) => {
                check_new_password(&p).map_err(|m| WorkflowError::invalid("password", m))?;
                (p, None)
            }
            None => {
                let p = one_time_password();
                (p.clone(), Some(p))
            }
        };
        let display_name = user
            .display_name
            .filter(|d| !d.trim().is_empty())
            .unwrap_or_else(|| user.username.clone());
        let password_hash = hash(password).await?;
        let id = self
            .db
            .add_account(&NewAccount {
                username: &user.username,
                display_name: display_name.trim(),
                role: user.role.as_str(),
                scope_code: scope.as_ref().map(|c| c.as_str()),
                department: user.department.as_deref(),
                password_hash: &password_hash,
                must_change_password: one_time.is_some(),
            })
            .await
            .map_err(|e| {
                if e.is_unique_violation("account_username_key") {
                    WorkflowError::Conflict(format!("the username {:?} is taken", user.username))
                } else {
                    e.into()
                }
            })?;
        let row = self
            .db
            .account(id)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("account {id} vanished")))?;
        Ok((row, one_time))
    }

    /// On a database without accounts, creates `admin` with a one-time password and returns it.
    pub async fn ensure_first_admin(&self) -> Result<Option<String>> {
        if self.db.account_count().await? > 0 {
            return Ok(None);
        }
        let (_, password) = self
            .add_user(NewUser {
                username: "admin".into(),
                display_name: Some("系统管理员".into()),
                role: Role::Admin,
                scope: None,
                department: None,
                password: None,
            })
            .await?;
        Ok(password)
    }

    /// Adds the demo users that do not exist yet, all with [`DEMO_PASSWORD`]. Returns how many.
    pub async fn load_demo_users(&self) -> Result<usize> {
        let existing: Vec<String> = self
            .db
            .accounts()
            .await?
            .into_iter()
            .map(|a| a.username)
            .collect();
        let mut added = 0;
        for u in DEMO_USERS {
            if existing.iter().any(|e| e == u.username) {
                continue;
            }
            self.add_user(NewUser {
                username: u.username.into(),
                display_name: Some(u.display_name.into()),
                role: u.role,
                scope: u.scope.map(str::to_owned),
                department: u.department.map(str::to_owned),
                password: Some(DEMO_PASSWORD.into()),
            })
            .await?;
            added += 1;
        }
        Ok(added)
    }

    /// Checks a username and password; on success starts a session and returns its id (the
    /// cookie's value) and the principal. A wrong username costs as long as a wrong password.
    pub async fn log_in(
        &self,
        username: &str,
        password: &str,
        now: DateTime<Utc>,
    ) -> std::result::Result<(String, Principal), LoginError> {
        let found = self
            .db
            .account_for_login(username)
            .await
            .map_err(WorkflowError::from)?;
        let Some((row, stored)) = found else {
            verify(password.to_owned(), dummy_hash().to_owned()).await;
            return Err(LoginError::Wrong);
        };
        if !verify(password.to_owned(), stored).await || row.disabled_at.is_some() {
            return Err(LoginError::Wrong);
        }
        let principal = principal(&row)?;
        let session = random_secret(32);
        self.db
            .add_session(
                &sha256_hex(&session),
                row.id,
                now + Duration::hours(SESSION_HOURS),
            )
            .await
            .map_err(WorkflowError::from)?;
        Ok((session, principal))
    }

    /// What `look_up` (the database) says the credential hashing to `hash` stands for, or what it
    /// said in the last seconds ([`crate::access::credentials`]).
    async fn remembered(
        &self,
        kind: Credential,
        hash: String,
        look_up: impl std::future::Future<Output = Result<Option<Caller>>>,
    ) -> Result<Option<Caller>> {
        let started = Instant::now();
        if let Some(c) = self.credentials.get(kind, &hash, started) {
            return Ok(Some(c));
        }
        // read before asking, so an answer older than a drop is not remembered
        let generation = self.credentials.generation();
        let found = look_up.await?;
        if let Some(c) = &found {
            self.credentials
                .insert(kind, hash, c.clone(), generation, started);
        }
        Ok(found)
    }

    /// The user of a live session id; remembered for seconds.
    pub async fn session_principal(&self, session: &str) -> Result<Option<Principal>> {
        let hash = sha256_hex(session);
        let look_up = async {
            match self.db.session_account(&hash, Utc::now()).await? {
                Some(row) => Ok(Some(Caller::User(principal(&row)?))),
                None => Ok(None),
            }
        };
        Ok(
            match self
                .remembered(Credential::Session, hash.clone(), look_up)
                .await?
            {
                Some(Caller::User(p)) => Some(p),
                _ => None,
            },
        )
    }

    pub async fn log_out(&self, session: &str) -> Result<()> {
        let ended = self.db.end_session(&sha256_hex(session)).await;
        self.credentials.invalidate_all();
        Ok(ended?)
    }

    /// Disables a user: ends their sessions and revokes their tokens, in this process at once.
    /// `false`: no such user.
    pub async fn disable_user(&self, username: &str) -> Result<bool> {
        let disabled = self.db.disable_account(username).await;
        self.credentials.invalidate_all();
        Ok(disabled?)
    }

    /// The caller an API token stands for: its user, or a bare client. `None`: unknown or revoked.
    /// Remembered for seconds like sessions.
    pub async fn token_caller(&self, token: &str) -> Result<Option<Caller>> {
        let hash = sha256_hex(token);
        let look_up = async {
            Ok(match self.db.token_client(&hash).await? {
                None => None,
                // A token was issued on purpose by an admin: the one-time password rule is for
                // people logging in, not for the machine acting for the user.
                Some((_, _, _, Some(row))) => Some(Caller::User(Principal {
                    must_change_password: false,
                    ..principal(&row)?
                })),
                Some((id, name, purpose, None)) => Some(Caller::Client {
                    id,
                    name,
                    purpose: ClientPurpose::parse(&purpose).ok_or_else(|| {
                        WorkflowError::Unavailable(format!("API key {id} has no known purpose"))
                    })?,
                }),
            })
        };
        self.remembered(Credential::Token, hash.clone(), look_up)
            .await
    }

    /// Changes a user's password after checking the current one; ends their other sessions.
    pub async fn change_password(
        &self,
        principal: &Principal,
        current: &str,
        new: &str,
        session: Option<&str>,
    ) -> Result<()> {
        let (_, stored) = self
            .db
            .account_for_login(&principal.username)
            .await?
            .ok_or_else(|| WorkflowError::NotFound("your account no longer exists".into()))?;
        if !verify(current.to_owned(), stored).await {
            return Err(WorkflowError::invalid(
                "current_password",
                "is not your current password",
            ));
        }
        check_new_password(new).map_err(|m| WorkflowError::invalid("new_password", m))?;
        if new == current {
            return Err(WorkflowError::invalid(
                "new_password",
                "is the same as the current one",
            ));
        }
        let h = hash(new.to_owned()).await?;
        let keep = session.map(sha256_hex);
        let set = self
            .db
            .set_password(principal.account_id, &h, false, keep.as_deref())
            .await;
        self.credentials.invalidate_all();
        Ok(set?)
    }

    /// Creates an API token acting for `username`; returns the token (only its hash is kept).
    pub async fn add_user_token(&self, username: &str, name: &str) -> Result<String> {
        let (row, _) = self
            .db
            .account_for_login(username)
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no user {username:?}")))?;
        if row.disabled_at.is_some() {
            return Err(WorkflowError::Conflict(format!(
                "the user {username:?} is disabled"
            )));
        }
        if name.trim().is_empty() {
            return Err(WorkflowError::invalid("name", "is required"));
        }
        let token = format!("gw_{}", random_secret(30));
        self.db
            .add_user_token(row.id, name.trim(), &sha256_hex(&token))
            .await?;
        Ok(token)
    }

    /// Writes one audit entry for `caller`.
    pub async fn audit(
        &self,
        caller: &Caller,
        action: &str,
        subject: &str,
        detail: serde_json::Value,
    ) -> Result<()> {
        Ok(self
            .db
            .audit(&AuditEntry {
                account_id: caller.principal().map(|p| p.account_id),
                actor: &caller.actor(),
                action,
                subject,
                detail: &detail,
            })
            .await?)
    }
}
