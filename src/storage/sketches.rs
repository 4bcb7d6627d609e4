//! Sketches: the uploaded photo, its control points and fit, and the last vectorisation.

use super::{db, Db, Result};
use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

/// A sketch without its image bytes.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, utoipa::ToSchema)]
pub struct SketchRow {
    pub id: i64,
    pub title: String,
    pub region_code: Option<String>,
    pub format: String,
    pub width: i32,
    pub height: i32,
    pub exif_orientation: i16,
    pub gcps: Value,
    pub transform: String,
    pub fit: Option<Value>,
    pub published_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What an upload stores.
pub struct NewSketch<'a> {
    pub title: &'a str,
    pub region_code: Option<&'a str>,
    pub format: &'a str,
    pub width: u32,
    pub height: u32,
    pub exif_orientation: u8,
    pub image: &'a [u8],
}

const COLUMNS: &str =
    "id, title, region_code, format, width, height, exif_orientation, gcps, transform, fit,
                       published_at, created_at, updated_at";

impl Db {
    pub async fn insert_sketch(&self, s: &NewSketch<'_>) -> Result<SketchRow> {
        sqlx::query_as(&format!(
            "insert into sketch (title, region_code, format, width, height, exif_orientation, image)
             values ($1, $2, $3, $4, $5, $6, $7) returning {COLUMNS}"
        ))
        .bind(s.title)
        .bind(s.region_code)
        .bind(s.format)
        .bind(s.width as i32)
        .bind(s.height as i32)
        .bind(i16::from(s.exif_orientation))
        .bind(s.image)
        .fetch_one(&self.pool)
        .await
        .map_err(db("storing a sketch"))
    }

    pub async fn sketch(&self, id: i64) -> Result<Option<SketchRow>> {
        sqlx::query_as(&format!("select {COLUMNS} from sketch where id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a sketch"))
    }

    pub async fn sketches(&self) -> Result<Vec<SketchRow>> {
        sqlx::query_as(&format!(
            "select {COLUMNS} from sketch order by id desc limit 500"
        ))
        .fetch_all(&self.pool)
        .await
        .map_err(db("listing sketches"))
    }

    /// The uploaded bytes.
    pub async fn sketch_image(&self, id: i64) -> Result<Option<Vec<u8>>> {
        sqlx::query_scalar("select image from sketch where id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
            .map_err(db("loading a sketch image"))
    }

    /// Stores control points with the fit they gave.
    pub async fn set_sketch_fit(
        &self,
        id: i64,
        gcps: &Value,
        transform: &str,
        fit: &Value,
    ) -> Result<bool> {
        Ok(sqlx::query(
            "update sketch set gcps = $2, transform = $3, fit = $4, updated_at = now() where id = $1",
        )
        .bind(id)
        .bind(gcps)
        .bind(transform)
        .bind(fit)
        .execute(&self.pool)
        .await
        .map_err(db("storing control points"))?
        .rows_affected()
            == 1)
    }

    pub async fn set_sketch_vectorised(&self, id: i64, vectorised: &Value) -> Result<()> {
        sqlx::query("update sketch set vectorised = $2, updated_at = now() where id = $1")
            .bind(id)
            .bind(vectorised)
            .execute(&self.pool)
            .await
            .map_err(db("storing a vectorisation"))?;
        Ok(())
    }

    pub async fn sketch_vectorised(&self, id: i64) -> Result<Option<Value>> {
        Ok(
            sqlx::query_scalar::<_, Option<Value>>("select vectorised from sketch where id = $1")
                .bind(id)
                .fetch_optional(&self.pool)
                .await
                .map_err(db("loading a vectorisation"))?
                .flatten(),
        )
    }

    pub async fn mark_sketch_published(&self, id: i64, at: DateTime<Utc>) -> Result<()> {
        sqlx::query("update sketch set published_at = $2, updated_at = now() where id = $1")
            .bind(id)
            .bind(at)
            .execute(&self.pool)
            .await
            .map_err(db("marking a sketch published"))?;
        Ok(())
    }
}
