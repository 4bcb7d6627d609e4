//! Report vocabulary: category codes and report sources.

use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValueError {
    pub field: &'static str,
    pub message: String,
}

/// A category code such as `oil_smoke`: lower-case ASCII, digits and underscores. Whether the
/// category exists is the catalogue's business (the database), not this type's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct CategoryCode(String);

impl CategoryCode {
    pub fn parse(s: &str) -> Result<Self, ValueError> {
        let ok = !s.is_empty()
            && s.len() <= 64
            && s.as_bytes()[0].is_ascii_lowercase()
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if ok {
            Ok(CategoryCode(s.to_owned()))
        } else {
            Err(ValueError {
                field: "category",
                message: format!("{s:?} is not a category code (lower-case letters, digits, _)"),
            })
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CategoryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Who filed the report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReportSource {
    /// grid worker patrol, "people's sentiment log" 民情日志
    GridWorker,
    /// delivery rider as "mobile probe" 移动探头
    Rider,
    /// resident's snap-and-report 随手拍
    Resident,
    /// the 12345 government hotline
    Hotline,
}

impl ReportSource {
    pub const ALL: [ReportSource; 4] = [
        ReportSource::GridWorker,
        ReportSource::Rider,
        ReportSource::Resident,
        ReportSource::Hotline,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportSource::GridWorker => "grid_worker",
            ReportSource::Rider => "rider",
            ReportSource::Resident => "resident",
            ReportSource::Hotline => "hotline",
        }
    }

    pub fn parse(s: &str) -> Result<Self, ValueError> {
        ReportSource::ALL
            .into_iter()
            .find(|v| v.as_str() == s)
            .ok_or_else(|| ValueError {
                field: "source",
                message: format!(
                    "unknown source {s:?}: expected grid_worker, rider, resident or hotline"
                ),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn category_codes() {
        assert!(CategoryCode::parse("oil_smoke").is_ok());
        assert!(CategoryCode::parse("Oil").is_err());
        assert!(CategoryCode::parse("").is_err());
        assert!(CategoryCode::parse("1abc").is_err());
        assert_eq!(CategoryCode::parse("x y").unwrap_err().field, "category");
    }

    #[test]
    fn sources() {
        for s in ReportSource::ALL {
            assert_eq!(ReportSource::parse(s.as_str()).unwrap(), s);
        }
        assert!(ReportSource::parse("wechat").is_err());
    }
}
