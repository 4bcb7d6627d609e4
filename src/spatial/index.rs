//! The in-memory region index: an R-tree (rstar) per level over the current boundaries, with
//! exact point-in-polygon on the candidates. Answers "which grid is this point in" without the
//! database; it is rebuilt from storage whenever the regions change and swapped in whole.

use super::distance::{metres_per_deg_lon, METRES_PER_DEG_LAT};
use super::pip::PreparedPolygon;
use super::raster::{Cell, Raster};
use crate::domain::Level;
use geo::MultiPolygon;
use rstar::primitives::{GeomWithData, Rectangle};
use rstar::{RTree, AABB};
use serde::Serialize;
use std::collections::HashMap;
use std::sync::Arc;

/// A region's current boundary and the facts locate answers with.
#[derive(Debug, Clone)]
pub struct RegionRecord {
    pub code: String,
    pub name: String,
    pub level: Level,
    pub parent_code: Option<String>,
    /// id of the `region_version` row this boundary comes from
    pub version_id: i64,
    pub geom: MultiPolygon<f64>,
    pub party_branch: Option<Arc<PartyBranchInfo>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct PartyBranchInfo {
    pub region_code: String,
    pub name: String,
    pub secretary: Option<String>,
    pub contact: Option<String>,
}

/// How a point was assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LocateStatus {
    /// inside a grid
    Inside,
    /// outside every grid but within the near distance of one: assigned to the nearest
    Near,
    /// outside and not near any grid: assigned to the enclosing district (属地兜底), if any
    Outside,
}

impl LocateStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LocateStatus::Inside => "inside",
            LocateStatus::Near => "near",
            LocateStatus::Outside => "outside",
        }
    }
}

/// The result of locating one point. Holds the deepest assigned region; the rest of the chain
/// follows its parents, so locating allocates nothing.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Assignment {
    pub status: LocateStatus,
    deepest: Option<u32>,
    /// distance in metres to the assigned grid, for `Near`
    pub distance_m: Option<f64>,
}

type Node = GeomWithData<Rectangle<[f64; 2]>, u32>;

struct Entry {
    record: RegionRecord,
    parent: Option<u32>,
    poly: PreparedPolygon,
}

/// Immutable index over one set of current region boundaries.
pub struct RegionIndex {
    entries: Vec<Entry>,
    by_code: HashMap<String, u32>,
    trees: [RTree<Node>; 5],
    /// true for a grid split into micro-grids: only then is the micro-grid tree searched
    /// (kept apart from `entries` so the hot path touches one small array)
    split: Vec<bool>,
    /// cached answers for most points: which grid, or that none is near
    grid_raster: Raster,
    /// cached street answers for points outside every grid (communities lie in streets)
    street_raster: Raster,
    /// cached district answers for points outside every street
    district_raster: Raster,
    near_m: f64,
}

/// Raster cell sizes: grids are a few hundred metres across, districts tens of kilometres.
const GRID_CELL_M: f64 = 20.0;
const STREET_CELL_M: f64 = 50.0;
const DISTRICT_CELL_M: f64 = 100.0;

impl RegionIndex {
    /// Builds the index. Regions are ordered by code so that ties break towards the smaller code.
    /// A region whose parent is missing from the set is kept, as the top of its own chain.
    pub fn new(mut records: Vec<RegionRecord>, near_m: f64) -> Self {
        records.sort_by(|a, b| a.code.cmp(&b.code));
        records.dedup_by(|a, b| a.code == b.code);
        let by_code: HashMap<String, u32> = records
            .iter()
            .enumerate()
            .map(|(i, r)| (r.code.clone(), i as u32))
            .collect();
        let mut per_level: [Vec<Node>; 5] = Default::default();
        let entries: Vec<Entry> = records
            .into_iter()
            .enumerate()
            .map(|(i, record)| {
                let poly = PreparedPolygon::new(&record.geom);
                if let Some(b) = poly.bbox() {
                    let rect =
                        Rectangle::from_corners([b.min().x, b.min().y], [b.max().x, b.max().y]);
                    per_level[record.level.depth()].push(GeomWithData::new(rect, i as u32));
                }
                let parent = record
                    .parent_code
                    .as_ref()
                    .and_then(|p| by_code.get(p).copied());
                Entry {
                    record,
                    parent,
                    poly,
                }
            })
            .collect();
        let mut split = vec![false; entries.len()];
        for e in &entries {
            if let (Level::MicroGrid, Some(p)) = (e.record.level, e.parent) {
                split[p as usize] = true;
            }
        }
        let trees = per_level.map(RTree::bulk_load);
        let raster_of = |level: Level, cell_m: f64, near: f64| {
            let (polys, ids): (Vec<PreparedPolygon>, Vec<u32>) = entries
                .iter()
                .enumerate()
                .filter(|(_, e)| e.record.level == level)
                .map(|(i, e)| (e.poly.clone(), i as u32))
                .unzip();
            Raster::build(&polys, &ids, cell_m, near)
        };
        let grid_raster = raster_of(Level::Grid, GRID_CELL_M, near_m.max(0.0));
        let street_raster = raster_of(Level::Street, STREET_CELL_M, 0.0);
        let district_raster = raster_of(Level::District, DISTRICT_CELL_M, 0.0);
        RegionIndex {
            entries,
            by_code,
            trees,
            split,
            grid_raster,
            street_raster,
            district_raster,
            near_m,
        }
    }

