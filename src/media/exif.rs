//! The little of EXIF that intake needs: where (GPS), when (DateTimeOriginal) and which way up
//! (Orientation). Reads the TIFF structure of a JPEG's APP1 "Exif" segment or a PNG's eXIf chunk
//! with every offset bounds-checked: a hostile file yields `None`, never a panic or a large
//! allocation. Writing is here too, for tests and fixtures ([`gps_app1`]).

use chrono::{DateTime, FixedOffset, NaiveDateTime, TimeZone, Utc};

/// What a photo's EXIF says, as far as intake cares.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ExifFacts {
    /// (lon, lat), WGS-84 as GPS receivers give it
    pub gps: Option<(f64, f64)>,
    pub taken_at: Option<DateTime<Utc>>,
    /// EXIF orientation 1..=8
    pub orientation: Option<u8>,
}

/// Finds the TIFF block of a JPEG or PNG and reads it; `None` when there is none.
pub fn read(bytes: &[u8]) -> Option<ExifFacts> {
    let tiff = if bytes.starts_with(&[0xFF, 0xD8]) {
        jpeg_tiff(bytes)?
    } else if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        png_tiff(bytes)?
    } else {
        return None;
    };
    Some(read_tiff(tiff))
}

fn jpeg_tiff(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 2;
    while at + 4 <= bytes.len() {
        if bytes[at] != 0xFF {
            return None;
        }
        let marker = bytes[at + 1];
        // Start of scan: the image data follows, no more metadata segments.
        if marker == 0xDA || marker == 0xD9 {
            return None;
        }
        let len = usize::from(u16::from_be_bytes([bytes[at + 2], bytes[at + 3]]));
        let body = bytes.get(at + 4..at + 2 + len)?;
        if marker == 0xE1 && body.starts_with(b"Exif\0\0") {
            return Some(&body[6..]);
        }
        at += 2 + len;
    }
    None
}

fn png_tiff(bytes: &[u8]) -> Option<&[u8]> {
    let mut at = 8;
    while at + 8 <= bytes.len() {
        let len = u32::from_be_bytes(bytes[at..at + 4].try_into().ok()?) as usize;
        let kind = &bytes[at + 4..at + 8];
        let body = bytes.get(at + 8..(at + 8).checked_add(len)?)?;
        if kind == b"eXIf" {
            return Some(body);
        }
        if kind == b"IDAT" || kind == b"IEND" {
            return None;
        }
        at += 12 + len;
    }
    None
}

/// A TIFF block with its byte order.
struct Tiff<'a> {
    b: &'a [u8],
    little: bool,
}

/// One IFD entry: tag, type, count and the 4 bytes of value-or-offset.
struct Entry {
    tag: u16,
    kind: u16,
    count: u32,
    raw: [u8; 4],
}

impl<'a> Tiff<'a> {
    fn u16(&self, at: usize) -> Option<u16> {
        let s: [u8; 2] = self.b.get(at..at + 2)?.try_into().ok()?;
        Some(if self.little {
            u16::from_le_bytes(s)
        } else {
            u16::from_be_bytes(s)
        })
    }

    fn u32(&self, at: usize) -> Option<u32> {
        let s: [u8; 4] = self.b.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }

    /// The entries of the IFD at `offset` (at most 512: real IFDs hold a few dozen).
    fn ifd(&self, offset: usize) -> Vec<Entry> {
        let Some(n) = self.u16(offset) else {
            return Vec::new();
        };
        (0..usize::from(n).min(512))
            .map_while(|i| {
                let at = offset + 2 + 12 * i;
                Some(Entry {
                    tag: self.u16(at)?,
                    kind: self.u16(at + 2)?,
                    count: self.u32(at + 4)?,
                    raw: self.b.get(at + 8..at + 12)?.try_into().ok()?,
                })
            })
            .collect()
    }

