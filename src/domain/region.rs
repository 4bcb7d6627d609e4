//! A region as it is imported: identity, boundary, and for grids the party branch and staff.

use super::{GridCode, Level};
use geo::MultiPolygon;
use serde::{Deserialize, Serialize};

/// The grid's party branch 网格党支部.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartyBranch {
    pub name: String,
    #[serde(default)]
    pub secretary: Option<String>,
    #[serde(default)]
    pub contact: Option<String>,
}

/// Roles of "一格一长一警一专多兼".
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StaffRole {
    /// 网格长
    GridLeader,
    /// 民警
    PoliceOfficer,
    /// 专职网格员
    FullTimeWorker,
    /// 兼职网格员
    PartTimeWorker,
}

impl StaffRole {
    pub fn as_str(self) -> &'static str {
        match self {
            StaffRole::GridLeader => "grid_leader",
            StaffRole::PoliceOfficer => "police_officer",
            StaffRole::FullTimeWorker => "full_time_worker",
            StaffRole::PartTimeWorker => "part_time_worker",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaffMember {
    pub role: StaffRole,
    pub name: String,
    #[serde(default)]
    pub phone: Option<String>,
}

/// One validated feature of an import file.
#[derive(Debug, Clone)]
pub struct RegionFeature {
    /// position of the feature in its FeatureCollection, for error messages
    pub index: usize,
    pub code: GridCode,
    pub name: String,
    pub level: Level,
    pub parent_code: Option<GridCode>,
    /// WGS-84
    pub geom: MultiPolygon<f64>,
    /// `None`: leave as it is; `Some(None)`: remove
    pub party_branch: Option<Option<PartyBranch>>,
    /// `None`: leave as it is; `Some(list)`: replace
    pub staff: Option<Vec<StaffMember>>,
    pub synthetic: bool,
}

/// One thing wrong with an import, naming the feature it concerns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    /// index of the feature in the FeatureCollection
    #[serde(skip_serializing_if = "Option::is_none")]
    pub feature: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// machine-readable kind, e.g. `invalid_geometry`, `unknown_parent`
    pub kind: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        Problem {
            feature: None,
            code: None,
            kind,
            field: None,
            message: message.into(),
        }
    }

    pub fn at(mut self, feature: usize, code: Option<&str>) -> Self {
        self.feature = Some(feature);
        self.code = code.map(str::to_owned);
        self
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }
}
