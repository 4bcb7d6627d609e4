//! Report photos: check what was uploaded, read its EXIF facts, and make the copy that is kept —
//! turned the right way up, at most [`MAX_STORED_SIDE`] px, re-encoded as JPEG with no metadata
//! at all (EXIF, XMP, ICC comments: a phone's serial number and home position go nowhere) — and
//! its thumbnail. Pure functions; the photo directory and the database are the workflow's.

pub mod exif;

use image::{DynamicImage, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// Largest upload accepted, in bytes.
pub const MAX_UPLOAD_BYTES: usize = 12 * 1024 * 1024;
/// Most pixels a photo may declare (a 48-megapixel phone camera fits); more is refused before
/// decoding, so a small file that claims a huge image (a decompression bomb) costs nothing.
pub const MAX_PIXELS: u64 = 50_000_000;
/// Longest side of either dimension a photo may declare.
pub const MAX_SIDE: u32 = 12_000;
/// Longest side of the stored copy and of the thumbnail.
pub const MAX_STORED_SIDE: u32 = 2560;
pub const THUMB_SIDE: u32 = 320;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PhotoError {
    #[error("the photo is {0} bytes; at most {MAX_UPLOAD_BYTES} bytes (12 MiB) are accepted")]
    TooLarge(usize),
    #[error("the photo is empty")]
    Empty,
    #[error("{0}: only JPEG and PNG photos are accepted")]
    UnsupportedType(String),
    #[error("the photo declares {width}×{height} pixels; at most {MAX_SIDE} px a side and {MAX_PIXELS} pixels in all are accepted")]
    TooManyPixels { width: u32, height: u32 },
    #[error("the photo cannot be decoded: {0}")]
    Undecodable(String),
}

/// An accepted photo: the copy to keep and what its upload said.
#[derive(Debug, Clone)]
pub struct Normalised {
    pub upload_type: &'static str,
    pub upload_bytes: usize,
    pub upload_sha256: String,
    pub width: u32,
    pub height: u32,
    /// the stored copy: JPEG, no metadata
    pub jpeg: Vec<u8>,
    pub thumbnail: Vec<u8>,
    pub facts: exif::ExifFacts,
}

/// Checks an upload and makes its stored copy and thumbnail. `declared` is the request's
/// Content-Type when it had one; the bytes decide the format, and a declared type that is not an
/// image type we accept is refused.
pub fn normalise(bytes: &[u8], declared: Option<&str>) -> Result<Normalised, PhotoError> {
    if bytes.is_empty() {
        return Err(PhotoError::Empty);
    }
    if bytes.len() > MAX_UPLOAD_BYTES {
        return Err(PhotoError::TooLarge(bytes.len()));
    }
    if let Some(d) = declared {
        let essence = d
            .split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase();
        let ok = matches!(
            essence.as_str(),
            "image/jpeg" | "image/jpg" | "image/png" | "application/octet-stream" | ""
        );
        if !ok {
            return Err(PhotoError::UnsupportedType(format!("Content-Type {d}")));
        }
    }
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Jpeg) => ImageFormat::Jpeg,
        Ok(ImageFormat::Png) => ImageFormat::Png,
        Ok(other) => {
            return Err(PhotoError::UnsupportedType(format!(
                "the file is {}",
                other.extensions_str().first().unwrap_or(&"another format")
            )))
        }
        Err(_) => {
            return Err(PhotoError::UnsupportedType(
                "the file is not an image".to_owned(),
            ))
        }
    };
    let (width, height) = match (format, png_dimensions(bytes)) {
        // Read straight from IHDR: the decoder would want the image data too.
        (ImageFormat::Png, Some(d)) => d,
        _ => ImageReader::with_format(Cursor::new(bytes), format)
            .into_dimensions()
            .map_err(|e| PhotoError::Undecodable(e.to_string()))?,
    };
    if width > MAX_SIDE || height > MAX_SIDE || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(PhotoError::TooManyPixels { width, height });
    }
    if format == ImageFormat::Jpeg && !jpeg_is_complete(bytes) {
        // A lenient decoder would fill the rest with grey: a photo cut short by a dropped
        // connection is refused, so the phone sends it again.
        return Err(PhotoError::Undecodable(
            "the JPEG is cut short (no end-of-image marker); send it again".to_owned(),
        ));
    }
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 + 64 * 1024 * 1024);
    reader.limits(limits);
    let mut img = reader
        .decode()
        .map_err(|e| PhotoError::Undecodable(e.to_string()))?;
    let facts = exif::read(bytes).unwrap_or_default();
    if let Some(o) = facts
        .orientation
        .and_then(image::metadata::Orientation::from_exif)
    {
        img.apply_orientation(o);
    }
    let stored = fit(img, MAX_STORED_SIDE);
    let thumb = stored.thumbnail(THUMB_SIDE, THUMB_SIDE);
    let jpeg = encode_jpeg(&stored, 85)?;
    let thumbnail = encode_jpeg(&thumb, 75)?;
    Ok(Normalised {
        upload_type: if format == ImageFormat::Png {
            "image/png"
        } else {
            "image/jpeg"
        },
        upload_bytes: bytes.len(),
        upload_sha256: crate::access::password::sha256_hex(bytes),
        width: stored.width(),
        height: stored.height(),
        jpeg,
        thumbnail,
        facts,
    })
}

/// Width and height from a PNG's IHDR chunk.
fn png_dimensions(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let w = u32::from_be_bytes(bytes.get(16..20)?.try_into().ok()?);
    let h = u32::from_be_bytes(bytes.get(20..24)?.try_into().ok()?);
    Some((w, h))
}

