//! Domain types of grid governance: region codes and levels, report categories and sources,
//! coordinates. No I/O here: every type validates itself in its parsing constructor, so the
//! rest of the crate never sees an invalid code or a NaN coordinate.

pub mod case;
mod code;
mod region;
mod report;
pub mod routing;

pub use code::{GridCode, Level, LevelError, RegionCodeError};
pub mod point;
pub use point::{Crs, PointError, Wgs84Point};
pub use region::{PartyBranch, Problem, RegionFeature, StaffMember, StaffRole};
pub use report::{CategoryCode, ReportSource, ValueError};
