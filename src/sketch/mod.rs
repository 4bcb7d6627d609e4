//! Hand-drawn grid maps 手绘网格图 to polygons: georeference a photographed sketch with ground
//! control points, vectorise the drawn lines into faces that share their edges exactly, and
//! transform them to WGS-84. Pure and synchronous: no database, no HTTP.

pub mod binarise;
pub mod evaluation;
pub mod faces;
pub mod image_input;
pub mod mask;
pub mod morphology;
pub mod pipeline;
pub mod samples;
pub mod thinning;
pub mod trace;
pub mod transform;
pub mod vectorise;
pub mod warp;
