//! Report photos on disk: `<dir>/<id[..2]>/<id>.jpg` and `<id>.thumb.jpg`, written to a temporary
//! name, synced and renamed, and recorded in the database only after both files are safely
//! there, so a recorded photo always has its files. An upload that no report takes within
//! [`UNATTACHED_TTL_HOURS`] is forgotten and its files removed.

use super::{Gridwatch, Result, WorkflowError};
use crate::media::{self, PhotoError};
use crate::storage::photos::PhotoRow;
use chrono::Duration;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

pub const UNATTACHED_TTL_HOURS: i64 = 72;
/// Most photos on one report.
pub const MAX_PHOTOS: usize = 4;

/// Where the photo files live.
#[derive(Debug, Clone)]
pub struct PhotoStore {
    dir: PathBuf,
}

/// Which file of a photo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhotoFile {
    Full,
    Thumbnail,
}

/// A photo as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct PhotoView {
    pub id: String,
    pub content_type: &'static str,
    pub width: i32,
    pub height: i32,
    pub bytes: i32,
    /// where the photo's EXIF said it was taken (WGS-84), read before the EXIF was stripped
    pub exif_gps: Option<GpsView>,
    pub taken_at: Option<chrono::DateTime<chrono::Utc>>,
    /// In the upload's answer both URLs carry the uploader's key (`?key=`): whoever uploaded the
    /// photo reads it back with them without logging in. Elsewhere they need a staff session.
    pub url: String,
    pub thumbnail_url: String,
}

