//! Coordinates: the reference systems clients send, and a WGS-84 point that cannot be invalid.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Coordinate reference system of an input position.
///
/// CGCS2000 (天地图, survey data) agrees with WGS-84 to within centimetres and is accepted as
/// `wgs84`. GCJ-02 is the obfuscated system of AMap, Tencent and WeChat; BD-09 is Baidu's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Crs {
    #[default]
    Wgs84,
    Gcj02,
    Bd09,
}

impl Crs {
    pub fn as_str(self) -> &'static str {
        match self {
            Crs::Wgs84 => "wgs84",
            Crs::Gcj02 => "gcj02",
            Crs::Bd09 => "bd09",
        }
    }
}

impl fmt::Display for Crs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown crs {0:?}: expected wgs84 (or cgcs2000), gcj02 or bd09")]
pub struct UnknownCrs(pub String);

impl FromStr for Crs {
    type Err = UnknownCrs;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace(['-', '_'], "").as_str() {
            "wgs84" | "epsg4326" | "cgcs2000" | "epsg4490" => Ok(Crs::Wgs84),
            "gcj02" => Ok(Crs::Gcj02),
            "bd09" | "bd09ll" => Ok(Crs::Bd09),
            _ => Err(UnknownCrs(s.to_owned())),
        }
    }
}

/// A longitude/latitude pair in WGS-84 degrees: finite, lon in [-180, 180], lat in [-90, 90].
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Wgs84Point {
    lon: f64,
    lat: f64,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PointError {
    #[error("{field} must be a finite number, got {value}")]
    NotFinite { field: &'static str, value: f64 },
    #[error("{field} {value} is out of range [{min}, {max}]")]
    OutOfRange {
        field: &'static str,
        value: f64,
        min: f64,
        max: f64,
    },
}

impl PointError {
    /// The name of the offending input field (`lon` or `lat`).
    pub fn field(&self) -> &'static str {
        match self {
            PointError::NotFinite { field, .. } | PointError::OutOfRange { field, .. } => field,
        }
    }
}

/// Checks one coordinate; shared by every CRS since all of them are degrees.
pub(crate) fn check_coord(field: &'static str, value: f64, limit: f64) -> Result<f64, PointError> {
    if !value.is_finite() {
        return Err(PointError::NotFinite { field, value });
    }
    if !(-limit..=limit).contains(&value) {
        return Err(PointError::OutOfRange {
            field,
            value,
            min: -limit,
            max: limit,
        });
    }
    Ok(value)
}

impl Wgs84Point {
    pub fn new(lon: f64, lat: f64) -> Result<Self, PointError> {
        Ok(Wgs84Point {
            lon: check_coord("lon", lon, 180.0)?,
            lat: check_coord("lat", lat, 90.0)?,
        })
    }

    /// Converts a position given in `crs` to WGS-84.
    pub fn from_crs(lon: f64, lat: f64, crs: Crs) -> Result<Self, PointError> {
        check_coord("lon", lon, 180.0)?;
        check_coord("lat", lat, 90.0)?;
        let (x, y) = match crs {
            Crs::Wgs84 => (lon, lat),
            Crs::Gcj02 => crate::spatial::crs::gcj02_to_wgs84(lon, lat),
            Crs::Bd09 => crate::spatial::crs::bd09_to_wgs84(lon, lat),
        };
        Wgs84Point::new(x, y)
    }

    pub fn lon(&self) -> f64 {
        self.lon
    }

    pub fn lat(&self) -> f64 {
        self.lat
    }

    pub fn to_geo(self) -> geo::Point<f64> {
        geo::Point::new(self.lon, self.lat)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_nan_and_out_of_range() {
        assert_eq!(Wgs84Point::new(f64::NAN, 0.0).unwrap_err().field(), "lon");
        assert_eq!(
            Wgs84Point::new(0.0, f64::INFINITY).unwrap_err().field(),
            "lat"
        );
        assert!(matches!(
            Wgs84Point::new(0.0, 90.5),
            Err(PointError::OutOfRange { field: "lat", .. })
        ));
        assert!(Wgs84Point::new(-180.0, -90.0).is_ok());
        assert!(Wgs84Point::from_crs(200.0, 0.0, Crs::Gcj02).is_err());
    }

    #[test]
    fn parses_crs_names() {
        assert_eq!("CGCS2000".parse::<Crs>().unwrap(), Crs::Wgs84);
        assert_eq!("GCJ-02".parse::<Crs>().unwrap(), Crs::Gcj02);
        assert_eq!("bd09".parse::<Crs>().unwrap(), Crs::Bd09);
        assert!("utm".parse::<Crs>().is_err());
    }
}
