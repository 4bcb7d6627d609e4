//! Group commit for intake: reports filed at the same moment by different requests are written
//! by one statement and one durable commit, and each request is answered only after that commit.
//! A lone report waits for nothing (the writers take only what is queued already); under load,
//! concurrent reports share the cost of the commit. If a shared write fails, each request's
//! reports are written again on their own, so one request's bad row never fails another's.

use super::{Result, WorkflowError};
use crate::storage::dispatch::{NewCase, Route};
use crate::storage::reports::NewReport;
use crate::storage::Db;
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot, Mutex};

/// Writers collecting and committing batches at once: one commits while the next collects.
pub const WRITERS: usize = 4;
/// Most reports written by one statement.
pub const MAX_BATCH: usize = 512;

type Reply = oneshot::Sender<std::result::Result<Vec<(i64, i64)>, crate::storage::StorageError>>;

struct Job {
    items: Vec<(NewReport, NewCase)>,
    route: Route,
    reply: Reply,
}

/// The queue in front of the writers. Cheap to clone; the writers stop when every clone is gone.
#[derive(Clone)]
pub struct GroupCommit {
    tx: mpsc::Sender<Job>,
}

impl GroupCommit {
    /// Starts the writers on the current tokio runtime.
    pub fn start(db: Db) -> Self {
        let (tx, rx) = mpsc::channel::<Job>(4096);
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..WRITERS {
            tokio::spawn(writer(db.clone(), rx.clone()));
        }
        GroupCommit { tx }
    }

    /// Writes `items` (with their cases) durably, possibly together with other requests' items;
    /// returns (report id, case id) in input order.
    pub async fn file(
        &self,
        items: Vec<(NewReport, NewCase)>,
        route: Route,
    ) -> Result<Vec<(i64, i64)>> {
        let (reply, answer) = oneshot::channel();
        let gone = || WorkflowError::invalid("report", "the intake writer stopped; try again");
        self.tx
            .send(Job {
                items,
                route,
                reply,
            })
            .await
            .map_err(|_| gone())?;
        Ok(answer.await.map_err(|_| gone())??)
    }
}

async fn writer(db: Db, rx: Arc<Mutex<mpsc::Receiver<Job>>>) {
    loop {
        let mut jobs = Vec::new();
        {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut n = first.items.len();
            jobs.push(first);
            while n < MAX_BATCH {
                match rx.try_recv() {
                    Ok(job) => {
                        n += job.items.len();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
        }
        write(&db, jobs).await;
    }
}

async fn write(db: &Db, jobs: Vec<Job>) {
    if jobs.len() == 1 {
        for job in jobs {
            let result = db
                .file_reports(&job.items, &vec![job.route.clone(); job.items.len()])
                .await;
            let _ = job.reply.send(result);
        }
        return;
    }
    let mut items = Vec::new();
    let mut routes = Vec::new();
    for job in &jobs {
        items.extend(job.items.iter().cloned());
        routes.extend(std::iter::repeat_n(job.route.clone(), job.items.len()));
    }
    match db.file_reports(&items, &routes).await {
        Ok(ids) => {
            let mut ids = ids.into_iter();
            for job in jobs {
                let mine: Vec<(i64, i64)> = ids.by_ref().take(job.items.len()).collect();
                let _ = job.reply.send(Ok(mine));
            }
        }
        Err(e) => {
            tracing::warn!("a shared intake write failed ({e}); writing its requests one by one");
            for job in jobs {
                let result = db
                    .file_reports(&job.items, &vec![job.route.clone(); job.items.len()])
                    .await;
                let _ = job.reply.send(result);
            }
        }
    }
}
