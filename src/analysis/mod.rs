//! Statistics over the grid map (pure): hot spots and emerging problems.

pub mod emerging;
pub mod hotspots;
