//! Region codes in the style of GB/T 30428 / DB11/T 2157: a 6-digit administrative code
//! (GB/T 2260), then 3 digits each for street, community and grid; a micro-grid adds 2.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Level of a region in the grid hierarchy, top to bottom.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    District,
    Street,
    Community,
    Grid,
    MicroGrid,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown level {0:?}: expected district, street, community, grid or micro_grid")]
pub struct LevelError(pub String);

impl Level {
    pub const ALL: [Level; 5] = [
        Level::District,
        Level::Street,
        Level::Community,
        Level::Grid,
        Level::MicroGrid,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Level::District => "district",
            Level::Street => "street",
            Level::Community => "community",
            Level::Grid => "grid",
            Level::MicroGrid => "micro_grid",
        }
    }

    /// Number of digits of a code at this level.
    pub fn code_len(self) -> usize {
        match self {
            Level::District => 6,
            Level::Street => 9,
            Level::Community => 12,
            Level::Grid => 15,
            Level::MicroGrid => 17,
        }
    }

    /// The level directly above, `None` for a district.
    pub fn parent(self) -> Option<Level> {
        match self {
            Level::District => None,
            Level::Street => Some(Level::District),
            Level::Community => Some(Level::Street),
            Level::Grid => Some(Level::Community),
            Level::MicroGrid => Some(Level::Grid),
        }
    }

    /// The level directly below, `None` for a micro-grid.
    pub fn child(self) -> Option<Level> {
        match self {
            Level::District => Some(Level::Street),
            Level::Street => Some(Level::Community),
            Level::Community => Some(Level::Grid),
            Level::Grid => Some(Level::MicroGrid),
            Level::MicroGrid => None,
        }
    }

    pub fn depth(self) -> usize {
        self as usize
    }

    /// Chinese name of the level, for messages and the UI.
    pub fn name_zh(self) -> &'static str {
        match self {
            Level::District => "区",
            Level::Street => "街道",
            Level::Community => "社区",
            Level::Grid => "网格",
            Level::MicroGrid => "微网格",
        }
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Level {
    type Err = LevelError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Level::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| LevelError(s.to_owned()))
    }
}

/// A region code of any level: digits only, 6/9/12/15/17 long; the level follows from the length.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct GridCode(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegionCodeError {
    #[error("region code {0:?} must contain digits only")]
    NotDigits(String),
    #[error("region code {0:?} has {1} digits: expected 6 (district), 9 (street), 12 (community), 15 (grid) or 17 (micro-grid)")]
    BadLength(String, usize),
}

impl GridCode {
    pub fn parse(s: &str) -> Result<Self, RegionCodeError> {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(RegionCodeError::NotDigits(s.to_owned()));
        }
        match s.len() {
            6 | 9 | 12 | 15 | 17 => Ok(GridCode(s.to_owned())),
            n => Err(RegionCodeError::BadLength(s.to_owned(), n)),
        }
    }

    pub fn level(&self) -> Level {
        match self.0.len() {
            6 => Level::District,
            9 => Level::Street,
            12 => Level::Community,
            15 => Level::Grid,
            _ => Level::MicroGrid,
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The code of the enclosing region implied by the code itself (its prefix).
    pub fn implied_parent(&self) -> Option<GridCode> {
        self.level()
            .parent()
            .map(|p| GridCode(self.0[..p.code_len()].to_owned()))
    }

    /// The 6-digit administrative (district) code this code starts with.
    pub fn district(&self) -> &str {
        &self.0[..6]
    }

    /// True when `self` is `other` or lies below it in the hierarchy.
    pub fn is_within(&self, other: &GridCode) -> bool {
        self.0.starts_with(&other.0)
    }
}

impl fmt::Display for GridCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for GridCode {
    type Err = RegionCodeError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        GridCode::parse(s)
    }
}

impl<'de> Deserialize<'de> for GridCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        GridCode::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_from_length() {
        let cases = [
            ("150302", Level::District),
            ("150302001", Level::Street),
            ("150302001002", Level::Community),
            ("150302001002003", Level::Grid),
            ("15030200100200301", Level::MicroGrid),
        ];
        for (s, level) in cases {
            let code = GridCode::parse(s).unwrap();
            assert_eq!(code.level(), level, "{s}");
            assert_eq!(level.code_len(), s.len());
        }
    }

    #[test]
    fn rejects_bad_codes() {
        assert!(matches!(
            GridCode::parse(""),
            Err(RegionCodeError::NotDigits(_))
        ));
        assert!(matches!(
            GridCode::parse("15030a"),
            Err(RegionCodeError::NotDigits(_))
        ));
        assert!(matches!(
            GridCode::parse("1503021"),
            Err(RegionCodeError::BadLength(_, 7))
        ));
        assert!(matches!(
            GridCode::parse("１５０３０２"),
            Err(RegionCodeError::NotDigits(_))
        ));
    }

    #[test]
    fn implied_parent_is_prefix() {
        let grid = GridCode::parse("150302001002003").unwrap();
        assert_eq!(grid.implied_parent().unwrap().as_str(), "150302001002");
        let micro = GridCode::parse("15030200100200301").unwrap();
        assert_eq!(micro.implied_parent().unwrap(), grid);
        assert!(micro.is_within(&GridCode::parse("150302").unwrap()));
        assert!(GridCode::parse("150302")
            .unwrap()
            .implied_parent()
            .is_none());
        assert_eq!(micro.district(), "150302");
    }

    #[test]
    fn level_parse_roundtrip() {
        for l in Level::ALL {
            assert_eq!(l.as_str().parse::<Level>().unwrap(), l);
        }
        assert!("village".parse::<Level>().is_err());
    }
}
