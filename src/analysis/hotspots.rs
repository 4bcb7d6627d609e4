//! Hot spots: the Getis–Ord Gi* statistic over areas (grids) with binary contiguity weights that
//! include each area itself, its analytical z-score, pseudo p-values from conditional permutations,
//! and Benjamini–Hochberg control of the false discovery rate.
//!
//! The formulas are those of PySAL's `esda.G_Local(y, w, transform="B", star=True)`, so the
//! z-scores can be checked against it (tests/reference/gi_star.py):
//!
//! - `G_i = Σ_j w_ij y_j / Σ_j y_j` (the sums run over all n areas, `w_ii = 1`);
//! - `E[G_i] = W_i / n` with `W_i = Σ_j w_ij`;
//! - `V[G_i] = W_i (n − W_i) / (n − 1) · s² / (n² ȳ²)` with `ȳ` and `s²` the mean and the
//!   (population) variance of y;
//! - `z_i = (G_i − E[G_i]) / √V[G_i]`.
//!
//! For the pseudo p-value, area i keeps its own value and its `W_i − 1` neighbours' places are
//! filled with values drawn without replacement from the other `n − 1` areas; as in esda, one
//! matrix of draws (P rows of distinct positions among "the others") serves every area. `p_sim`
//! is `(m + 1) / (P + 1)` with m the smaller of the number of draws at least as large as the
//! observed `G_i` and the number at most as large. esda folds by counting only the draws `≥ G_i`
//! (m = min(#≥, P − #≥)), which counts a tie as "more extreme on the low side": an area with
//! no reports among neighbours with none gets the smallest p-value possible and shows as a
//! cold spot, although most random neighbourhoods are just as empty. Counting ties on both
//! sides gives such areas the p-value they deserve; elsewhere (no ties) the two agree.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// What one area came out as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SpotClass {
    /// significantly more than its surroundings would have by chance
    Hot,
    /// significantly fewer
    Cold,
    NotSignificant,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Spot {
    pub g: f64,
    /// analytical z-score (normal approximation)
    pub z: f64,
    /// one-sided p-value of `|z|` under the normal approximation
    pub p_norm: f64,
    /// pseudo p-value from the permutations (`None` with no permutations)
    pub p_sim: Option<f64>,
    /// z-score against the permutations' mean and standard deviation
    pub z_sim: Option<f64>,
    /// number of areas in the area's neighbourhood, itself included
    pub neighbourhood: usize,
    pub class: SpotClass,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HotSpots {
    pub spots: Vec<Spot>,
    /// the largest p-value still significant after FDR control (`None`: nothing is)
    pub threshold: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HotSpotError(pub String);

impl std::fmt::Display for HotSpotError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// Gi* for values `y` where `neighbours[i]` lists the areas adjacent to i (i itself need not be
/// listed; duplicates and i are ignored). With `permutations > 0` the pseudo p-values are used
/// for significance, else the normal ones; significance is Benjamini–Hochberg at `alpha`.
pub fn gi_star(
    y: &[f64],
    neighbours: &[Vec<usize>],
    permutations: usize,
    alpha: f64,
    seed: u64,
) -> Result<HotSpots, HotSpotError> {
    let n = y.len();
    if neighbours.len() != n {
        return Err(HotSpotError(format!(
            "{} values but {} neighbour lists",
            n,
            neighbours.len()
        )));
    }
    if n < 3 {
        return Err(HotSpotError(format!(
            "hot spots need at least 3 areas, got {n}"
        )));
    }
    if y.iter().any(|v| !v.is_finite() || *v < 0.0) {
        return Err(HotSpotError(
            "values must be finite and not negative".into(),
        ));
    }
    let sum: f64 = y.iter().sum();
    if sum <= 0.0 {
        return Err(HotSpotError(
            "every area has 0: there is nothing to find hot spots in".into(),
        ));
    }
    let nf = n as f64;
    let mean = sum / nf;
    let variance = y.iter().map(|v| v * v).sum::<f64>() / nf - mean * mean;
    // The neighbourhoods, self first, without duplicates.
    let hoods: Vec<Vec<usize>> = neighbours
        .iter()
        .enumerate()
        .map(|(i, list)| {
            let mut h: Vec<usize> = list.iter().copied().filter(|&j| j != i && j < n).collect();
            h.sort_unstable();
            h.dedup();
            h.insert(0, i);
            h
        })
        .collect();
    // The draws, shared by every area as in esda: row r holds, for permutation r, distinct
    // positions among "the other n − 1 areas", as many as the largest neighbourhood needs.
    let kmax = hoods.iter().map(|h| h.len() - 1).max().unwrap_or(0);
    let mut draws = vec![0u32; permutations * kmax];
    if kmax > 0 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut pool: Vec<u32> = (0..(n - 1) as u32).collect();
        for row in draws.chunks_mut(kmax) {
            for (slot, out) in row.iter_mut().enumerate() {
                let pick = rng.random_range(slot..pool.len());
                pool.swap(slot, pick);
                *out = pool[slot];
            }
        }
    }
    let mut others: Vec<f64> = Vec::with_capacity(n);
    let mut spots = Vec::with_capacity(n);
    for (i, hood) in hoods.iter().enumerate() {
        let card = hood.len() as f64;
        let g = hood.iter().map(|&j| y[j]).sum::<f64>() / sum;
        let expected = card / nf;
        let var_g = card * (nf - card) / (nf - 1.0) / (nf * nf) * (variance / (mean * mean));
        let z = if var_g > 0.0 {
            (g - expected) / var_g.sqrt()
        } else {
            0.0
        };
        let p_norm = 1.0 - normal_cdf(z.abs());
        let (p_sim, z_sim) = if permutations > 0 {
            // Conditional randomisation: i keeps y_i; its k neighbours' places take the values
            // of k of the other areas, distinct, from the shared draws.
            let k = hood.len() - 1;
            others.clear();
            others.extend(y[..i].iter().chain(&y[i + 1..]));
            let (mut at_least, mut at_most) = (0usize, 0usize);
            let (mut s1, mut s2) = (0.0, 0.0);
            for row in draws.chunks_exact(kmax.max(1)).take(permutations) {
                let total = y[i] + row[..k].iter().map(|&d| others[d as usize]).sum::<f64>();
                let gs = total / sum;
                at_least += usize::from(gs >= g);
                at_most += usize::from(gs <= g);
                s1 += gs;
                s2 += gs * gs;
            }
            let extreme = at_least.min(at_most);
            let p = (extreme as f64 + 1.0) / (permutations as f64 + 1.0);
            let pf = permutations as f64;
            let m = s1 / pf;
            let sd = (s2 / pf - m * m).max(0.0).sqrt();
            (Some(p), (sd > 0.0).then(|| (g - m) / sd))
        } else {
            (None, None)
        };
        spots.push(Spot {
            g,
            z,
            p_norm,
            p_sim,
            z_sim,
            neighbourhood: hood.len(),
            class: SpotClass::NotSignificant,
        });
    }
    let p: Vec<f64> = spots.iter().map(|s| s.p_sim.unwrap_or(s.p_norm)).collect();
    let threshold = benjamini_hochberg(&p, alpha);
    if let Some(t) = threshold {
        for (s, &pi) in spots.iter_mut().zip(&p) {
            if pi <= t {
                s.class = if s.z > 0.0 {
                    SpotClass::Hot
                } else {
                    SpotClass::Cold
                };
            }
        }
    }
    Ok(HotSpots { spots, threshold })
}

/// The Benjamini–Hochberg threshold: the largest `p_(k)` with `p_(k) ≤ k/m · alpha`.
pub fn benjamini_hochberg(p: &[f64], alpha: f64) -> Option<f64> {
    let mut sorted: Vec<f64> = p.to_vec();
    sorted.sort_by(f64::total_cmp);
    let m = sorted.len() as f64;
    sorted
        .iter()
        .enumerate()
        .filter(|(k, &pk)| pk <= (*k as f64 + 1.0) / m * alpha)
        .map(|(_, &pk)| pk)
        .next_back()
}

/// Φ(x), from the complementary error function (Numerical Recipes' erfc, |error| < 1.2e-7).
fn normal_cdf(x: f64) -> f64 {
    0.5 * erfc(-x / std::f64::consts::SQRT_2)
}

fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 {
        r
    } else {
        2.0 - r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 10 × 10 lattice with queen neighbours.
    fn lattice(side: usize) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); side * side];
        for r in 0..side {
            for c in 0..side {
                for dr in -1i32..=1 {
                    for dc in -1i32..=1 {
                        let (rr, cc) = (r as i32 + dr, c as i32 + dc);
                        if (dr, dc) != (0, 0)
                            && (0..side as i32).contains(&rr)
                            && (0..side as i32).contains(&cc)
                        {
                            out[r * side + c].push(rr as usize * side + cc as usize);
                        }
                    }
                }
            }
        }
        out
    }

    #[test]
    fn a_cluster_of_high_values_is_a_hot_spot_and_the_rest_is_not() {
        let w = lattice(10);
        let mut y = vec![1.0; 100];
        for i in [44, 45, 54, 55, 34, 35] {
            y[i] = 30.0;
        }
        // a little variation elsewhere
        for (i, v) in y.iter_mut().enumerate() {
            *v += (i % 3) as f64;
        }
        let h = gi_star(&y, &w, 999, 0.05, 7).unwrap();
        assert_eq!(h.spots[44].class, SpotClass::Hot);
        assert_eq!(h.spots[45].class, SpotClass::Hot);
        assert!(h.spots[44].z > 4.0, "{}", h.spots[44].z);
        assert_eq!(h.spots[0].class, SpotClass::NotSignificant);
        assert_eq!(h.spots[99].class, SpotClass::NotSignificant);
        assert!(h.spots[44].p_sim.unwrap() <= 0.002);
        // corners have themselves and 3 neighbours
        assert_eq!(h.spots[0].neighbourhood, 4);
        assert_eq!(h.spots[44].neighbourhood, 9);
    }

    #[test]
    fn empty_areas_among_empty_areas_are_not_cold_spots() {
        // Most areas have no reports, as in a city for a rare category: an empty area among
        // empty neighbours is what chance gives most of the time, not a cold spot.
        let w = lattice(10);
        let mut y = vec![0.0; 100];
        for (i, v) in y.iter_mut().enumerate() {
            if i % 7 == 0 {
                *v = 2.0;
            }
        }
        for i in [44, 45, 54, 55] {
            y[i] = 25.0;
        }
        let h = gi_star(&y, &w, 999, 0.05, 3).unwrap();
        // 0's neighbours 1, 10 and 11 are empty too; so are 1 and 2's
        for i in [1, 2, 10, 11] {
            assert_eq!(y[i], 0.0);
            assert!(h.spots[i].p_sim.unwrap() > 0.05, "{i}: {:?}", h.spots[i]);
            assert_eq!(h.spots[i].class, SpotClass::NotSignificant);
        }
        assert!(h.spots.iter().all(|s| s.class != SpotClass::Cold));
        assert_eq!(h.spots[44].class, SpotClass::Hot);
    }

    #[test]
    fn the_same_seed_gives_the_same_pseudo_p_values() {
        let w = lattice(6);
        let y: Vec<f64> = (0..36).map(|i| ((i * 7) % 11) as f64).collect();
        let a = gi_star(&y, &w, 199, 0.05, 1).unwrap();
        let b = gi_star(&y, &w, 199, 0.05, 1).unwrap();
        assert_eq!(a, b);
        let c = gi_star(&y, &w, 199, 0.05, 2).unwrap();
        assert_ne!(a.spots, c.spots);
        // the analytical part does not depend on the draws
        assert!(a.spots.iter().zip(&c.spots).all(|(x, y)| x.z == y.z));
    }

    #[test]
    fn z_scores_follow_the_formula_by_hand() {
        // a path 0 - 1 - 2 - 3
        let w = vec![vec![1], vec![0, 2], vec![1, 3], vec![2]];
        let y = [1.0, 2.0, 3.0, 6.0];
        let h = gi_star(&y, &w, 0, 0.05, 0).unwrap();
        // area 2: neighbourhood {1, 2, 3}, G = 11/12, E = 3/4, mean 3, var (1+4+9+36)/4 - 9 = 3.5
        let g = 11.0 / 12.0;
        let v = 3.0 * 1.0 / 3.0 / 16.0 * (3.5 / 9.0);
        assert!((h.spots[2].g - g).abs() < 1e-12);
        assert!((h.spots[2].z - (g - 0.75) / f64::sqrt(v)).abs() < 1e-12);
        assert_eq!(h.spots[2].p_sim, None);
    }

    #[test]
    fn benjamini_hochberg_picks_the_largest_passing_p() {
        let p = [
            0.001, 0.008, 0.039, 0.041, 0.042, 0.06, 0.074, 0.205, 0.212, 0.216,
        ];
        // k/m·alpha at alpha 0.05: 0.005, 0.01, 0.015 … the first two pass
        assert_eq!(benjamini_hochberg(&p, 0.05), Some(0.008));
        assert_eq!(benjamini_hochberg(&[0.5, 0.9], 0.05), None);
    }

    #[test]
    fn the_normal_cdf_is_accurate() {
        assert!((normal_cdf(0.0) - 0.5).abs() < 1e-7);
        assert!((normal_cdf(1.959_963_985) - 0.975).abs() < 1e-7);
        assert!((normal_cdf(-3.0) - 0.001_349_898).abs() < 1e-7);
    }

    #[test]
    fn bad_input_is_named() {
        assert!(gi_star(&[1.0, 2.0], &[vec![1], vec![0]], 0, 0.05, 0)
            .unwrap_err()
            .0
            .contains("at least 3"));
        assert!(gi_star(&[0.0; 4], &lattice(2), 0, 0.05, 0)
            .unwrap_err()
            .0
            .contains("nothing"));
        assert!(gi_star(&[1.0; 4], &lattice(2)[..3], 0, 0.05, 0).is_err());
    }
}
