//! The SMS gateway's delivery receipts for the notices the courier handed it.

use super::error::ApiResult;
use super::extract::json_body;
use super::AppState;
use crate::storage::dispatch::ReceiptOutcome;
use crate::workflow::courier::ReceiptInput;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::Json;

/// `POST /notices/{id}/receipt`, with a key made by `gridwatch apikey create NAME --purpose
/// sms-gateway` (no person's session or token may post one).
#[utoipa::path(
    post,
    path = "/api/v1/notices/{id}/receipt",
    operation_id = "notices_receipt",
    tag = "dispatch",
    summary = "The SMS gateway's delivery receipt for a notice (its key only); a failed one sends the notice again",
    params(("id" = String, Path, description = "the notice id (the webhook's `id` and Idempotency-Key)")),
    request_body = ReceiptInput,
    responses(
        (status = 200, description = "recorded; the notice as it now stands", body = ReceiptOutcome),
        (status = 404, description = "no such notice", body = crate::http::error::ErrorBody),
        (status = 413, description = "body too large", body = crate::http::error::ErrorBody),
        (status = 422, description = "a value is wrong; `field` names it", body = crate::http::error::ErrorBody)
    )
)]
pub(super) async fn receipt(
    State(s): State<AppState>,
    Path(id): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<ReceiptOutcome>> {
    let input: ReceiptInput = json_body(body)?;
    Ok(Json(s.gw.notice_receipt(&id, &input).await?))
}
