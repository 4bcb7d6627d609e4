//! The courier: delivers the outbox's notices through their channels — the log, or a webhook
//! (HTTP POST, for an SMS gateway or the supervision platform). Delivery is at least once: a
//! notice is leased, sent, then marked delivered; if the process dies in between, the lease
//! runs out and it is sent again, so receivers deduplicate by the notice id (also sent as the
//! `Idempotency-Key` header). A failure is retried with doubling delays.

use super::dispatch::retry_delay;
use super::{Gridwatch, Result, WorkflowError};
use crate::storage::dispatch::{PendingNotice, ReceiptOutcome};
use chrono::Duration;
use serde_json::json;
use tokio::sync::watch;

/// How long a claimed notice is reserved for its deliverer.
pub const LEASE: Duration = Duration::seconds(60);
/// Notices claimed at once.
pub const BATCH: i64 = 64;
const WEBHOOK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);
/// Failed delivery receipts after which a notice is not sent again (people follow it up).
pub const MAX_RECEIPT_FAILURES: i32 = 3;
/// Longest reason a receipt may carry.
pub const MAX_RECEIPT_DETAIL: usize = 500;

/// The body of `POST /notices/{id}/receipt`: what the SMS gateway knows of a text it was handed.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"status": "failed", "detail": "handset unreachable"}))]
pub struct ReceiptInput {
    /// `delivered` (it reached the phone) or `failed` (it did not)
    pub status: String,
    /// the gateway's reason or reference, at most 500 characters
    #[serde(default)]
    pub detail: Option<String>,
}

/// The delivery channels. Cheap to clone.
#[derive(Clone)]
pub struct Courier {
    http: reqwest::Client,
}

impl Default for Courier {
    fn default() -> Self {
        Courier::new()
    }
}

impl Courier {
    pub fn new() -> Self {
        let http = reqwest::Client::builder()
            .timeout(WEBHOOK_TIMEOUT)
            .user_agent(concat!("gridwatch/", env!("CARGO_PKG_VERSION")))
            .build()
            .unwrap_or_default();
        Courier { http }
    }

    /// Sends one notice; the error says why it did not arrive.
    pub async fn deliver(&self, n: &PendingNotice) -> std::result::Result<(), String> {
        match (n.channel.as_str(), &n.target) {
            ("log", _) => {
                tracing::info!(
                    target: "gridwatch::notice",
                    id = %n.id, kind = %n.kind, recipient = %n.recipient,
                    text = n.payload.get("text").and_then(|t| t.as_str()).unwrap_or_default(),
                    "notice"
                );
                Ok(())
            }
            ("webhook", Some(url)) => {
                let body = json!({
                    "id": n.id, "kind": n.kind, "case_id": n.case_id, "recipient": n.recipient,
                    "payload": n.payload, "created_at": n.created_at, "attempt": n.attempts,
                });
                let resp = self
                    .http
                    .post(url)
                    .header("idempotency-key", &n.id)
                    .json(&body)
                    .send()
                    .await
                    .map_err(|e| format!("POST {url}: {e}"))?;
                if resp.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("POST {url}: HTTP {}", resp.status()))
                }
            }
            (channel, _) => Err(format!("no channel {channel:?} with a target")),
        }
    }
}

impl Gridwatch {
    /// Delivers every notice that is due now; returns (delivered, failed).
    pub async fn deliver_notices(&self, courier: &Courier) -> Result<(usize, usize)> {
        self.deliver_notices_while(courier, || true).await
    }

    /// [`Gridwatch::deliver_notices`], batch by batch while `go_on()` says so: the courier stops
    /// between batches when the service shuts down, however long the backlog.
    async fn deliver_notices_while(
        &self,
        courier: &Courier,
        go_on: impl Fn() -> bool,
    ) -> Result<(usize, usize)> {
        let (mut ok, mut failed) = (0, 0);
        loop {
            if !go_on() {
                return Ok((ok, failed));
            }
            let batch = self
                .db
                .claim_notices(self.clock.now(), BATCH, LEASE)
                .await?;
            if batch.is_empty() {
                return Ok((ok, failed));
            }
            let mut sends = tokio::task::JoinSet::new();
            for n in batch {
                let courier = courier.clone();
                sends.spawn(async move {
                    let outcome = courier.deliver(&n).await;
                    (n, outcome)
                });
            }
            while let Some(joined) = sends.join_next().await {
                let Ok((n, outcome)) = joined else { continue };
                let now = self.clock.now();
                match outcome {
                    Ok(()) => {
                        self.db.notice_delivered(&n.id, now).await?;
                        ok += 1;
                    }
                    Err(e) => {
                        tracing::warn!(id = %n.id, attempt = n.attempts, "notice not delivered: {e}");
                        self.db
                            .notice_failed(&n.id, &e, now + retry_delay(n.attempts))
                            .await?;
                        failed += 1;
                    }
                }
            }
        }
    }
}

impl Gridwatch {
    /// Records the SMS gateway's receipt for notice `id`: a failed one sends the notice again
    /// (at most [`MAX_RECEIPT_FAILURES`] times), a delivered one settles it.
    pub async fn notice_receipt(&self, id: &str, input: &ReceiptInput) -> Result<ReceiptOutcome> {
        let delivered = match input.status.as_str() {
            "delivered" => true,
            "failed" => false,
            other => {
                return Err(WorkflowError::invalid(
                    "status",
                    format!("is delivered or failed, not {other:?}"),
                ))
            }
        };
        let detail = input
            .detail
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        if let Some(d) = detail {
            if d.chars().count() > MAX_RECEIPT_DETAIL {
                return Err(WorkflowError::invalid(
                    "detail",
                    format!("has at most {MAX_RECEIPT_DETAIL} characters"),
                ));
            }
            if d.contains('\0') {
                return Err(WorkflowError::invalid("detail", "contains a NUL character"));
            }
        }
        let outcome = self
            .db
            .notice_receipt(
                id,
                delivered,
                detail,
                self.clock.now(),
                MAX_RECEIPT_FAILURES,
            )
            .await?
            .ok_or_else(|| WorkflowError::NotFound(format!("no notice {id:?}")))?;
        if outcome.pending {
            self.notices_waiting.notify_one();
        }
        Ok(outcome)
    }
}

/// Runs until `stop` turns true; wakes when notices are written, else every second.
pub async fn run(gw: Gridwatch, mut stop: watch::Receiver<bool>) {
    let courier = Courier::new();
    loop {
        let delivered = gw.deliver_notices_while(&courier, || !*stop.borrow()).await;
        if let Err(e) = delivered {
            tracing::warn!("notice delivery failed, retrying: {e}");
        }
        tokio::select! {
            _ = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            _ = gw.notices_waiting.notified() => {}
            _ = gw.clock.advanced() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
    }
}
