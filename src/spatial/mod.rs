//! Pure, synchronous geometry over `geo` types: coordinate systems, point-in-polygon,
//! distances and the in-memory region index. Nothing here performs I/O or knows about the
//! database or HTTP.

pub mod crs;
pub mod distance;
pub mod geojson;
pub mod index;
pub mod pip;
pub mod raster;

pub use index::{Assignment, LocateStatus, RegionIndex, RegionRecord};
