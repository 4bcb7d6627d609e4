//! Use cases: importing regions, locating points and filing reports. Owns the live region
//! index and swaps it whole when the regions change, so a reader never sees half an update.

pub mod import;
pub mod intake;
pub mod redraw;

use crate::domain::Problem;
use crate::spatial::RegionIndex;
use crate::storage::reports::Category;
use crate::storage::{Db, StorageError};
use std::collections::HashMap;
use std::sync::{Arc, RwLock};

#[derive(Debug, thiserror::Error)]
pub enum WorkflowError {
    /// A request field is wrong; `field` names it.
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    /// The thing the request is about does not exist.
    #[error("{0}")]
    NotFound(String),
    /// An import was refused; nothing was written.
    #[error("{} problem(s) in the import", .0.len())]
    Rejected(Vec<Problem>),
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

/// The running service's core: the database and the in-memory state derived from it.
#[derive(Clone)]
pub struct Gridwatch {
    pub db: Db,
    index: Arc<RwLock<Arc<RegionIndex>>>,
    categories: Arc<RwLock<Arc<HashMap<String, Category>>>>,
    near_m: f64,
}

impl Gridwatch {
    /// Loads the region index and the category catalogue from the database.
    pub async fn open(db: Db, near_m: f64) -> Result<Self> {
        let gw = Gridwatch {
            db,
            index: Arc::new(RwLock::new(Arc::new(RegionIndex::new(Vec::new(), near_m)))),
            categories: Arc::new(RwLock::new(Arc::new(HashMap::new()))),
            near_m,
        };
        gw.reload().await?;
        Ok(gw)
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