    /// The bytes of an entry's value: inline when they fit in 4, else at the offset.
    fn value(&self, e: &Entry) -> Option<&'a [u8]> {
        let unit = match e.kind {
            1 | 2 | 6 | 7 => 1,
            3 | 8 => 2,
            4 | 9 | 11 => 4,
            5 | 10 | 12 => 8,
            _ => return None,
        };
        let len = unit * usize::try_from(e.count).ok()?;
        if len > 64 * 1024 {
            return None;
        }
        if len <= 4 {
            // Inline values are stored in the entry itself: return them from there.
            return None;
        }
        let offset = usize::try_from(self.offset_of(e)).ok()?;
        self.b.get(offset..offset.checked_add(len)?)
    }

    fn offset_of(&self, e: &Entry) -> u32 {
        if self.little {
            u32::from_le_bytes(e.raw)
        } else {
            u32::from_be_bytes(e.raw)
        }
    }

    fn short(&self, e: &Entry) -> Option<u16> {
        (e.kind == 3 && e.count >= 1).then(|| {
            if self.little {
                u16::from_le_bytes([e.raw[0], e.raw[1]])
            } else {
                u16::from_be_bytes([e.raw[0], e.raw[1]])
            }
        })
    }

    fn long(&self, e: &Entry) -> Option<u32> {
        match e.kind {
            4 if e.count >= 1 => Some(self.offset_of(e)),
            3 => self.short(e).map(u32::from),
            _ => None,
        }
    }

    fn ascii(&self, e: &Entry) -> Option<String> {
        if e.kind != 2 {
            return None;
        }
        let bytes: &[u8] = if e.count <= 4 {
            &e.raw[..e.count as usize]
        } else {
            self.value(e)?
        };
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        std::str::from_utf8(&bytes[..end])
            .ok()
            .map(|s| s.trim().to_owned())
    }

    /// Three unsigned rationals (degrees, minutes, seconds) as decimal degrees.
    fn dms(&self, e: &Entry) -> Option<f64> {
        if e.kind != 5 || e.count != 3 {
            return None;
        }
        let v = self.value(e)?;
        let mut parts = [0.0; 3];
        for (i, part) in parts.iter_mut().enumerate() {
            let num = f64::from(self.u32_in(v, 8 * i)?);
            let den = f64::from(self.u32_in(v, 8 * i + 4)?);
            if den == 0.0 {
                return None;
            }
            *part = num / den;
        }
        Some(parts[0] + parts[1] / 60.0 + parts[2] / 3600.0)
    }

    fn u32_in(&self, v: &[u8], at: usize) -> Option<u32> {
        let s: [u8; 4] = v.get(at..at + 4)?.try_into().ok()?;
        Some(if self.little {
            u32::from_le_bytes(s)
        } else {
            u32::from_be_bytes(s)
        })
    }
}

const TAG_ORIENTATION: u16 = 0x0112;
const TAG_EXIF_IFD: u16 = 0x8769;
const TAG_GPS_IFD: u16 = 0x8825;
const TAG_DATETIME_ORIGINAL: u16 = 0x9003;
const TAG_OFFSET_TIME_ORIGINAL: u16 = 0x9011;
const GPS_LAT_REF: u16 = 1;
const GPS_LAT: u16 = 2;
const GPS_LON_REF: u16 = 3;
const GPS_LON: u16 = 4;

fn read_tiff(b: &[u8]) -> ExifFacts {
    let little = match b.get(0..2) {
        Some(b"II") => true,
        Some(b"MM") => false,
        _ => return ExifFacts::default(),
    };
    let t = Tiff { b, little };
    if t.u16(2) != Some(42) {
        return ExifFacts::default();
    }
    let Some(ifd0) = t.u32(4) else {
        return ExifFacts::default();
    };
    let mut facts = ExifFacts::default();
    let ifd0 = t.ifd(ifd0 as usize);
    for e in &ifd0 {
        match e.tag {
            TAG_ORIENTATION => {
                facts.orientation = t
                    .short(e)
                    .and_then(|o| u8::try_from(o).ok())
                    .filter(|o| (1..=8).contains(o));
            }
            TAG_EXIF_IFD => {
                if let Some(at) = t.long(e) {
                    facts.taken_at = taken_at(&t, at as usize);
                }
            }
            TAG_GPS_IFD => {
                if let Some(at) = t.long(e) {
                    facts.gps = gps(&t, at as usize);
                }
            }
            _ => {}
        }
    }
    facts
}

fn gps(t: &Tiff, at: usize) -> Option<(f64, f64)> {
    let entries = t.ifd(at);
    let find = |tag| entries.iter().find(|e| e.tag == tag);
    let lat = t.dms(find(GPS_LAT)?)?;
    let lon = t.dms(find(GPS_LON)?)?;
    let lat_ref = t.ascii(find(GPS_LAT_REF)?)?;
    let lon_ref = t.ascii(find(GPS_LON_REF)?)?;
    let lat = match lat_ref.as_str() {
        "N" => lat,
        "S" => -lat,
        _ => return None,
    };
    let lon = match lon_ref.as_str() {
        "E" => lon,
        "W" => -lon,
        _ => return None,
    };
    // Cameras without a fix write zeros.
    let plausible = lat.abs() <= 90.0 && lon.abs() <= 180.0 && (lat != 0.0 || lon != 0.0);
    plausible.then_some((lon, lat))
}