impl PhotoView {
    /// The view its uploader gets: URLs that carry the photo's key.
    fn for_uploader(mut self, key: &str) -> Self {
        self.url = format!("{}?key={key}", self.url);
        self.thumbnail_url = format!("{}?key={key}", self.thumbnail_url);
        self
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct GpsView {
    pub lon: f64,
    pub lat: f64,
}

impl From<&PhotoRow> for PhotoView {
    fn from(p: &PhotoRow) -> Self {
        PhotoView {
            id: p.id.clone(),
            content_type: "image/jpeg",
            width: p.width,
            height: p.height,
            bytes: p.stored_bytes,
            exif_gps: p
                .exif_lon
                .zip(p.exif_lat)
                .map(|(lon, lat)| GpsView { lon, lat }),
            taken_at: p.taken_at,
            url: format!("/api/v1/photos/{}", p.id),
            thumbnail_url: format!("/api/v1/photos/{}/thumbnail", p.id),
        }
    }
}

/// A photo id: 32 lowercase hex digits.
pub fn valid_photo_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

impl PhotoStore {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        PhotoStore { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, id: &str, file: PhotoFile) -> PathBuf {
        let name = match file {
            PhotoFile::Full => format!("{id}.jpg"),
            PhotoFile::Thumbnail => format!("{id}.thumb.jpg"),
        };
        self.dir.join(&id[..2]).join(name)
    }

    /// Writes both files of a photo durably, or neither.
    fn write(&self, id: &str, full: &[u8], thumb: &[u8]) -> std::io::Result<()> {
        let folder = self.dir.join(&id[..2]);
        std::fs::create_dir_all(&folder)?;
        let put = |file: PhotoFile, bytes: &[u8]| -> std::io::Result<()> {
            let target = self.path(id, file);
            let tmp = target.with_extension("tmp");
            let result = (|| {
                let mut f = std::fs::File::create(&tmp)?;
                f.write_all(bytes)?;
                f.sync_all()?;
                std::fs::rename(&tmp, &target)
            })();
            if result.is_err() {
                let _ = std::fs::remove_file(&tmp);
            }
            result
        };
        put(PhotoFile::Full, full)?;
        if let Err(e) = put(PhotoFile::Thumbnail, thumb) {
            let _ = std::fs::remove_file(self.path(id, PhotoFile::Full));
            return Err(e);
        }
        // The renames are durable once the folder is synced.
        std::fs::File::open(&folder)?.sync_all()
    }

    fn remove(&self, id: &str) {
        for file in [PhotoFile::Full, PhotoFile::Thumbnail] {
            let _ = std::fs::remove_file(self.path(id, file));
        }
    }

    pub async fn read(&self, id: &str, file: PhotoFile) -> std::io::Result<Vec<u8>> {
        tokio::fs::read(self.path(id, file)).await
    }
}

fn photo_error(e: PhotoError) -> WorkflowError {
    match e {
        PhotoError::TooLarge(_) => WorkflowError::TooLarge(e.to_string()),
        PhotoError::UnsupportedType(_) | PhotoError::Empty => {
            WorkflowError::Unsupported(e.to_string())
        }
        PhotoError::TooManyPixels { .. } | PhotoError::Undecodable(_) => {
            WorkflowError::invalid("photo", e.to_string())
        }
    }
}

impl Gridwatch {
    /// The key that lets a photo's uploader read it back.
    pub fn photo_key(&self, photo_id: &str) -> String {
        crate::access::password::photo_key(&self.photo_secret, photo_id)
    }

    /// True when `key` is the uploader key of `photo_id`.
    pub fn is_photo_key(&self, photo_id: &str, key: &str) -> bool {
        crate::access::password::is_photo_key(&self.photo_secret, photo_id, key)
    }

    /// Accepts an uploaded photo: checks it, reads its EXIF, keeps a stripped copy and a
    /// thumbnail. The same bytes again answer with the photo made the first time (`false`).
    pub async fn upload_photo(
        &self,
        bytes: Vec<u8>,
        declared: Option<String>,
    ) -> Result<(PhotoView, bool)> {
        let sha = crate::access::password::sha256_hex(&bytes);
        if !bytes.is_empty() {
            if let Some(known) = self.db.photo_by_upload(&sha).await? {
                let key = self.photo_key(&known.id);
                return Ok((PhotoView::from(&known).for_uploader(&key), false));
            }
        }
        let normalised =
            tokio::task::spawn_blocking(move || media::normalise(&bytes, declared.as_deref()))
                .await
                .map_err(|e| WorkflowError::invalid("photo", format!("decoding failed: {e}")))?
                .map_err(photo_error)?;
        let id = {
            use rand::Rng;
            let raw: [u8; 16] = rand::rng().random();
            hex::encode(raw)
        };
        let store = self.photos.clone();
        let (full, thumb) = (normalised.jpeg.clone(), normalised.thumbnail.clone());
        let write_id = id.clone();
        tokio::task::spawn_blocking(move || store.write(&write_id, &full, &thumb))
            .await
            .map_err(|e| WorkflowError::Unavailable(format!("writing the photo failed: {e}")))?
            .map_err(|e| {
                tracing::error!(dir = %self.photos.dir().display(), "writing a photo: {e}");
                WorkflowError::Unavailable(format!(
                    "the photo could not be saved ({e}); nothing was kept — try again later"
                ))
            })?;
        let as_i32 = |n: usize| i32::try_from(n).unwrap_or(i32::MAX);
        let row = PhotoRow {
            id: id.clone(),
            upload_sha256: normalised.upload_sha256,
            upload_type: normalised.upload_type.to_owned(),
            upload_bytes: as_i32(normalised.upload_bytes),
            width: as_i32(normalised.width as usize),
            height: as_i32(normalised.height as usize),
            stored_bytes: as_i32(normalised.jpeg.len()),
            thumb_bytes: as_i32(normalised.thumbnail.len()),
            exif_lon: normalised.facts.gps.map(|g| g.0),
            exif_lat: normalised.facts.gps.map(|g| g.1),
            taken_at: normalised.facts.taken_at,
            uploaded_at: self.clock.now(),
            report_id: None,
        };
        match self.db.insert_photo(&row).await {
            Ok((stored, inserted)) => {
                if !inserted {
                    // A concurrent upload of the same bytes won: keep only its files.
                    self.photos.remove(&id);
                }
                let key = self.photo_key(&stored.id);
                Ok((PhotoView::from(&stored).for_uploader(&key), inserted))
            }
            Err(e) => {
                self.photos.remove(&id);
                Err(e.into())
            }
        }
    }

    /// One file of a photo, with its row.
    pub async fn photo_file(&self, id: &str, file: PhotoFile) -> Result<(PhotoRow, Vec<u8>)> {
        let missing = || WorkflowError::NotFound(format!("no photo {id}"));
        if !valid_photo_id(id) {
            return Err(missing());
        }
        let row = self.db.photo(id).await?.ok_or_else(missing)?;
        let bytes = self.photos.read(id, file).await.map_err(|e| {
            tracing::error!(photo = id, "reading a photo file: {e}");
            WorkflowError::Unavailable(format!("the photo's file cannot be read ({e})"))
        })?;
        Ok((row, bytes))
    }

    /// Checks that the photos a report names exist and belong to no report yet.
    pub(crate) async fn check_photos(&self, ids: &[String]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let found = self.db.photos(ids).await?;
        for id in ids {
            match found.iter().find(|p| &p.id == id) {
                None => {
                    return Err(WorkflowError::invalid(
                        "photos",
                        format!("no photo {id}: upload it first with POST /api/v1/photos"),
                    ))
                }
                Some(p) if p.report_id.is_some() => {
                    return Err(WorkflowError::invalid(
                        "photos",
                        format!(
                            "photo {id} belongs to report #{} already",
                            p.report_id.unwrap_or_default()
                        ),
                    ))
                }
                Some(_) => {}
            }
        }
        Ok(())
    }

    /// Forgets uploads no report took in time, with their files.
    pub async fn sweep_photos(&self) -> Result<usize> {
        let before = self.clock.now() - Duration::hours(UNATTACHED_TTL_HOURS);
        let ids = self.db.sweep_unattached_photos(before).await?;
        for id in &ids {
            self.photos.remove(id);
        }
        Ok(ids.len())
    }
}
