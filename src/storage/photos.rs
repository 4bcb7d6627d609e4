//! Photo metadata (the images are files in the photo directory) and reporter details.

use super::{db, Db, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// A photo as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PhotoRow {
    pub id: String,
    #[serde(skip)]
    pub upload_sha256: String,
    pub upload_type: String,
    pub upload_bytes: i32,
    pub width: i32,
    pub height: i32,
    pub stored_bytes: i32,
    pub thumb_bytes: i32,
    pub exif_lon: Option<f64>,
    pub exif_lat: Option<f64>,
    pub taken_at: Option<DateTime<Utc>>,
    pub uploaded_at: DateTime<Utc>,
    /// the report it belongs to, once filed
    pub report_id: Option<i64>,
}

const PHOTO_SELECT: &str = "select p.*, rp.report_id from photo p
                              left join report_photo rp on rp.photo_id = p.id";

/// What a filed report's reporter told us: staff-only.
#[derive(Debug, Clone, Serialize, PartialEq, sqlx::FromRow, utoipa::ToSchema)]
pub struct Reporter {
    pub name: Option<String>,
    pub phone: Option<String>,
}

impl Db {
    /// Records a photo whose files are written already. When the same upload is known (the
    /// SHA-256 of its bytes), nothing is written and that photo is returned with `false`.
    pub async fn insert_photo(&self, p: &PhotoRow) -> Result<(PhotoRow, bool)> {
        let inserted = sqlx::query(
            "insert into photo (id, upload_sha256, upload_type, upload_bytes, width, height,
                                stored_bytes, thumb_bytes, exif_lon, exif_lat, taken_at, uploaded_at)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             on conflict (upload_sha256) do nothing",
        )
        .bind(&p.id)
        .bind(&p.upload_sha256)
        .bind(&p.upload_type)
        .bind(p.upload_bytes)
        .bind(p.width)
        .bind(p.height)
        .bind(p.stored_bytes)
        .bind(p.thumb_bytes)
        .bind(p.exif_lon)
        .bind(p.exif_lat)
        .bind(p.taken_at)
        .bind(p.uploaded_at)
        .execute(&self.pool)
        .await
        .map_err(db("recording a photo"))?
        .rows_affected()
            == 1;
        let row = self
            .photo_by_upload(&p.upload_sha256)
            .await?
            .ok_or_else(|| super::StorageError::Geometry("a recorded photo vanished".into()))?;
        Ok((row, inserted))
    }

    /// The photo made from an upload with this SHA-256, if any.
    pub async fn photo_by_upload(&self, sha256: &str) -> Result<Option<PhotoRow>> {
        sqlx::query_as(&format!("{PHOTO_SELECT} where p.upload_sha256 = $1"))
            .bind(sha256)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("looking up a photo upload"))
    }

    pub async fn photo(&self, id: &str) -> Result<Option<PhotoRow>> {
        sqlx::query_as(&format!("{PHOTO_SELECT} where p.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a photo"))
    }

    /// The photos among `ids` that exist, each with the report it belongs to already.
    pub async fn photos(&self, ids: &[String]) -> Result<Vec<PhotoRow>> {
        sqlx::query_as(&format!("{PHOTO_SELECT} where p.id = any($1)"))
            .bind(ids)
            .fetch_all(&self.pool)
            .await
            .map_err(db("loading photos"))
    }

    /// A report's photos in the order they were given.
    pub async fn report_photos(&self, report_id: i64) -> Result<Vec<PhotoRow>> {
        sqlx::query_as(&format!(
            "{PHOTO_SELECT} where rp.report_id = $1 order by rp.n"
        ))
        .bind(report_id)
        .fetch_all(&self.pool)
        .await
        .map_err(db("loading a report's photos"))
    }

    pub async fn report_reporter(&self, report_id: i64) -> Result<Option<Reporter>> {
        sqlx::query_as("select name, phone from report_reporter where report_id = $1")
            .bind(report_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a reporter"))
    }

    /// Forgets photos that no report took within `older_than`; returns their ids so their
    /// files can go too.
    pub async fn sweep_unattached_photos(&self, before: DateTime<Utc>) -> Result<Vec<String>> {
        sqlx::query_scalar(
            "delete from photo p where p.uploaded_at < $1
               and not exists (select 1 from report_photo rp where rp.photo_id = p.id)
             returning p.id",
        )
        .bind(before)
        .fetch_all(&self.pool)
        .await
        .map_err(db("sweeping unattached photos"))
    }
}
