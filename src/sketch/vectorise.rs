//! The vectoriser: photographed sketch → candidate polygons in image pixels.
//!
//! binarise (adaptive to light and pencil) → remove specks → close small pen gaps →
//! thin and snap dangling ends across larger gaps → faces of the paper (text and doodles
//! enclose nothing and vanish; tiny enclosed bits are dropped) → ink shared out to the
//! nearest face (one boundary in the middle of each line) → trace, cut at junctions, simplify
//! each shared chain once → polygons whose neighbours share their edges exactly.
//! [`to_wgs84`] maps a face through a fitted GCP transform (any pixel → lon/lat function).
//!
//! ```
//! use gridwatch::sketch::vectorise::{vectorise, VectoriseOptions};
//! // A white page with a ruled rectangle split in two.
//! let mut img = image::GrayImage::from_pixel(400, 300, image::Luma([235]));
//! for x in 50..350 { for t in 0..3 { img.put_pixel(x, 50 + t, image::Luma([60])); img.put_pixel(x, 250 + t, image::Luma([60])); } }
//! for y in 50..253 { for t in 0..3 { img.put_pixel(50 + t, y, image::Luma([60])); img.put_pixel(350 + t, y, image::Luma([60])); img.put_pixel(200 + t, y, image::Luma([60])); } }
//! let v = vectorise(&image::DynamicImage::ImageLuma8(img), &VectoriseOptions::default());
//! assert_eq!(v.faces.len(), 2);
//! ```

use super::binarise::{binarise, DEFAULT_INK_RATIO};
use super::faces::{faces, OUTSIDE};
use super::mask::Mask;
use super::morphology::{close, remove_specks};
use super::thinning::{snap_dangling_ends, thin};
use super::trace::{signed_area, trace};
use geo::{Coord, LineString, MultiPolygon, Polygon};
use image::DynamicImage;
use serde::{Deserialize, Serialize};

/// Knobs, in pixels of the uploaded image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct VectoriseOptions {
    /// images are processed with their longer side at most this long
    pub max_side: u32,
    /// ink is darker than this fraction of the paper around it
    pub ink_ratio: f64,
    /// pen gaps up to this wide are closed by morphology (wider ones by snapping line ends);
    /// kept small so that hatching does not merge into a blob
    pub gap_px: f64,
    /// dangling line ends are extended this far to meet the line they aim at
    pub snap_px: f64,
    /// enclosed areas smaller than this fraction of the image are not areas (letters, hatching)
    pub min_face_fraction: f64,
    /// boundary simplification tolerance
    pub simplify_px: f64,
}

impl Default for VectoriseOptions {
    fn default() -> Self {
        VectoriseOptions {
            max_side: 1600,
            ink_ratio: DEFAULT_INK_RATIO,
            gap_px: 4.0,
            snap_px: 40.0,
            min_face_fraction: 0.002,
            simplify_px: 2.0,
        }
    }
}