/// DateTimeOriginal with its OffsetTimeOriginal; without an offset, China Standard Time (the
/// phones that file reports are set to it).
fn taken_at(t: &Tiff, at: usize) -> Option<DateTime<Utc>> {
    let entries = t.ifd(at);
    let text = t.ascii(entries.iter().find(|e| e.tag == TAG_DATETIME_ORIGINAL)?)?;
    let local = NaiveDateTime::parse_from_str(&text, "%Y:%m:%d %H:%M:%S").ok()?;
    let offset = entries
        .iter()
        .find(|e| e.tag == TAG_OFFSET_TIME_ORIGINAL)
        .and_then(|e| t.ascii(e))
        .and_then(|s| {
            DateTime::parse_from_str(&format!("2000-01-01T00:00:00{s}"), "%Y-%m-%dT%H:%M:%S%:z")
                .ok()
        })
        .map(|d| *d.offset())
        .or_else(|| FixedOffset::east_opt(8 * 3600))?;
    offset
        .from_local_datetime(&local)
        .single()
        .map(|d| d.with_timezone(&Utc))
}

/// An APP1 "Exif" segment (marker included) with a GPS position, an orientation and a time
/// taken, big-endian like many phones; insert it after a JPEG's SOI with [`with_app1`]. For tests
/// and fixtures.
pub fn gps_app1(lon: f64, lat: f64, orientation: u16, taken: Option<&str>) -> Vec<u8> {
    fn rational3(v: f64) -> Vec<u8> {
        let v = v.abs();
        let d = v.floor();
        let m = ((v - d) * 60.0).floor();
        let s = (v - d - m / 60.0) * 3600.0;
        let mut out = Vec::new();
        for (num, den) in [
            (d as u32, 1u32),
            (m as u32, 1),
            ((s * 10_000.0).round() as u32, 10_000),
        ] {
            out.extend(num.to_be_bytes());
            out.extend(den.to_be_bytes());
        }
        out
    }
    let entry = |tag: u16, kind: u16, count: u32, value: [u8; 4]| {
        let mut e = Vec::with_capacity(12);
        e.extend(tag.to_be_bytes());
        e.extend(kind.to_be_bytes());
        e.extend(count.to_be_bytes());
        e.extend(value);
        e
    };
    let taken = taken.map(|t| {
        let mut v = t.as_bytes().to_vec();
        v.push(0);
        v
    });
    // Layout: header 8 | IFD0 (3 entries) | Exif IFD (1 entry) | GPS IFD (4 entries) | data.
    let ifd0_at = 8u32;
    let ifd0_len = 2 + 3 * 12 + 4;
    let exif_at = ifd0_at + ifd0_len;
    let exif_len = 2 + 12 + 4;
    let gps_at = exif_at + exif_len;
    let gps_len = 2 + 4 * 12 + 4;
    let lat_at = gps_at + gps_len;
    let lon_at = lat_at + 24;
    let taken_data_at = lon_at + 24;
    let mut tiff = b"MM\0\x2a".to_vec();
    tiff.extend(ifd0_at.to_be_bytes());
    tiff.extend(3u16.to_be_bytes());
    let mut orient = [0u8; 4];
    orient[..2].copy_from_slice(&orientation.to_be_bytes());
    tiff.extend(entry(TAG_ORIENTATION, 3, 1, orient));
    tiff.extend(entry(TAG_EXIF_IFD, 4, 1, exif_at.to_be_bytes()));
    tiff.extend(entry(TAG_GPS_IFD, 4, 1, gps_at.to_be_bytes()));
    tiff.extend(0u32.to_be_bytes());
    tiff.extend(1u16.to_be_bytes());
    let taken_len = taken.as_ref().map_or(0, |t| t.len() as u32);
    if taken.is_some() {
        tiff.extend(entry(
            TAG_DATETIME_ORIGINAL,
            2,
            taken_len,
            taken_data_at.to_be_bytes(),
        ));
    } else {
        // an empty Exif IFD would be fine too; an unknown tag keeps the layout fixed
        tiff.extend(entry(0xFFFF, 7, 0, [0; 4]));
    }
    tiff.extend(0u32.to_be_bytes());
    tiff.extend(4u16.to_be_bytes());
    let ref_of = |c: u8| [c, 0, 0, 0];
    tiff.extend(entry(
        GPS_LAT_REF,
        2,
        2,
        ref_of(if lat >= 0.0 { b'N' } else { b'S' }),
    ));
    tiff.extend(entry(GPS_LAT, 5, 3, lat_at.to_be_bytes()));
    tiff.extend(entry(
        GPS_LON_REF,
        2,
        2,
        ref_of(if lon >= 0.0 { b'E' } else { b'W' }),
    ));
    tiff.extend(entry(GPS_LON, 5, 3, lon_at.to_be_bytes()));
    tiff.extend(0u32.to_be_bytes());
    tiff.extend(rational3(lat));
    tiff.extend(rational3(lon));
    if let Some(t) = &taken {
        tiff.extend(t);
    }
    let mut seg = vec![0xFF, 0xE1];
    let len = u16::try_from(2 + 6 + tiff.len()).unwrap_or(u16::MAX);
    seg.extend(len.to_be_bytes());
    seg.extend(b"Exif\0\0");
    seg.extend(tiff);
    seg
}

