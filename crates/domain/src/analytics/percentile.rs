/// A percentile fraction outside `[0, 1]` (or NaN).
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error("percentile fraction {0} is outside [0, 1]")]
pub struct PercentileError(pub f64);

/// The percentile `fraction` (in `[0, 1]`) of ascending-sorted values, by linear
/// interpolation between closest ranks: rank `h = fraction × (n − 1)`, value
/// `v[⌊h⌋] + (h − ⌊h⌋) × (v[⌊h⌋+1] − v[⌊h⌋])`. `Ok(None)` for no values.
///
/// # Errors
/// [`PercentileError`] for a fraction outside `[0, 1]`.
pub fn percentile_cont(sorted: &[f64], fraction: f64) -> Result<Option<f64>, PercentileError> {
    check(fraction)?;
    if sorted.is_empty() {
        return Ok(None);
    }
    let (lo, weight) = rank(sorted.len(), fraction);
    let hi = (lo + 1).min(sorted.len() - 1);
    Ok(Some(interpolate(sorted[lo], sorted[hi], weight)))
}

/// Several percentiles of unsorted values at once, in the order of `fractions`,
/// reordering `values` in place by selection (O(n) per fraction, no full sort).
/// An empty slice gives an empty result.
///
/// # Errors
/// [`PercentileError`] for a fraction outside `[0, 1]`.
pub fn percentiles(values: &mut [f64], fractions: &[f64]) -> Result<Vec<f64>, PercentileError> {
    for f in fractions {
        check(*f)?;
    }
    if values.is_empty() {
        return Ok(Vec::new());
    }
    let n = values.len();
    let mut order: Vec<usize> = (0..fractions.len()).collect();
    order.sort_by(|a, b| fractions[*a].total_cmp(&fractions[*b]));
    let mut out = vec![0.0; fractions.len()];
    // Ascending ranks: each selection only needs the part right of the previous one.
    let mut start = 0;
    for i in order {
        let (lo, weight) = rank(n, fractions[i]);
        let tail = &mut values[start..];
        let (_, lo_value, right) = tail.select_nth_unstable_by(lo - start, f64::total_cmp);
        let lo_value = *lo_value;
        let hi_value = right.iter().copied().fold(f64::INFINITY, f64::min);
        let hi_value = if hi_value.is_finite() {
            hi_value
        } else {
            lo_value
        };
        out[i] = interpolate(lo_value, hi_value, weight);
        start = lo;
    }
    Ok(out)
}

fn check(fraction: f64) -> Result<(), PercentileError> {
    if (0.0..=1.0).contains(&fraction) {
        Ok(())
    } else {
        Err(PercentileError(fraction))
    }
}

fn rank(n: usize, fraction: f64) -> (usize, f64) {
    let h = fraction * (n - 1) as f64;
    let lo = (h.floor() as usize).min(n - 1);
    (lo, h - lo as f64)
}

fn interpolate(lo: f64, hi: f64, weight: f64) -> f64 {
    if weight == 0.0 {
        lo
    } else {
        lo + weight * (hi - lo)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn matches_numpy_linear_percentiles() {
        // np.percentile([1, 2, 3, 4], q) for q in 0, 10, 25, 50, 75, 90, 100.
        let v = [1.0, 2.0, 3.0, 4.0];
        let expected = [
            (0.0, 1.0),
            (0.1, 1.3),
            (0.25, 1.75),
            (0.5, 2.5),
            (0.75, 3.25),
            (0.9, 3.7),
            (1.0, 4.0),
        ];
        for (f, want) in expected {
            let got = percentile_cont(&v, f).unwrap().unwrap();
            assert!((got - want).abs() < 1e-9, "p{f}: {got} != {want}");
        }
        // np.percentile([15, 20, 35, 40, 50], [5, 30, 40, 95]).
        let v = [15.0, 20.0, 35.0, 40.0, 50.0];
        for (f, want) in [(0.05, 16.0), (0.3, 23.0), (0.4, 29.0), (0.95, 48.0)] {
            let got = percentile_cont(&v, f).unwrap().unwrap();
            assert!((got - want).abs() < 1e-9, "p{f}: {got} != {want}");
        }
    }

    #[test]
    fn edge_cases_are_answered_not_crashed() {
        assert_eq!(percentile_cont(&[], 0.5).unwrap(), None);
        assert_eq!(percentile_cont(&[7.0], 0.99).unwrap(), Some(7.0));
        assert_eq!(percentile_cont(&[3.0, 3.0, 3.0], 0.25).unwrap(), Some(3.0));
        assert_eq!(percentile_cont(&[1.0], 1.5), Err(PercentileError(1.5)));
        assert!(percentile_cont(&[1.0], f64::NAN).is_err());
        assert!(percentiles(&mut [], &[0.5]).unwrap().is_empty());
    }

    proptest! {
        #[test]
        fn selection_agrees_with_sorting(
            mut values in proptest::collection::vec(-1e9f64..1e9, 1..200),
            fractions in proptest::collection::vec(0.0f64..=1.0, 1..6),
        ) {
            let mut sorted = values.clone();
            sorted.sort_by(f64::total_cmp);
            let fast = percentiles(&mut values, &fractions).unwrap();
            for (f, got) in fractions.iter().zip(fast) {
                let want = percentile_cont(&sorted, *f).unwrap().unwrap();
                prop_assert!((got - want).abs() <= 1e-9 * want.abs().max(1.0), "p{}: {} != {}", f, got, want);
            }
        }
    }
}