    pub fn empty() -> Self {
        RegionIndex::new(Vec::new(), 50.0)
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn near_m(&self) -> f64 {
        self.near_m
    }

    /// Bytes held by the raster caches.
    pub fn raster_bytes(&self) -> usize {
        self.grid_raster.memory_bytes()
            + self.street_raster.memory_bytes()
            + self.district_raster.memory_bytes()
    }

    /// The same answer as [`locate`](Self::locate), without the raster caches: for tests and
    /// benchmarks that check the caches change nothing.
    pub fn locate_exact(&self, x: f64, y: f64) -> Assignment {
        if let Some(grid) = self.containing(Level::Grid, x, y) {
            let deepest = if self.split[grid as usize] {
                self.containing(Level::MicroGrid, x, y).unwrap_or(grid)
            } else {
                grid
            };
            return Assignment {
                status: LocateStatus::Inside,
                deepest: Some(deepest),
                distance_m: None,
            };
        }
        if let Some((grid, d)) = self.nearest_grid(x, y) {
            return Assignment {
                status: LocateStatus::Near,
                deepest: Some(grid),
                distance_m: Some(d),
            };
        }
        let deepest = [Level::Community, Level::Street, Level::District]
            .into_iter()
            .find_map(|level| self.containing(level, x, y));
        Assignment {
            status: LocateStatus::Outside,
            deepest,
            distance_m: None,
        }
    }

    pub fn count(&self, level: Level) -> usize {
        self.trees[level.depth()].size()
    }

    pub fn get(&self, code: &str) -> Option<&RegionRecord> {
        self.by_code
            .get(code)
            .map(|&i| &self.entries[i as usize].record)
    }

    pub fn records(&self) -> impl Iterator<Item = &RegionRecord> {
        self.entries.iter().map(|e| &e.record)
    }

    /// The region of `level` containing (x, y); the smallest code wins if several claim it.
    #[inline]
    fn containing(&self, level: Level, x: f64, y: f64) -> Option<u32> {
        let mut best: Option<u32> = None;
        for node in self.trees[level.depth()].locate_all_at_point(&[x, y]) {
            let i = node.data;
            if best.is_some_and(|b| b <= i) {
                continue;
            }
            if self.entries[i as usize].poly.contains(x, y) {
                best = Some(i);
            }
        }
        best
    }

    /// The polygon holding (x, y) according to a raster cell, testing a mixed cell's candidates
    /// exactly (ascending, so the smallest code wins as in [`containing`](Self::containing)).
    #[inline]
    fn resolve(&self, cell: Cell<'_>, x: f64, y: f64) -> Option<u32> {
        match cell {
            Cell::Inside(i) => Some(i),
            Cell::Mixed(ids) => ids
                .iter()
                .copied()
                .find(|&i| self.entries[i as usize].poly.contains(x, y)),
            Cell::EmptyNear(_) | Cell::Far => None,
        }
    }

    /// The nearest grid within the near distance, with its distance in metres.
    fn nearest_grid(&self, x: f64, y: f64) -> Option<(u32, f64)> {
        if self.near_m <= 0.0 {
            return None;
        }
        let dx = self.near_m / metres_per_deg_lon(y).max(1.0);
        let dy = self.near_m / METRES_PER_DEG_LAT;
        let search = AABB::from_corners([x - dx, y - dy], [x + dx, y + dy]);
        let candidates = self.trees[Level::Grid.depth()]
            .locate_in_envelope_intersecting(&search)
            .map(|node| node.data);
        self.nearest_of(candidates, x, y)
    }

    /// The nearest of `candidates` within the near distance; the smaller index on a tie.
    fn nearest_of(
        &self,
        candidates: impl Iterator<Item = u32>,
        x: f64,
        y: f64,
    ) -> Option<(u32, f64)> {
        if self.near_m <= 0.0 {
            return None;
        }
        let mut best: Option<(u32, f64)> = None;
        for i in candidates {
            let d = self.entries[i as usize].poly.boundary_distance_m(x, y);
            if d > self.near_m {
                continue;
            }
            let better = match best {
                None => true,
                Some((bi, bd)) => d < bd || (d == bd && i < bi),
            };
            if better {
                best = Some((i, d));
            }
        }
        best
    }

    /// Assigns a WGS-84 position to its grid chain.
    pub fn locate(&self, x: f64, y: f64) -> Assignment {
        let cell = self.grid_raster.cell(x, y);
        let grid = self.resolve(cell, x, y);
        if let Some(grid) = grid {
            let deepest = if self.split[grid as usize] {
                self.containing(Level::MicroGrid, x, y).unwrap_or(grid)
            } else {
                grid
            };
            return Assignment {
                status: LocateStatus::Inside,
                deepest: Some(deepest),
                distance_m: None,
            };
        }
        let near = match cell {
            Cell::Far => None,
            Cell::EmptyNear(ids) => self.nearest_of(ids.iter().copied(), x, y),
            Cell::Mixed(_) | Cell::Inside(_) => self.nearest_grid(x, y),
        };
        if let Some((grid, d)) = near {
            return Assignment {
                status: LocateStatus::Near,
                deepest: Some(grid),
                distance_m: Some(d),
            };
        }
        // Communities lie inside streets (checked on import), so no street means no community.
        let deepest = match self.resolve(self.street_raster.cell(x, y), x, y) {
            Some(street) => Some(self.containing(Level::Community, x, y).unwrap_or(street)),
            None => self.resolve(self.district_raster.cell(x, y), x, y),
        };
        Assignment {
            status: LocateStatus::Outside,
            deepest,
            distance_m: None,
        }
    }

    /// The assigned regions from the deepest up to the district.
    pub fn ancestors<'a>(&'a self, a: &Assignment) -> impl Iterator<Item = &'a RegionRecord> + 'a {
        // Codes grow with depth, so storage cannot produce a cycle; the bound is for safety.
        std::iter::successors(a.deepest, |&i| self.entries[i as usize].parent)
            .take(Level::ALL.len())
            .map(|i| &self.entries[i as usize].record)
    }