/// A JPEG with `segment` inserted right after its SOI marker.
pub fn with_app1(jpeg: &[u8], segment: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(jpeg.len() + segment.len());
    out.extend_from_slice(&jpeg[..2.min(jpeg.len())]);
    out.extend_from_slice(segment);
    out.extend_from_slice(jpeg.get(2..).unwrap_or_default());
    out
}

/// Whether a JPEG still carries an APP1 segment (EXIF or XMP) before its image data.
pub fn has_app1(jpeg: &[u8]) -> bool {
    let mut at = 2;
    while at + 4 <= jpeg.len() && jpeg[at] == 0xFF {
        let marker = jpeg[at + 1];
        if marker == 0xE1 {
            return true;
        }
        if marker == 0xDA {
            return false;
        }
        at += 2 + usize::from(u16::from_be_bytes([jpeg[at + 2], jpeg[at + 3]]));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_jpeg() -> Vec<u8> {
        let img = image::RgbImage::from_pixel(8, 8, image::Rgb([200, 30, 30]));
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(img)
            .write_to(&mut out, image::ImageFormat::Jpeg)
            .unwrap();
        out.into_inner()
    }

    #[test]
    fn reads_back_what_it_writes() {
        let jpeg = with_app1(
            &tiny_jpeg(),
            &gps_app1(106.8254, 39.6731, 6, Some("2026:11:30 09:15:00")),
        );
        let facts = read(&jpeg).unwrap();
        let (lon, lat) = facts.gps.unwrap();
        assert!((lon - 106.8254).abs() < 1e-6, "{lon}");
        assert!((lat - 39.6731).abs() < 1e-6, "{lat}");
        assert_eq!(facts.orientation, Some(6));
        // no offset in the file: China Standard Time
        assert_eq!(
            facts.taken_at.unwrap().to_rfc3339(),
            "2026-11-30T01:15:00+00:00"
        );
        assert!(has_app1(&jpeg));
        assert!(!has_app1(&tiny_jpeg()));
    }

    #[test]
    fn southern_and_western_positions_are_negative() {
        let jpeg = with_app1(&tiny_jpeg(), &gps_app1(-43.2, -22.9, 1, None));
        let (lon, lat) = read(&jpeg).unwrap().gps.unwrap();
        assert!((lon + 43.2).abs() < 1e-6 && (lat + 22.9).abs() < 1e-6);
    }

    #[test]
    fn a_photo_without_exif_has_no_facts() {
        assert_eq!(read(&tiny_jpeg()), None);
        assert_eq!(read(b"not an image"), None);
    }

    #[test]
    fn truncated_or_corrupt_blocks_never_panic() {
        let full = with_app1(
            &tiny_jpeg(),
            &gps_app1(106.8, 39.6, 1, Some("2026:01:01 00:00:00")),
        );
        for cut in 0..full.len().min(400) {
            let _ = read(&full[..cut]);
        }
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..2000 {
            let mut bytes = full.clone();
            for _ in 0..4 {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let at = 2 + (rng as usize) % 200;
                bytes[at] = (rng >> 32) as u8;
            }
            let _ = read(&bytes);
        }
    }

    #[test]
    fn zero_positions_mean_no_fix() {
        let jpeg = with_app1(&tiny_jpeg(), &gps_app1(0.0, 0.0, 1, None));
        assert_eq!(read(&jpeg).unwrap().gps, None);
    }
}