/// A candidate polygon, in pixels of the uploaded image (x right, y down).
#[derive(Debug, Clone, Serialize)]
pub struct Face {
    pub id: usize,
    /// closed rings; outer rings first-class, holes inside them
    pub rings: Vec<Vec<(f64, f64)>>,
    pub area_px: f64,
    /// 0–1: share of the boundary that was drawn (not inferred across gaps), reduced for
    /// unusually small faces and faces running off the photo
    pub confidence: f64,
    pub problems: Vec<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct SketchProblem {
    /// `open_line_end`, `tiny_face`, `no_faces`
    pub kind: &'static str,
    pub message: String,
    /// where, in image pixels
    pub pixel: Option<(f64, f64)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Vectorised {
    pub width: u32,
    pub height: u32,
    /// working scale: processing pixels per image pixel
    pub scale: f64,
    pub faces: Vec<Face>,
    pub problems: Vec<SketchProblem>,
}

/// The skeleton of the drawing's lines, whose dangling ends may be snapped: the 8-connected ink
/// components that are the drawing (the largest, and any a quarter of its size) or pieces of a
/// boundary cut off by gaps: long, thin, and alone. Writing and symbols are short; hatching
/// strokes are long and thin too, but come with parallel neighbours a few pixels away. Snapping
/// their ends would draw false boundaries; they stay ink, and the flood later gives them to the
/// area they lie in.
fn snappable(
    ink: &Mask,
    skeleton: &Mask,
    min_extent: f64,
    max_width: f64,
    neighbourhood: f64,
) -> Mask {
    let (w, h) = (ink.width, ink.height);
    let mut comp_of = vec![u32::MAX; w * h];
    let components: Vec<(Vec<usize>, usize, f64)> = ink
        .components8()
        .into_iter()
        .enumerate()
        .map(|(id, comp)| {
            let (mut x0, mut y0, mut x1, mut y1) = (usize::MAX, usize::MAX, 0, 0);
            for &p in &comp {
                comp_of[p] = id as u32;
                let (x, y) = (p % w, p / w);
                (x0, y0, x1, y1) = (x0.min(x), y0.min(y), x1.max(x), y1.max(y));
            }
            let skeleton_px = comp.iter().filter(|&&p| skeleton.data[p]).count();
            let extent = (((x1 - x0) as f64).powi(2) + ((y1 - y0) as f64).powi(2)).sqrt();
            (comp, skeleton_px, extent)
        })
        .collect();
    let largest = components.iter().map(|c| c.0.len()).max().unwrap_or(0);
    let is_drawing = |c: &(Vec<usize>, usize, f64)| c.0.len() * 4 >= largest;
    // Probe offsets on a ring around each skeleton pixel.
    let r = neighbourhood;
    let probes: Vec<(isize, isize)> = (0..16)
        .map(|k| {
            let a = k as f64 * std::f64::consts::TAU / 16.0;
            (
                (r * a.cos()).round() as isize,
                (r * a.sin()).round() as isize,
            )
        })
        .collect();
    let mut out = Mask::new(w, h);
    for (id, c) in components.iter().enumerate() {
        let (comp, skeleton_px, extent) = c;
        let keep = if is_drawing(c) {
            true
        } else if *extent < min_extent
            || (comp.len() as f64) > max_width * (*skeleton_px).max(1) as f64
        {
            false
        } else {
            // Share of probes around the stroke that land on other, non-drawing ink.
            let (mut hits, mut total) = (0usize, 0usize);
            for &p in comp.iter().filter(|&&p| skeleton.data[p]) {
                let (x, y) = ((p % w) as isize, (p / w) as isize);
                for &(dx, dy) in &probes {
                    let (nx, ny) = (x + dx, y + dy);
                    if nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                        continue;
                    }
                    total += 1;
                    let q = comp_of[ny as usize * w + nx as usize];
                    if q != u32::MAX && q as usize != id && !is_drawing(&components[q as usize]) {
                        hits += 1;
                    }
                }
            }
            total == 0 || (hits as f64) < 0.08 * total as f64
        };
        if keep {
            for &p in comp {
                out.data[p] = skeleton.data[p];
            }
        }
    }
    out
}

/// Vectorises a sketch image.
pub fn vectorise(img: &DynamicImage, opts: &VectoriseOptions) -> Vectorised {
    let (width, height) = (img.width(), img.height());
    let longer = width.max(height).max(1);
    let scale = if longer > opts.max_side {
        opts.max_side as f64 / longer as f64
    } else {
        1.0
    };
    let gray = {
        let g = img.to_luma8();
        if scale < 1.0 {
            let (w, h) = (
                ((width as f64) * scale).round().max(1.0) as u32,
                ((height as f64) * scale).round().max(1.0) as u32,
            );
            image::imageops::resize(&g, w, h, image::imageops::FilterType::Triangle)
        } else {
            g
        }
    };
    let (w, h) = (gray.width() as usize, gray.height() as usize);
    let mut ink = binarise(&gray, opts.ink_ratio);
    remove_specks(&mut ink, 12);
    let drawn = ink.clone();
    let radius = ((opts.gap_px * scale) / 2.0).round().max(1.0) as usize;
    let mut closed = close(&ink, radius);

    let skeleton = thin(&closed);
    let diagonal = ((w * w + h * h) as f64).sqrt();
    let line_skeleton = snappable(&closed, &skeleton, 0.04 * diagonal, 8.0, 12.0);
    // A stroke shorter than half the snap distance past a junction is an overshoot at a corner,
    // not a line that stops short: leave it (and do not report it).
    let min_stroke = ((opts.snap_px * scale) / 2.0).round().max(10.0) as usize;
    let snaps = snap_dangling_ends(
        &mut closed,
        &line_skeleton,
        opts.snap_px * scale,
        min_stroke,
    );

    let min_face_px = ((opts.min_face_fraction * (w * h) as f64) as usize).max(50);
    let labels = faces(&closed, min_face_px);
    let traced = trace(&labels, (opts.simplify_px * scale).max(0.5));

    // Share of each face's boundary pixels that are drawn ink (not closed or snapped gaps).
    let mut boundary = vec![(0usize, 0usize); labels.faces.len() + 1];
    for y in 0..h {
        for x in 0..w {
            let f = labels.data[y * w + x];
            if f == OUTSIDE {
                continue;
            }
            let other = |nx: isize, ny: isize| {
                nx < 0
                    || ny < 0
                    || nx as usize >= w
                    || ny as usize >= h
                    || labels.data[ny as usize * w + nx as usize] != f
            };
            let (xi, yi) = (x as isize, y as isize);
            if other(xi - 1, yi) || other(xi + 1, yi) || other(xi, yi - 1) || other(xi, yi + 1) {
                boundary[f as usize].0 += 1;
                if drawn.data[y * w + x] {
                    boundary[f as usize].1 += 1;
                }
            }
        }
    }

    let to_image = |p: &(f64, f64)| (p.0 / scale, p.1 / scale);
    let mut out_faces: Vec<Face> = traced
        .iter()
        .map(|t| {
            let rings: Vec<Vec<(f64, f64)>> = t
                .rings
                .iter()
                .map(|r| r.iter().map(to_image).collect())
                .collect();
            let area_px: f64 = rings.iter().map(|r| signed_area(r)).sum();
            let stats = &labels.faces[t.label as usize - 1];
            let (all, ink_px) = boundary[t.label as usize];
            let drawn_share = if all == 0 {
                0.0
            } else {
                ink_px as f64 / all as f64
            };
            let mut problems = Vec::new();
            if drawn_share < 0.9 {
                problems.push(format!(
                    "{:.0} % of the boundary was inferred across gaps in the line",
                    (1.0 - drawn_share) * 100.0
                ));
            }
            if stats.touches_edge {
                problems.push("the area runs off the edge of the photo".to_owned());
            }
            Face {
                id: t.label as usize,
                rings,
                area_px,
                confidence: drawn_share * if stats.touches_edge { 0.5 } else { 1.0 },
                problems,
            }
        })
        .collect();
    // Unusually small faces are suspicious (a stray loop, a letter drawn large).
    let mut areas: Vec<f64> = out_faces.iter().map(|f| f.area_px).collect();
    areas.sort_by(f64::total_cmp);
    if let Some(&median) = areas.get(areas.len() / 2) {
        for f in &mut out_faces {
            if f.area_px < 0.2 * median {
                f.confidence *= (f.area_px / (0.2 * median)).clamp(0.0, 1.0);
                f.problems.push(format!(
                    "much smaller than the other areas ({:.0} px² against a median of {:.0})",
                    f.area_px, median
                ));
            }
            f.confidence = (f.confidence * 100.0).round() / 100.0;
        }
    }

    let mut problems: Vec<SketchProblem> = snaps
        .iter()
        .filter(|s| s.to.is_none())
        .map(|s| {
            let p = to_image(&(s.from.0 as f64, s.from.1 as f64));
            SketchProblem {
                kind: "open_line_end",
                message: format!("a line ends at ({:.0}, {:.0}) without meeting another: an area there may be unclosed", p.0, p.1),
                pixel: Some(p),
            }
        })
        .collect();
    for d in labels
        .dropped
        .iter()
        .filter(|d| d.paper_px * 4 > min_face_px)
    {
        let p = to_image(&(d.at.0 as f64, d.at.1 as f64));
        problems.push(SketchProblem {
            kind: "tiny_face",
            message: format!(
                "a small enclosed area at ({:.0}, {:.0}) was taken for writing and dropped",
                p.0, p.1
            ),
            pixel: Some(p),
        });
    }
    if out_faces.is_empty() {
        problems.push(SketchProblem {
            kind: "no_faces",
            message:
                "no closed areas were found: is the drawing on the photo, and are its lines closed?"
                    .into(),
            pixel: None,
        });
    }
    Vectorised {
        width,
        height,
        scale,
        faces: out_faces,
        problems,
    }
}

/// A face in WGS-84 through `to_lonlat` (a fitted transform's pixel → lon/lat), with exterior
/// rings counter-clockwise and holes clockwise (RFC 7946). Shared pixel vertices map to
/// identical coordinates.
pub fn to_wgs84(face: &Face, to_lonlat: impl Fn(f64, f64) -> (f64, f64)) -> MultiPolygon<f64> {
    let map_ring = |r: &Vec<(f64, f64)>| -> LineString<f64> {
        r.iter()
            .map(|&(x, y)| {
                let (lon, lat) = to_lonlat(x, y);
                Coord { x: lon, y: lat }
            })
            .collect()
    };
    let mut outers: Vec<Polygon<f64>> = Vec::new();
    let mut holes: Vec<LineString<f64>> = Vec::new();
    for r in &face.rings {
        let ls = map_ring(r);
        if signed_area(r) > 0.0 {
            outers.push(Polygon::new(ls, vec![]));
        } else {
            holes.push(ls);
        }
    }
    for hole in holes {
        let Some(first) = hole.0.first().copied() else {
            continue;
        };
        let target = outers
            .iter()
            .position(|o| {
                geo::Contains::contains(o, &geo::Point::from(first))
                    || geo::Intersects::intersects(o, &geo::Point::from(first))
            })
            .or(if outers.len() == 1 { Some(0) } else { None });
        if let Some(i) = target {
            outers[i].interiors_push(hole);
        }
    }
    geo::Orient::orient(&MultiPolygon(outers), geo::orient::Direction::Default)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hand-ish drawing: a frame split into three areas, one pen gap of 5 px, one stroke
    /// stopping 20 px short of the frame, a scribbled label and a little closed box.
    fn sketch() -> DynamicImage {
        let mut m = Mask::new(600, 400);
        m.draw_line((50, 50), (300, 50), 1);
        m.draw_line((306, 50), (550, 50), 1); // 5 px gap
        m.draw_line((550, 50), (550, 350), 1);
        m.draw_line((550, 350), (50, 350), 1);
        m.draw_line((50, 350), (50, 50), 1);
        m.draw_line((250, 50), (250, 350), 1);
        m.draw_line((250, 200), (530, 200), 1); // stops 20 px short of the right side
                                                // label scribble and a small box in the left area
        m.draw_line((120, 190), (140, 170), 0);
        m.draw_line((140, 170), (150, 195), 0);
        m.draw_line((160, 180), (172, 180), 0);
        m.draw_line((172, 180), (172, 192), 0);
        m.draw_line((172, 192), (160, 192), 0);
        m.draw_line((160, 192), (160, 180), 0);
        let img = image::GrayImage::from_fn(600, 400, |x, y| {
            // paper darker towards the bottom right, like a shadow
            let paper = 235.0 - 60.0 * (x as f64 / 600.0) * (y as f64 / 400.0);
            let v = if m.get(x as usize, y as usize) {
                paper * 0.55
            } else {
                paper
            };
            image::Luma([v as u8])
        });
        DynamicImage::ImageLuma8(img)
    }

    #[test]
    fn finds_the_three_areas_with_shared_edges() {
        let v = vectorise(&sketch(), &VectoriseOptions::default());
        assert_eq!(v.faces.len(), 3, "{:?}", v.problems);
        let mut areas: Vec<f64> = v.faces.iter().map(|f| f.area_px).collect();
        areas.sort_by(f64::total_cmp);
        // 200×300, 300×150, 300×150 to the middle of the lines
        assert!((areas[0] - 45_000.0).abs() < 2_500.0, "{areas:?}");
        assert!((areas[2] - 60_000.0).abs() < 2_500.0, "{areas:?}");
        // every vertex on the long vertical divider at x = 250 is shared by the areas either side
        let on_divider = |f: &Face| -> Vec<(f64, f64)> {
            f.rings[0]
                .iter()
                .copied()
                .filter(|p| (p.0 - 251.0).abs() < 3.0 && p.1 > 60.0 && p.1 < 340.0)
                .collect()
        };
        let left = v
            .faces
            .iter()
            .max_by(|a, b| a.area_px.total_cmp(&b.area_px))
            .unwrap();
        for right in v.faces.iter().filter(|f| f.id != left.id) {
            for p in on_divider(right) {
                assert!(left.rings[0].contains(&p), "{p:?} is not shared");
            }
        }
        // the right areas' boundary was partly inferred (the snapped gap)
        assert!(v.faces.iter().any(|f| f.confidence < 1.0));
    }

    #[test]
    fn blank_page_has_no_faces() {
        let img =
            DynamicImage::ImageLuma8(image::GrayImage::from_pixel(300, 200, image::Luma([230])));
        let v = vectorise(&img, &VectoriseOptions::default());
        assert!(v.faces.is_empty());
        assert_eq!(v.problems[0].kind, "no_faces");
    }

    #[test]
    fn large_images_are_scaled_down() {
        // Four times larger: the gaps are four times wider too, in image pixels.
        let img = sketch().resize_exact(2400, 1600, image::imageops::FilterType::Triangle);
        let opts = VectoriseOptions {
            gap_px: 24.0,
            snap_px: 120.0,
            ..VectoriseOptions::default()
        };
        let v = vectorise(&img, &opts);
        assert!((v.scale - 1600.0 / 2400.0).abs() < 1e-9);
        assert_eq!(v.faces.len(), 3);
        let total: f64 = v.faces.iter().map(|f| f.area_px).sum();
        assert!((total - 16.0 * 150_000.0).abs() < 16.0 * 8_000.0, "{total}");
    }
}
