//! Reading an uploaded sketch: PNG or JPEG only, size and memory limits against decompression
//! bombs, EXIF orientation applied so that pixel coordinates are those a person sees.

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};
use std::io::Cursor;

/// Largest accepted side, in pixels.
pub const MAX_SIDE: u32 = 12_000;
/// Largest accepted image, in pixels (a 48-megapixel phone photo fits).
pub const MAX_PIXELS: u64 = 50_000_000;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ImageError {
    #[error("the file is not a PNG or JPEG image")]
    UnsupportedFormat,
    #[error("the image is {width}×{height} pixels; at most {MAX_SIDE} per side and {MAX_PIXELS} pixels in all are accepted")]
    TooLarge { width: u32, height: u32 },
    #[error("the image cannot be decoded: {0}")]
    Corrupt(String),
}

/// A decoded sketch, upright.
#[derive(Debug, Clone)]
pub struct SketchImage {
    pub format: &'static str,
    pub width: u32,
    pub height: u32,
    /// EXIF orientation that was applied (1 = none)
    pub exif_orientation: u8,
    pub image: DynamicImage,
}

/// Decodes PNG or JPEG bytes, refusing anything else or anything too large before allocating.
pub fn decode(bytes: &[u8]) -> Result<SketchImage, ImageError> {
    let format = match image::guess_format(bytes) {
        Ok(ImageFormat::Png) => "png",
        Ok(ImageFormat::Jpeg) => "jpeg",
        _ => return Err(ImageError::UnsupportedFormat),
    };
    // The JPEG decoder fills a cut-off file with grey instead of failing: a truncated upload
    // must not pass for a sketch. Every complete JPEG ends with the EOI marker (FF D9), at most
    // followed by a little padding.
    if format == "jpeg" {
        let tail = &bytes[bytes.len().saturating_sub(1024)..];
        if !tail.windows(2).any(|w| w == [0xFF, 0xD9]) {
            return Err(ImageError::Corrupt(
                "the JPEG is truncated (no end-of-image marker)".into(),
            ));
        }
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let mut limits = Limits::default();
    limits.max_image_width = Some(MAX_SIDE);
    limits.max_image_height = Some(MAX_SIDE);
    limits.max_alloc = Some(MAX_PIXELS * 4 + (64 << 20));
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| map_err(&e))?;
    let (width, height) = decoder.dimensions();
    if width == 0 || height == 0 || u64::from(width) * u64::from(height) > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| map_err(&e))?;
    image.apply_orientation(orientation);
    Ok(SketchImage {
        format,
        width: image.width(),
        height: image.height(),
        exif_orientation: orientation.to_exif(),
        image,
    })
}

fn map_err(e: &image::ImageError) -> ImageError {
    match e {
        image::ImageError::Limits(_) => ImageError::TooLarge {
            width: 0,
            height: 0,
        },
        other => ImageError::Corrupt(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use image::{ImageEncoder, RgbImage};

    fn png(w: u32, h: u32) -> Vec<u8> {
        let img = RgbImage::from_fn(w, h, |x, _| image::Rgb([x as u8, 0, 0]));
        let mut out = Vec::new();
        image::codecs::png::PngEncoder::new(&mut out)
            .write_image(img.as_raw(), w, h, image::ExtendedColorType::Rgb8)
            .unwrap();
        out
    }

    #[test]
    fn decodes_png() {
        let s = decode(&png(30, 20)).unwrap();
        assert_eq!(
            (s.format, s.width, s.height, s.exif_orientation),
            ("png", 30, 20, 1)
        );
    }

    #[test]
    fn refuses_other_formats_and_garbage() {
        assert_eq!(
            decode(b"GIF89a....").unwrap_err(),
            ImageError::UnsupportedFormat
        );
        assert_eq!(decode(b"").unwrap_err(), ImageError::UnsupportedFormat);
        let mut truncated = png(30, 20);
        truncated.truncate(60);
        assert!(matches!(decode(&truncated), Err(ImageError::Corrupt(_))));
    }

    #[test]
    fn refuses_a_truncated_jpeg() {
        let img = RgbImage::from_pixel(64, 64, image::Rgb([200, 10, 10]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 90)
            .write_image(img.as_raw(), 64, 64, image::ExtendedColorType::Rgb8)
            .unwrap();
        assert!(decode(&jpeg).is_ok());
        let cut = &jpeg[..jpeg.len() / 2];
        assert!(matches!(decode(cut), Err(ImageError::Corrupt(m)) if m.contains("truncated")));
    }

    #[test]
    fn refuses_a_decompression_bomb_before_allocating() {
        // A valid PNG header claiming 100000×100000 pixels, with no data behind it.
        let mut bomb = png(1, 1);
        bomb[16..20].copy_from_slice(&100_000u32.to_be_bytes());
        bomb[20..24].copy_from_slice(&100_000u32.to_be_bytes());
        assert!(matches!(
            decode(&bomb),
            Err(ImageError::TooLarge { .. }) | Err(ImageError::Corrupt(_))
        ));
    }

    #[test]
    fn applies_exif_orientation() {
        // A 2×1 JPEG with an EXIF APP1 segment saying "rotate 90° clockwise" (orientation 6).
        let img = RgbImage::from_fn(40, 20, |x, _| {
            if x < 20 {
                image::Rgb([0, 0, 0])
            } else {
                image::Rgb([255, 255, 255])
            }
        });
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .write_image(img.as_raw(), 40, 20, image::ExtendedColorType::Rgb8)
            .unwrap();
        let exif: Vec<u8> = [
            b"Exif\0\0".as_slice(),
            b"MM\0\x2a\0\0\0\x08", // big-endian TIFF header, IFD at 8
            b"\0\x01",             // one entry
            b"\x01\x12\0\x03\0\0\0\x01\0\x06\0\0", // Orientation, SHORT, 1, value 6
            b"\0\0\0\0",           // no next IFD
        ]
        .concat();
        let mut with_exif = jpeg[..2].to_vec(); // SOI
        with_exif.extend_from_slice(&[0xFF, 0xE1]);
        with_exif.extend_from_slice(&((exif.len() + 2) as u16).to_be_bytes());
        with_exif.extend_from_slice(&exif);
        with_exif.extend_from_slice(&jpeg[2..]);
        let s = decode(&with_exif).unwrap();
        assert_eq!(s.exif_orientation, 6);
        assert_eq!((s.width, s.height), (20, 40), "rotated upright");
        // the dark left half of the stored image is now on top
        let g = s.image.to_luma8();
        assert!(g.get_pixel(10, 5)[0] < 60 && g.get_pixel(10, 35)[0] > 200);
    }
}