/// Whether a JPEG has its EOI marker near the end (padding after it is allowed). Inside the
/// entropy-coded data 0xFF is always followed by 0x00 or a restart marker, so FF D9 is the end.
fn jpeg_is_complete(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

fn fit(img: DynamicImage, side: u32) -> DynamicImage {
    if img.width() <= side && img.height() <= side {
        img
    } else {
        img.resize(side, side, image::imageops::FilterType::Triangle)
    }
}

fn encode_jpeg(img: &DynamicImage, quality: u8) -> Result<Vec<u8>, PhotoError> {
    // JPEG has no alpha: flatten onto white, as a photo viewer would show it.
    let rgb = if img.color().has_alpha() {
        let rgba = img.to_rgba8();
        let mut rgb = image::RgbImage::new(rgba.width(), rgba.height());
        for (dst, src) in rgb.pixels_mut().zip(rgba.pixels()) {
            let a = u16::from(src[3]);
            for c in 0..3 {
                dst[c] = ((u16::from(src[c]) * a + 255 * (255 - a)) / 255) as u8;
            }
        }
        rgb
    } else {
        img.to_rgb8()
    };
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, quality)
        .encode_image(&rgb)
        .map_err(|e| PhotoError::Undecodable(format!("re-encoding failed: {e}")))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jpeg(w: u32, h: u32) -> Vec<u8> {
        let img = image::RgbImage::from_fn(w, h, |x, y| {
            image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
        });
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgb8(img)
            .write_to(&mut out, ImageFormat::Jpeg)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn keeps_gps_and_strips_every_segment() {
        let upload = exif::with_app1(
            &jpeg(640, 480),
            &exif::gps_app1(106.82, 39.67, 1, Some("2026:11:30 09:15:00")),
        );
        let n = normalise(&upload, Some("image/jpeg")).unwrap();
        let (lon, lat) = n.facts.gps.unwrap();
        assert!((lon - 106.82).abs() < 1e-6 && (lat - 39.67).abs() < 1e-6);
        assert!(!exif::has_app1(&n.jpeg), "the stored copy keeps no EXIF");
        assert_eq!(exif::read(&n.jpeg), None);
        assert_eq!((n.width, n.height), (640, 480));
        let thumb = image::load_from_memory(&n.thumbnail).unwrap();
        assert_eq!((thumb.width(), thumb.height()), (320, 240));
        assert_eq!(n.upload_type, "image/jpeg");
    }

    #[test]
    fn turns_a_rotated_photo_upright() {
        // orientation 6: the camera was turned; the stored copy is portrait
        let upload = exif::with_app1(&jpeg(400, 300), &exif::gps_app1(106.8, 39.6, 6, None));
        let n = normalise(&upload, None).unwrap();
        assert_eq!((n.width, n.height), (300, 400));
    }

    #[test]
    fn large_photos_are_scaled_down() {
        let n = normalise(&jpeg(3000, 1500), None).unwrap();
        assert_eq!((n.width, n.height), (2560, 1280));
    }

    #[test]
    fn refuses_what_is_not_a_photo() {
        assert!(matches!(
            normalise(b"hello, this is text", Some("image/jpeg")),
            Err(PhotoError::UnsupportedType(_))
        ));
        assert!(matches!(
            normalise(&jpeg(10, 10), Some("text/plain")),
            Err(PhotoError::UnsupportedType(_))
        ));
        assert_eq!(normalise(b"", None).unwrap_err(), PhotoError::Empty);
        let big = vec![0u8; MAX_UPLOAD_BYTES + 1];
        assert_eq!(
            normalise(&big, None).unwrap_err(),
            PhotoError::TooLarge(MAX_UPLOAD_BYTES + 1)
        );
        let mut cut = jpeg(200, 200);
        cut.truncate(cut.len() / 3);
        assert!(matches!(
            normalise(&cut, None),
            Err(PhotoError::Undecodable(_))
        ));
    }

    #[test]
    fn refuses_a_decompression_bomb_before_decoding() {
        // A PNG header claiming 20000 × 20000 pixels, with hardly any data behind it.
        let mut png = Vec::new();
        png.extend(b"\x89PNG\r\n\x1a\n");
        let mut ihdr = Vec::new();
        ihdr.extend(20_000u32.to_be_bytes());
        ihdr.extend(20_000u32.to_be_bytes());
        ihdr.extend([8, 2, 0, 0, 0]);
        png.extend((ihdr.len() as u32).to_be_bytes());
        png.extend(b"IHDR");
        png.extend(&ihdr);
        let mut crc_input = b"IHDR".to_vec();
        crc_input.extend(&ihdr);
        png.extend(crc32(&crc_input).to_be_bytes());
        let err = normalise(&png, Some("image/png")).unwrap_err();
        assert_eq!(
            err,
            PhotoError::TooManyPixels {
                width: 20_000,
                height: 20_000
            }
        );
    }

    fn crc32(bytes: &[u8]) -> u32 {
        let mut crc = 0xFFFF_FFFFu32;
        for &b in bytes {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    #[test]
    fn a_transparent_png_is_flattened_onto_white() {
        let img = image::RgbaImage::from_pixel(20, 10, image::Rgba([0, 0, 0, 0]));
        let mut out = Cursor::new(Vec::new());
        DynamicImage::ImageRgba8(img)
            .write_to(&mut out, ImageFormat::Png)
            .unwrap();
        let n = normalise(&out.into_inner(), Some("image/png")).unwrap();
        assert_eq!(n.upload_type, "image/png");
        let back = image::load_from_memory(&n.jpeg).unwrap().to_rgb8();
        assert!(back.get_pixel(5, 5)[0] > 240);
    }
}
