//! Faces of a line drawing: the enclosed areas of paper. Paper pixels are grouped into
//! 4-connected regions; regions touching the photo's edge are "outside"; regions too small to
//! be a drawn area (inside letters, between hatching strokes) are dropped. Then every remaining
//! pixel (the ink and the dropped bits) goes to the nearest face by a breadth-first flood from
//! all faces at once, so two neighbouring faces meet along the middle of the line between them:
//! one boundary, shared exactly.

use super::mask::Mask;
use std::collections::VecDeque;

/// Label of the area outside the drawing.
pub const OUTSIDE: u32 = 0;
const UNSET: u32 = u32::MAX;

/// A face before tracing.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceStats {
    pub label: u32,
    /// paper pixels of the face as found (before the ink was shared out)
    pub paper_px: usize,
    /// pixels after the flood
    pub area_px: usize,
    /// true if the face reaches the edge of the photo after the flood
    pub touches_edge: bool,
}

/// A region that was too small to be an area, kept for the problem list.
#[derive(Debug, Clone, PartialEq)]
pub struct Dropped {
    pub paper_px: usize,
    /// a pixel inside it
    pub at: (usize, usize),
}

pub struct Labels {
    pub width: usize,
    pub height: usize,
    /// one label a pixel: OUTSIDE or a face label 1..=faces.len()
    pub data: Vec<u32>,
    pub faces: Vec<FaceStats>,
    pub dropped: Vec<Dropped>,
}

/// Finds the faces of `ink`; regions of fewer than `min_face_px` paper pixels are dropped.
pub fn faces(ink: &Mask, min_face_px: usize) -> Labels {
    let (w, h) = (ink.width, ink.height);
    let mut data = vec![UNSET; w * h];
    let mut faces = Vec::new();
    let mut dropped = Vec::new();
    let mut region = Vec::new();
    let mut stack = Vec::new();
    let mut seen = vec![false; w * h];
    for start in 0..w * h {
        if ink.data[start] || seen[start] {
            continue;
        }
        region.clear();
        stack.push(start);
        seen[start] = true;
        let mut on_edge = false;
        while let Some(p) = stack.pop() {
            region.push(p);
            let (x, y) = (p % w, p / w);
            on_edge |= x == 0 || y == 0 || x == w - 1 || y == h - 1;
            let mut visit = |q: usize| {
                if !ink.data[q] && !seen[q] {
                    seen[q] = true;
                    stack.push(q);
                }
            };
            if x > 0 {
                visit(p - 1);
            }
            if x + 1 < w {
                visit(p + 1);
            }
            if y > 0 {
                visit(p - w);
            }
            if y + 1 < h {
                visit(p + w);
            }
        }
        let label = if on_edge {
            OUTSIDE
        } else if region.len() >= min_face_px {
            faces.push(FaceStats {
                label: faces.len() as u32 + 1,
                paper_px: region.len(),
                area_px: 0,
                touches_edge: false,
            });
            faces.len() as u32
        } else {
            dropped.push(Dropped {
                paper_px: region.len(),
                at: (region[0] % w, region[0] / w),
            });
            continue;
        };
        for &p in &region {
            data[p] = label;
        }
    }
    // Multi-source flood: every unlabelled pixel takes the label that reaches it first.
    let mut queue: VecDeque<usize> = (0..w * h).filter(|&p| data[p] != UNSET).collect();
    while let Some(p) = queue.pop_front() {
        let label = data[p];
        let (x, y) = (p % w, p / w);
        let mut spread = |q: usize| {
            if data[q] == UNSET {
                data[q] = label;
                queue.push_back(q);
            }
        };
        if x > 0 {
            spread(p - 1);
        }
        if x + 1 < w {
            spread(p + 1);
        }
        if y > 0 {
            spread(p - w);
        }
        if y + 1 < h {
            spread(p + w);
        }
    }
    // An image that is all ink has no seed: call it outside.
    for v in &mut data {
        if *v == UNSET {
            *v = OUTSIDE;
        }
    }
    for (p, &label) in data.iter().enumerate() {
        if label != OUTSIDE {
            let f = &mut faces[label as usize - 1];
            f.area_px += 1;
            let (x, y) = (p % w, p / w);
            f.touches_edge |= x == 0 || y == 0 || x == w - 1 || y == h - 1;
        }
    }
    Labels {
        width: w,
        height: h,
        data,
        faces,
        dropped,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 60×40 drawing: an outer frame split by a vertical line into two faces, with a tiny
    /// closed box (like the character 口) inside the left face.
    fn drawing() -> Mask {
        let mut m = Mask::new(60, 40);
        m.draw_line((5, 5), (54, 5), 1);
        m.draw_line((54, 5), (54, 34), 1);
        m.draw_line((54, 34), (5, 34), 1);
        m.draw_line((5, 34), (5, 5), 1);
        m.draw_line((30, 5), (30, 34), 1);
        m.draw_line((12, 15), (16, 15), 0);
        m.draw_line((16, 15), (16, 19), 0);
        m.draw_line((16, 19), (12, 19), 0);
        m.draw_line((12, 19), (12, 15), 0);
        m
    }

    #[test]
    fn two_faces_and_a_dropped_box() {
        let l = faces(&drawing(), 50);
        assert_eq!(l.faces.len(), 2);
        assert_eq!(l.dropped.len(), 1, "the little box is not an area");
        // the line between the faces is shared out: no pixel of the drawing is left unlabelled
        assert!(l.data.iter().all(|&v| v != UNSET));
        // the middle of the dividing line belongs to one face or the other, and the box to the left face
        let left = l.data[20 * 60 + 20];
        let right = l.data[20 * 60 + 40];
        assert_ne!(left, right);
        assert_eq!(l.data[17 * 60 + 14], left);
        assert!([left, right].contains(&l.data[20 * 60 + 30]));
        // the frame's outer half goes outside
        assert_eq!(l.data[20 * 60 + 4], OUTSIDE);
        let total: usize = l.faces.iter().map(|f| f.area_px).sum();
        assert!((1300..1600).contains(&total), "{total}");
    }

    #[test]
    fn a_gap_merges_faces_into_outside() {
        let mut m = drawing();
        for y in 3..8 {
            for x in 40..44 {
                m.set(x, y, false);
            }
        }
        let l = faces(&m, 50);
        assert_eq!(
            l.faces.len(),
            1,
            "the right face leaked out through the gap"
        );
    }

    #[test]
    fn blank_and_all_ink() {
        assert!(faces(&Mask::new(10, 10), 5).faces.is_empty());
        let mut full = Mask::new(10, 10);
        full.data.fill(true);
        let l = faces(&full, 5);
        assert!(l.faces.is_empty());
        assert!(l.data.iter().all(|&v| v == OUTSIDE));
    }
}
