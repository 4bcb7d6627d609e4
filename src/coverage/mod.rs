//! Coverage validation and cleaning: a set of sibling polygons checked and repaired so that
//! they tile their parent without gaps or overlaps. Pure geometry over `geo` types.

pub mod clean;
pub mod edit;
pub mod validate;
