//! Use cases: importing regions, locating points and filing reports. Owns the live region
//! index and swaps it whole when the regions change, so a reader never sees half an update.

pub mod accounts;
pub mod clock;
pub mod courier;
pub mod dispatch;
pub mod group_commit;
pub mod import;
pub mod intake;
pub mod open311;
pub mod photos;
pub mod redraw;
pub mod report_import;
pub mod scheduler;
pub mod tiles;

use crate::domain::case::IllegalTransition;
use crate::domain::routing::RoutingRule;
use crate::domain::Problem;
use crate::spatial::RegionIndex;
use crate::storage::dispatch::Department;
use crate::storage::reports::Category;
use crate::storage::{Db, StorageError};
use clock::Clock;
use dispatch::{CaseChange, NoticeConfig};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use tokio::sync::{broadcast, Notify};

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A request field is wrong; `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The thing the request is about does not exist.
    #[error("{0}")]
    NotFound(String),
    /// The case's state does not allow the action; nothing was written.
    #[error(transparent)]
    Illegal(IllegalTransition),
    /// The request conflicts with what exists (e.g. a rule for the same scope).
    #[error("{0}")]
    Conflict(String),
    /// An import was refused; nothing was written.
    #[error("{} problem(s) in the import", .0.len())]
    Rejected(Vec<Problem>),
    /// An upload is larger than accepted.
    #[error("{0}")]
    TooLarge(String),
    /// An upload is of a type not accepted.
    #[error("{0}")]
    Unsupported(String),
    /// Something the service needs (the photo directory) does not work; nothing was kept.
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Storage(#[from] StorageError),
}

impl WorkflowError {
    pub fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        WorkflowError::Invalid {
            field: field.into(),
            message: message.into(),
        }
    }
}

pub type Result<T> = std::result::Result<T, WorkflowError>;

/// What a client is told when PostgreSQL cannot write for want of disk space.
pub const DATABASE_DISK_FULL: &str =
    "the database cannot write: its disk is full; nothing was saved — try again later";

/// The running service's core: the database and the in-memory state derived from it.
#[derive(Clone)]
pub struct Gridwatch {
    pub db: Db,
    index: Arc<RwLock<Arc<RegionIndex>>>,
    categories: Arc<RwLock<Arc<HashMap<String, Category>>>>,
    near_m: f64,
    pub clock: Clock,
    dispatch: Arc<DispatchCache>,
    notice_config: NoticeConfig,
    changes: broadcast::Sender<CaseChange>,
    /// woken when notices were written, so the courier delivers them at once
    notices_waiting: Arc<Notify>,
    intake: group_commit::GroupCommit,
    /// turns true when the service shuts down: long-lived streams end on it
    stop: Arc<tokio::sync::watch::Sender<bool>>,
    /// the photo directory
    photos: photos::PhotoStore,
    /// the secret under which a photo's uploader key is made ([`crate::access::password::photo_key`])
    photo_secret: Arc<str>,
    /// built vector tiles, dropped by area as reports and cases change (`tiles::follow_changes`)
    pub tiles: Arc<crate::tiles::cache::TileCache>,
    /// who sessions and tokens stand for, remembered for seconds (`access::credentials`)
    pub credentials: Arc<crate::access::credentials::CredentialCache>,
    /// what this process has taken in, for `/metrics`
    pub counters: Arc<Counters>,
}

/// Counts since the process started.
#[derive(Debug, Default)]
pub struct Counters {
    /// reports filed one by one or in batches (API, Open311, the snap-and-report page)
    pub reports_filed: std::sync::atomic::AtomicU64,
    /// reports loaded by `reports import`
    pub reports_imported: std::sync::atomic::AtomicU64,
}

/// Routing rules and departments, read on every report: swapped whole like the index.
#[derive(Default)]
struct DispatchCache {
    rules: RwLock<Arc<Vec<RoutingRule>>>,
    departments: RwLock<Arc<HashMap<String, Department>>>,
}

impl DispatchCache {
    fn rules(&self) -> Arc<Vec<RoutingRule>> {
        self.rules.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn departments(&self) -> Arc<HashMap<String, Department>> {
        self.departments
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, rules: Vec<RoutingRule>, departments: HashMap<String, Department>) {
        *self.rules.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(rules);
        *self.departments.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(departments);
    }
}

impl Gridwatch {
    /// Loads the region index and the category catalogue from the database.
    pub async fn open(db: Db, near_m: f64) -> Result<Self> {
        let gw = Gridwatch {
            db: db.clone(),
            index: Arc::new(RwLock::new(Arc::new(RegionIndex::new(Vec::new(), near_m)))),
            categories: Arc::new(RwLock::new(Arc::new(HashMap::new()))),
            near_m,
            clock: Clock::system(),
            dispatch: Arc::new(DispatchCache::default()),
            notice_config: NoticeConfig::default(),
            changes: broadcast::channel(1024).0,
            notices_waiting: Arc::new(Notify::new()),
            intake: group_commit::GroupCommit::start(db.clone()),
            stop: Arc::new(tokio::sync::watch::channel(false).0),
            photos: photos::PhotoStore::new(std::env::temp_dir().join("gridwatch-photos")),
            photo_secret: db
                .meta_or_insert(
                    "photo_key_secret",
                    &crate::access::password::random_secret(32),
                )
                .await?
                .into(),
            tiles: Arc::new(crate::tiles::cache::TileCache::new(tiles::CACHE_BYTES)),
            credentials: Arc::default(),
            counters: Arc::default(),
        };
        gw.reload().await?;
        gw.reload_dispatch().await?;
        Ok(gw)
    }

    /// The same service on another clock (tests and demos use a controllable one).
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The same service sending notices through `config`'s channels.
    pub fn with_notices(mut self, config: NoticeConfig) -> Self {
        self.notice_config = config;
        self
    }

    /// The same service keeping report photos in `dir` (created when needed).
    pub fn with_photo_dir(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.photos = photos::PhotoStore::new(dir);
        self
    }

    pub fn notice_config(&self) -> &NoticeConfig {
        &self.notice_config
    }

    /// Tells long-lived work (the console's streams, the scheduler, the courier) to finish.
    pub fn shut_down(&self) {
        self.stop.send_replace(true);
    }

    /// Turns true at [`Gridwatch::shut_down`].
    pub fn stopping(&self) -> tokio::sync::watch::Receiver<bool> {
        self.stop.subscribe()
    }

    /// Case changes as they happen, for the console's live stream.
    pub fn subscribe(&self) -> broadcast::Receiver<CaseChange> {
        self.changes.subscribe()
    }

    /// The current index; cheap to call per request (an `Arc` clone).
    pub fn index(&self) -> Arc<RegionIndex> {
        match self.index.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    pub fn categories(&self) -> Arc<HashMap<String, Category>> {
        match self.categories.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Rebuilds the index from the current boundaries and swaps it in atomically.
    pub async fn reload(&self) -> Result<()> {
        let records = self.db.current_regions().await?;
        let near_m = self.near_m;
        let index = tokio::task::spawn_blocking(move || RegionIndex::new(records, near_m))
            .await
            .map_err(|e| WorkflowError::invalid("index", format!("index build failed: {e}")))?;
        let categories: HashMap<String, Category> = self
            .db
            .categories()
            .await?
            .into_iter()
            .map(|c| (c.code.clone(), c))
            .collect();
        tracing::info!(regions = index.len(), "region index loaded");
        *self.index.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(index);
        *self.categories.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(categories);
        Ok(())
    }
}
