//! Binary morphology on ink masks: dilation, erosion, closing with a square structuring element
//! (separable sliding-window counts, linear in the image size), and removal of small specks.

use super::mask::Mask;

/// One pass along rows (or columns): a pixel becomes `want` when the window of `2r+1` pixels
/// around it contains one `want` pixel (dilation of `want`). Outside the image is paper.
fn pass(src: &Mask, r: usize, horizontal: bool, want: bool) -> Mask {
    let (w, h) = (src.width, src.height);
    let mut out = Mask::new(w, h);
    let (lines, len) = if horizontal { (h, w) } else { (w, h) };
    let at = |line: usize, i: usize| {
        if horizontal {
            line * w + i
        } else {
            i * w + line
        }
    };
    for line in 0..lines {
        // count of `want` pixels in the current window
        let mut count = 0usize;
        for i in 0..r.min(len) {
            count += usize::from(src.data[at(line, i)] == want);
        }
        for i in 0..len {
            if i + r < len {
                count += usize::from(src.data[at(line, i + r)] == want);
            }
            if i > r {
                count -= usize::from(src.data[at(line, i - r - 1)] == want);
            }
            let v = if count > 0 { want } else { !want };
            out.data[at(line, i)] = v;
        }
    }
    out
}

pub fn dilate(m: &Mask, r: usize) -> Mask {
    if r == 0 {
        return m.clone();
    }
    pass(&pass(m, r, true, true), r, false, true)
}

pub fn erode(m: &Mask, r: usize) -> Mask {
    if r == 0 {
        return m.clone();
    }
    pass(&pass(m, r, true, false), r, false, false)
}

/// Closing: bridges gaps up to about `2r` pixels and fills small notches, keeps line widths.
pub fn close(m: &Mask, r: usize) -> Mask {
    erode(&dilate(m, r), r)
}

/// Removes 8-connected ink components of fewer than `min_px` pixels (paper grain, dust).
pub fn remove_specks(m: &mut Mask, min_px: usize) {
    for comp in m.components8() {
        if comp.len() < min_px {
            for p in comp {
                m.data[p] = false;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_with_gap(gap: usize) -> Mask {
        let mut m = Mask::new(60, 20);
        for x in 5..55 {
            if !(30..30 + gap).contains(&x) {
                for y in 9..11 {
                    m.set(x, y, true);
                }
            }
        }
        m
    }

    #[test]
    fn closing_bridges_small_gaps_only() {
        let closed = close(&line_with_gap(4), 3);
        assert!(closed.get(31, 10), "a 4 px gap is bridged");
        let open = close(&line_with_gap(12), 3);
        assert!(!open.get(36, 10), "a 12 px gap stays");
        // line width is kept
        assert!(!closed.get(20, 6) && !closed.get(20, 13));
    }

    #[test]
    fn dilate_then_erode_of_a_square_is_the_square() {
        let mut m = Mask::new(20, 20);
        for y in 5..15 {
            for x in 5..15 {
                m.set(x, y, true);
            }
        }
        assert_eq!(close(&m, 2), m);
        assert_eq!(dilate(&m, 1).count(), 144);
        assert_eq!(erode(&m, 1).count(), 64);
    }

    #[test]
    fn specks_go_lines_stay() {
        let mut m = line_with_gap(0);
        m.set(2, 2, true);
        m.set(3, 2, true);
        remove_specks(&mut m, 10);
        assert!(!m.get(2, 2));
        assert!(m.get(20, 10));
    }
}
