//! Spatial statistics over the grid map (pure): hot spots.

pub mod hotspots;
