//! A binary image: the ink of a sketch, one byte a pixel, row-major.

/// `true` is ink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub data: Vec<bool>,
}

impl Mask {
    pub fn new(width: usize, height: usize) -> Self {
        Mask {
            width,
            height,
            data: vec![false; width * height],
        }
    }

    #[inline]
    pub fn get(&self, x: usize, y: usize) -> bool {
        self.data[y * self.width + x]
    }

    /// Out-of-image pixels read as paper.
    #[inline]
    pub fn get_i(&self, x: isize, y: isize) -> bool {
        x >= 0
            && y >= 0
            && (x as usize) < self.width
            && (y as usize) < self.height
            && self.get(x as usize, y as usize)
    }

    #[inline]
    pub fn set(&mut self, x: usize, y: usize, v: bool) {
        self.data[y * self.width + x] = v;
    }

    pub fn count(&self) -> usize {
        self.data.iter().filter(|&&v| v).count()
    }

    /// The 8-connected components of the ink: each a list of pixel indices (row-major).
    pub fn components8(&self) -> Vec<Vec<usize>> {
        let (w, h) = (self.width, self.height);
        let mut seen = vec![false; w * h];
        let mut stack = Vec::new();
        let mut out = Vec::new();
        for start in 0..w * h {
            if !self.data[start] || seen[start] {
                continue;
            }
            let mut comp = Vec::new();
            stack.push(start);
            seen[start] = true;
            while let Some(p) = stack.pop() {
                comp.push(p);
                let (x, y) = ((p % w) as isize, (p / w) as isize);
                for dy in -1..=1 {
                    for dx in -1..=1 {
                        let (nx, ny) = (x + dx, y + dy);
                        if nx < 0 || ny < 0 || nx as usize >= w || ny as usize >= h {
                            continue;
                        }
                        let q = ny as usize * w + nx as usize;
                        if self.data[q] && !seen[q] {
                            seen[q] = true;
                            stack.push(q);
                        }
                    }
                }
            }
            out.push(comp);
        }
        out
    }

    /// Draws a straight line of ink `radius` pixels either side (Bresenham, square brush).
    pub fn draw_line(&mut self, a: (isize, isize), b: (isize, isize), radius: isize) {
        let (mut x, mut y) = a;
        let (dx, dy) = ((b.0 - a.0).abs(), -(b.1 - a.1).abs());
        let (sx, sy) = (
            if a.0 < b.0 { 1 } else { -1 },
            if a.1 < b.1 { 1 } else { -1 },
        );
        let mut err = dx + dy;
        loop {
            for oy in -radius..=radius {
                for ox in -radius..=radius {
                    let (px, py) = (x + ox, y + oy);
                    if px >= 0
                        && py >= 0
                        && (px as usize) < self.width
                        && (py as usize) < self.height
                    {
                        self.set(px as usize, py as usize, true);
                    }
                }
            }
            if (x, y) == b {
                break;
            }
            let e2 = 2 * err;
            if e2 >= dy {
                err += dy;
                x += sx;
            }
            if e2 <= dx {
                err += dx;
                y += sy;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_and_bounds() {
        let mut m = Mask::new(10, 5);
        m.draw_line((0, 0), (9, 4), 0);
        assert!(m.get(0, 0) && m.get(9, 4));
        assert_eq!(m.count(), 10);
        assert!(!m.get_i(-1, 0) && !m.get_i(10, 0));
        m.draw_line((-5, 2), (20, 2), 1);
        assert!(m.get(0, 1) && m.get(9, 3));
    }

    #[test]
    fn components_are_eight_connected() {
        let mut m = Mask::new(6, 3);
        m.set(0, 0, true);
        m.set(1, 1, true); // diagonal neighbour: same component
        m.set(4, 2, true);
        let c = m.components8();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0], vec![0, 7]);
    }
}