    /// The assigned regions, top level first.
    pub fn chain<'a>(&'a self, a: &Assignment) -> Vec<&'a RegionRecord> {
        let mut chain: Vec<_> = self.ancestors(a).collect();
        chain.reverse();
        chain
    }

    /// The deepest assigned region.
    pub fn deepest<'a>(&'a self, a: &Assignment) -> Option<&'a RegionRecord> {
        a.deepest.map(|i| &self.entries[i as usize].record)
    }

    /// The region of `level` in an assignment's chain.
    pub fn at_level<'a>(&'a self, a: &Assignment, level: Level) -> Option<&'a RegionRecord> {
        self.ancestors(a).find(|r| r.level == level)
    }

    /// The responsible party branch: the deepest region in the chain that has one.
    pub fn party_branch<'a>(&'a self, a: &Assignment) -> Option<&'a Arc<PartyBranchInfo>> {
        self.ancestors(a).find_map(|r| r.party_branch.as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use geo::polygon;

    fn rect(x0: f64, y0: f64, x1: f64, y1: f64) -> MultiPolygon<f64> {
        MultiPolygon(vec![polygon![
            (x: x0, y: y0), (x: x1, y: y0), (x: x1, y: y1), (x: x0, y: y1), (x: x0, y: y0)
        ]])
    }

    fn rec(
        code: &str,
        level: Level,
        parent: Option<&str>,
        geom: MultiPolygon<f64>,
    ) -> RegionRecord {
        RegionRecord {
            code: code.into(),
            name: format!("r{code}"),
            level,
            parent_code: parent.map(Into::into),
            version_id: 1,
            geom,
            party_branch: (level == Level::Grid).then(|| {
                Arc::new(PartyBranchInfo {
                    region_code: code.into(),
                    name: format!("branch {code}"),
                    secretary: None,
                    contact: None,
                })
            }),
        }
    }

    /// District 0..1 × 0..1 degree; one street, one community covering 0.4..0.6; two grids
    /// side by side sharing the edge x = 0.5; the left grid split into two micro-grids.
    fn sample() -> RegionIndex {
        RegionIndex::new(
            vec![
                rec("150302", Level::District, None, rect(0.0, 0.0, 1.0, 1.0)),
                rec(
                    "150302001",
                    Level::Street,
                    Some("150302"),
                    rect(0.4, 0.4, 0.6, 0.6),
                ),
                rec(
                    "150302001001",
                    Level::Community,
                    Some("150302001"),
                    rect(0.4, 0.4, 0.6, 0.6),
                ),
                rec(
                    "150302001001001",
                    Level::Grid,
                    Some("150302001001"),
                    rect(0.4, 0.4, 0.5, 0.6),
                ),
                rec(
                    "150302001001002",
                    Level::Grid,
                    Some("150302001001"),
                    rect(0.5, 0.4, 0.6, 0.6),
                ),
                rec(
                    "15030200100100101",
                    Level::MicroGrid,
                    Some("150302001001001"),
                    rect(0.4, 0.4, 0.5, 0.5),
                ),
                rec(
                    "15030200100100102",
                    Level::MicroGrid,
                    Some("150302001001001"),
                    rect(0.4, 0.5, 0.5, 0.6),
                ),
            ],
            50.0,
        )
    }

    fn codes(ix: &RegionIndex, a: &Assignment) -> Vec<String> {
        ix.chain(a).into_iter().map(|r| r.code.clone()).collect()
    }

    #[test]
    fn inside_a_micro_grid_gives_the_full_chain() {
        let ix = sample();
        let a = ix.locate(0.45, 0.45);
        assert_eq!(a.status, LocateStatus::Inside);
        assert_eq!(
            codes(&ix, &a),
            [
                "150302",
                "150302001",
                "150302001001",
                "150302001001001",
                "15030200100100101"
            ]
        );
        assert_eq!(ix.party_branch(&a).unwrap().region_code, "150302001001001");
    }

    #[test]
    fn shared_edge_goes_to_exactly_one_grid_every_time() {
        let ix = sample();
        let a = ix.locate(0.5, 0.55);
        let b = ix.locate(0.5, 0.55);
        assert_eq!(a, b);
        assert_eq!(a.status, LocateStatus::Inside);
        // the half-open rule gives a point on a vertical shared edge to the eastern neighbour
        assert_eq!(
            ix.at_level(&a, Level::Grid).unwrap().code,
            "150302001001002"
        );
    }

    #[test]
    fn near_a_grid_is_assigned_to_it() {
        let ix = sample();
        // 0.0003° of latitude is about 33 m below the grids' bottom edge
        let a = ix.locate(0.55, 0.3997);
        assert_eq!(a.status, LocateStatus::Near);
        assert_eq!(ix.deepest(&a).unwrap().code, "150302001001002");
        let d = a.distance_m.unwrap();
        assert!((30.0..36.0).contains(&d), "{d}");
    }

    #[test]
    fn far_outside_falls_back_to_the_district() {
        let ix = sample();
        let a = ix.locate(0.1, 0.1);
        assert_eq!(a.status, LocateStatus::Outside);
        assert_eq!(codes(&ix, &a), ["150302"]);
        assert!(ix.party_branch(&a).is_none());
    }

    #[test]
    fn outside_every_region_is_unassigned() {
        let ix = sample();
        let a = ix.locate(5.0, 5.0);
        assert_eq!(a.status, LocateStatus::Outside);
        assert!(ix.deepest(&a).is_none());
    }

    #[test]
    fn empty_index_answers_outside() {
        let ix = RegionIndex::empty();
        assert_eq!(ix.locate(106.8, 39.6).status, LocateStatus::Outside);
        assert!(ix.is_empty());
    }
}
