//! Emerging problems: a grid's reports of one category in this period against the period before
//! and the same period a year earlier. A count is "rising" when it is at least
//! [`MIN_RISING`] and so far above the larger of the two baselines that a Poisson count with
//! that mean would reach it less than once in a hundred periods.

/// Fewest reports in a period for a rise to count.
pub const MIN_RISING: i64 = 3;
/// Upper-tail probability below which a count is a rise.
pub const RISING_P: f64 = 0.01;

/// `P(X ≥ k)` for X ~ Poisson(λ).
pub fn poisson_upper_tail(k: i64, lambda: f64) -> f64 {
    if k <= 0 {
        return 1.0;
    }
    // 1 − P(X ≤ k − 1), summing the terms in log space to stay finite for large k.
    let mut term = (-lambda).exp();
    let mut cdf = term;
    for i in 1..k {
        term *= lambda / i as f64;
        cdf += term;
    }
    (1.0 - cdf).max(0.0)
}

/// The baseline a count is compared with: the larger of the previous period's and last year's,
/// and at least 1, so a first report or two is never a "rise".
pub fn baseline(previous: i64, last_year: i64) -> f64 {
    (previous.max(last_year) as f64).max(1.0)
}

/// Whether `current` is a rise over the baselines, and its upper-tail probability.
pub fn rising(current: i64, previous: i64, last_year: i64) -> (bool, f64) {
    let p = poisson_upper_tail(current, baseline(previous, last_year));
    (current >= MIN_RISING && p < RISING_P, p)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_poisson_tail_is_right() {
        // P(X ≥ 1 | 1) = 1 − e⁻¹
        assert!((poisson_upper_tail(1, 1.0) - (1.0 - (-1.0f64).exp())).abs() < 1e-12);
        // P(X ≥ 5 | 1) = 1 − Σ_{0..4} e⁻¹/i! = 0.00365984…
        assert!((poisson_upper_tail(5, 1.0) - 0.003_659_846_827).abs() < 1e-9);
        assert_eq!(poisson_upper_tail(0, 3.0), 1.0);
        assert!(poisson_upper_tail(200, 10.0) < 1e-12);
    }

    #[test]
    fn a_jump_is_rising_and_ordinary_variation_is_not() {
        assert!(rising(12, 3, 2).0);
        assert!(!rising(5, 4, 3).0);
        assert!(!rising(2, 0, 0).0, "too few to call");
        assert!(rising(6, 0, 0).0, "6 where there were none");
        assert!(!rising(8, 2, 7).0, "last year had as many");
    }
}
