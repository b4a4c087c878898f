//! Analytics maths (DESIGN §7): plain functions, no IO.
//!
//! - [`Summary`]: count, sum, mean, population standard deviation, min and max in one
//!   numerically stable pass (Welford's update, Chan's merge, Neumaier-compensated sum).
//! - [`percentile_cont`] / [`percentiles`]: linear interpolation between closest ranks,
//!   the definition of PostgreSQL's `percentile_cont` and numpy's default
//!   (`adr/0002-percentile-definition.md`).
//! - [`Aggregate`]: all of the above for one group of values.
//! - [`TopK`] / [`top_k_per_group`]: the k highest-scoring items per group.
//! - [`InProcessAnalytics`]: the [`crate::ports::Analytics`] engine that computes all
//!   of this over a record store's scan.

mod engine;
mod percentile;
mod summary;
mod topk;

pub use engine::InProcessAnalytics;
pub use percentile::{PercentileError, percentile_cont, percentiles};
pub use summary::Summary;
pub use topk::{TopK, top_k_per_group};

use serde::{Deserialize, Serialize};

/// The aggregate of one group of measure values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// Number of values.
    pub count: u64,
    /// Their sum.
    pub sum: f64,
    /// Their mean.
    pub mean: f64,
    /// Population standard deviation.
    pub stddev: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// `(fraction, value)` for each requested percentile, in the order requested.
    pub percentiles: Vec<(f64, f64)>,
}

impl Aggregate {
    /// The fractions of the v1 aggregate: p25, p50, p75.
    pub const QUARTILES: [f64; 3] = [0.25, 0.5, 0.75];

    /// Aggregates a group of values; `None` for an empty group. Non-finite values are
    /// ignored (measures never hold them).
    ///
    /// # Errors
    /// [`PercentileError`] when a fraction is outside `[0, 1]`.
    pub fn compute(
        mut values: Vec<f64>,
        fractions: &[f64],
    ) -> Result<Option<Self>, PercentileError> {
        values.retain(|v| v.is_finite());
        let summary: Summary = values.iter().copied().collect();
        let Some(mean) = summary.mean() else {
            return Ok(None);
        };
        let percentiles = percentiles(&mut values, fractions)?;
        Ok(Some(Self {
            count: summary.count(),
            sum: summary.sum(),
            mean,
            stddev: summary.stddev_pop().unwrap_or(0.0),
            min: summary.min().unwrap_or(mean),
            max: summary.max().unwrap_or(mean),
            percentiles: fractions.iter().copied().zip(percentiles).collect(),
        }))
    }

    /// The value of one requested percentile.
    pub fn percentile(&self, fraction: f64) -> Option<f64> {
        self.percentiles
            .iter()
            .find(|(f, _)| *f == fraction)
            .map(|(_, v)| *v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_groups_have_no_aggregate() {
        assert_eq!(
            Aggregate::compute(vec![], &Aggregate::QUARTILES).unwrap(),
            None
        );
    }

    #[test]
    fn one_value_is_every_statistic() {
        let a = Aggregate::compute(vec![42.0], &Aggregate::QUARTILES)
            .unwrap()
            .unwrap();
        assert_eq!(
            (a.count, a.mean, a.stddev, a.min, a.max),
            (1, 42.0, 0.0, 42.0, 42.0)
        );
        assert_eq!(a.percentile(0.5), Some(42.0));
    }

    #[test]
    fn the_markr_sample_shape_matches_known_values() {
        // Values from numpy: mean, np.std (population), np.percentile (linear).
        let values = vec![65.0, 50.0, 45.0, 55.0, 30.0, 75.0, 50.0, 40.0];
        let a = Aggregate::compute(values, &Aggregate::QUARTILES)
            .unwrap()
            .unwrap();
        assert!((a.mean - 51.25).abs() < 1e-9);
        assert!((a.stddev - 13.169567191065923).abs() < 1e-9);
        assert_eq!(a.percentile(0.25), Some(43.75));
        assert_eq!(a.percentile(0.5), Some(50.0));
        assert_eq!(a.percentile(0.75), Some(57.5));
        assert_eq!((a.min, a.max, a.sum), (30.0, 75.0, 410.0));
    }
}
