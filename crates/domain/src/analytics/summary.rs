/// Count, sum, mean, population variance, min and max of a stream of values, in one
/// pass and constant memory. Welford's update keeps the variance accurate when values
/// are large and close together (where the textbook `E[x²] − E[x]²` cancels
/// catastrophically); summaries of parts combine with [`Summary::merge`].
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Summary {
    count: u64,
    mean: f64,
    m2: f64,
    sum: f64,
    compensation: f64,
    min: f64,
    max: f64,
}

impl Summary {
    /// Adds one value. Non-finite values are ignored.
    pub fn push(&mut self, x: f64) {
        if !x.is_finite() {
            return;
        }
        if self.count == 0 {
            (self.min, self.max) = (x, x);
        } else {
            self.min = self.min.min(x);
            self.max = self.max.max(x);
        }
        self.count += 1;
        let delta = x - self.mean;
        self.mean += delta / self.count as f64;
        self.m2 += delta * (x - self.mean);
        self.add_to_sum(x);
    }

    // Neumaier's compensated summation. Once the sum overflows to ±inf the
    // compensation would become NaN, so it stops being updated.
    fn add_to_sum(&mut self, x: f64) {
        let t = self.sum + x;
        if t.is_finite() {
            if self.sum.abs() >= x.abs() {
                self.compensation += (self.sum - t) + x;
            } else {
                self.compensation += (x - t) + self.sum;
            }
        }
        self.sum = t;
    }

    /// Combines two summaries as if all values had been pushed into one (Chan et al.).
    pub fn merge(&self, other: &Self) -> Self {
        if other.count == 0 {
            return *self;
        }
        if self.count == 0 {
            return *other;
        }
        let count = self.count + other.count;
        let delta = other.mean - self.mean;
        let (n1, n2, n) = (self.count as f64, other.count as f64, count as f64);
        let mut merged = Self {
            count,
            mean: self.mean + delta * n2 / n,
            m2: self.m2 + other.m2 + delta * delta * n1 * n2 / n,
            sum: self.sum,
            compensation: self.compensation + other.compensation,
            min: self.min.min(other.min),
            max: self.max.max(other.max),
        };
        merged.add_to_sum(other.sum);
        merged
    }

    /// Number of values.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Sum of the values (0 when empty).
    pub fn sum(&self) -> f64 {
        let compensated = self.sum + self.compensation;
        if compensated.is_nan() {
            self.sum
        } else {
            compensated
        }
    }

    /// Mean, or `None` when empty.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0).then_some(self.mean)
    }

    /// Population variance (divides by n), or `None` when empty.
    pub fn variance_pop(&self) -> Option<f64> {
        (self.count > 0).then(|| (self.m2 / self.count as f64).max(0.0))
    }

    /// Population standard deviation, or `None` when empty.
    pub fn stddev_pop(&self) -> Option<f64> {
        self.variance_pop().map(f64::sqrt)
    }

    /// Smallest value, or `None` when empty.
    pub fn min(&self) -> Option<f64> {
        (self.count > 0).then_some(self.min)
    }

    /// Largest value, or `None` when empty.
    pub fn max(&self) -> Option<f64> {
        (self.count > 0).then_some(self.max)
    }
}

impl FromIterator<f64> for Summary {
    fn from_iter<I: IntoIterator<Item = f64>>(iter: I) -> Self {
        let mut s = Self::default();
        iter.into_iter().for_each(|x| s.push(x));
        s
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn variance_stays_accurate_for_large_close_values() {
        // The naive formula returns garbage here; the true population variance is 22.5.
        let base = 1e9;
        let s: Summary = [4.0, 7.0, 13.0, 16.0].iter().map(|x| base + x).collect();
        assert!((s.variance_pop().unwrap() - 22.5).abs() < 1e-6);
        assert!((s.mean().unwrap() - (base + 10.0)).abs() < 1e-6);
    }

    #[test]
    fn compensated_sum_does_not_lose_small_values() {
        let s: Summary = [1e16, 1.0, -1e16].into_iter().collect();
        assert_eq!(s.sum(), 1.0);
    }

    #[test]
    fn an_overflowing_sum_is_infinite_not_nan() {
        let s: Summary = [1e308, 1e308].into_iter().collect();
        assert_eq!(s.sum(), f64::INFINITY);
        assert_eq!(s.mean(), Some(1e308));
    }

    #[test]
    fn empty_and_non_finite_inputs_are_harmless() {
        let s: Summary = [f64::NAN, f64::INFINITY].into_iter().collect();
        assert_eq!(
            (s.count(), s.mean(), s.stddev_pop(), s.min()),
            (0, None, None, None)
        );
        assert_eq!(s.sum(), 0.0);
    }

    proptest! {
        #[test]
        fn merging_parts_equals_one_pass(
            a in proptest::collection::vec(-1e6f64..1e6, 0..50),
            b in proptest::collection::vec(-1e6f64..1e6, 0..50),
        ) {
            let whole: Summary = a.iter().chain(b.iter()).copied().collect();
            let merged = a.iter().copied().collect::<Summary>().merge(&b.iter().copied().collect());
            prop_assert_eq!(whole.count(), merged.count());
            if let (Some(x), Some(y)) = (whole.variance_pop(), merged.variance_pop()) {
                prop_assert!((x - y).abs() <= 1e-6 * x.abs().max(1.0));
                prop_assert!((whole.mean().unwrap_or(0.0) - merged.mean().unwrap_or(0.0)).abs() < 1e-6);
            }
            prop_assert_eq!(whole.min(), merged.min());
            prop_assert_eq!(whole.max(), merged.max());
        }
    }
}
