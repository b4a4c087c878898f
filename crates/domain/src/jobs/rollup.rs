//! `rollup` jobs: a measure's count, sum, mean and standard deviation per group of a
//! dimension, as every import left them, read from the dataset's history in commit
//! order. The partial state is the cursor (the last change read) and each group's
//! running sums, so a checkpoint is small whatever the dataset's size; a change
//! subtracts the record's previous value from its previous group before adding the new
//! one. Sums are kept as the bits of their `f64`, so a run resumed from a checkpoint
//! adds exactly what an uninterrupted run adds. Points are saved keyed by (import,
//! group): one written again after a restart is replaced by the same values.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{JobApiError, JobService, Outcome, Saver};
use crate::datasets::DatasetService;
use crate::model::{DatasetName, ImportId, Record};
use crate::ports::{Job, RecordChange, RollupError, RollupPoint};
use crate::sources::Every;
use crate::work::WorkError;

/// The kind's name.
pub(crate) const KIND: &str = "rollup";

/// How long to wait while an import of the dataset is being written.
const BUSY_WAIT: Duration = Duration::from_millis(200);

/// A rollup as asked for.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct RollupSpec {
    /// Its name, unique in the dataset: the series is read at `…/rollups/{name}`.
    pub name: String,
    /// The measure aggregated.
    pub measure: String,
    /// The dimension grouped by.
    pub group_by: String,
    /// Go on: after reaching the end of the history, run again this long later,
    /// adding the points of the imports committed meanwhile (`"1m"`, `"1h"`). Without
    /// it the job completes at the end.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<Every>,
}

impl RollupSpec {
    /// Checks the name, and the measure and dimension against the dataset's current
    /// contract.
    pub(crate) async fn check(
        &self,
        datasets: &DatasetService,
        dataset: &DatasetName,
    ) -> Result<(), JobApiError> {
        let good = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
        if self.name.is_empty() || self.name.len() > 64 || !self.name.chars().all(good) {
            return Err(JobApiError::Invalid {
                field: "name".into(),
                message: "1 to 64 letters, digits, '_' or '-'".into(),
            });
        }
        let (least, most) = (Duration::from_secs(1), Duration::from_secs(366 * 86_400));
        if self
            .every
            .is_some_and(|e| e.get() < least || e.get() > most)
        {
            return Err(JobApiError::Invalid {
                field: "every".into(),
                message: "from 1s to 8784h (366 days)".into(),
            });
        }
        datasets
            .checked(dataset, &self.measure, std::iter::once(&self.group_by))
            .await?;
        Ok(())
    }
}

/// A group's running sums.
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct Sums {
    count: u64,
    /// `f64::to_bits` of the sum: JSON numbers would not give every bit back.
    sum: u64,
    /// `f64::to_bits` of the sum of squares.
    squares: u64,
}

impl Sums {
    fn add(&mut self, value: f64, sign: f64) {
        let sum = f64::from_bits(self.sum) + sign * value;
        let squares = f64::from_bits(self.squares) + sign * value * value;
        if sign > 0.0 {
            self.count += 1;
        } else {
            self.count = self.count.saturating_sub(1);
        }
        // An emptied group starts again from exact zeros, not rounding residue.
        let (sum, squares) = if self.count == 0 {
            (0.0, 0.0)
        } else {
            (sum, squares)
        };
        self.sum = sum.to_bits();
        self.squares = squares.to_bits();
    }

    fn point(&self, import: &ImportId, at: DateTime<Utc>, seq: i64, group: &str) -> RollupPoint {
        let sum = f64::from_bits(self.sum);
        #[allow(clippy::cast_precision_loss)] // counts of records stay far below 2^52
        let n = self.count as f64;
        let mean = (self.count > 0).then(|| sum / n);
        let stddev = mean.map(|m| (f64::from_bits(self.squares) / n - m * m).max(0.0).sqrt());
        RollupPoint {
            import: import.clone(),
            at,
            seq,
            group: group.to_owned(),
            count: self.count,
            sum,
            mean,
            stddev,
        }
    }
}

/// The checkpoint: where in the history, and every group's sums there.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
struct State {
    after: i64,
    groups: BTreeMap<String, Sums>,
}

/// Runs a rollup from its checkpoint to the end of the history.
pub(crate) async fn run(
    s: &JobService,
    job: &Job,
    mut saver: Saver<'_>,
) -> Result<Outcome, WorkError> {
    let (spec, mut state): (RollupSpec, State) = match super::read_job(job) {
        Ok(read) => read,
        Err(refused) => return Ok(refused),
    };
    let rollups = &s.ports.rollups;
    let failed = |e: RollupError| WorkError::failed(e);
    let mut done = job.done;
    let mut total = done
        + rollups
            .count_changes(&job.dataset, state.after)
            .await
            .map_err(failed)?;
    loop {
        let page = match rollups
            .changes(&job.dataset, state.after, s.settings.page)
            .await
        {
            Ok(page) => page,
            Err(RollupError::Busy) => {
                s.ports.clock.sleep(BUSY_WAIT).await;
                if !saver
                    .save(done, Some(total), || json(&state), false)
                    .await?
                {
                    return Ok(Outcome::Stopped);
                }
                continue;
            }
            Err(e) => return Err(failed(e)),
        };
        let Some(last) = page.last() else {
            if !saver.save(done, Some(done), || json(&state), true).await? {
                return Ok(Outcome::Stopped);
            }
            return Ok(match spec.every {
                Some(every) => {
                    let now = s.ports.clock.now();
                    let next = chrono::Duration::from_std(every.get())
                        .ok()
                        .and_then(|every| now.checked_add_signed(every))
                        .unwrap_or(now);
                    Outcome::Again(done, next)
                }
                None => Outcome::Done(done),
            });
        };
        let after = last.seq;
        let points = apply(&spec, &mut state, &page);
        rollups
            .save_points(&job.dataset, &spec.name, &points)
            .await
            .map_err(failed)?;
        state.after = after;
        done += page.len() as u64;
        // Changes committed since the count make the total grow.
        total = total.max(done);
        if !saver
            .save(done, Some(total), || json(&state), false)
            .await?
        {
            return Ok(Outcome::Stopped);
        }
    }
}

fn json(state: &State) -> serde_json::Value {
    serde_json::to_value(state).unwrap_or_default()
}

fn contribution<'r>(spec: &RollupSpec, record: &'r Record) -> Option<(&'r str, f64)> {
    let group = record.dimensions.get(&spec.group_by)?;
    Some((group, record.measures.get(&spec.measure)?))
}

/// Applies a page of changes to the sums; the points of every group each import
/// touched, as that import left it.
fn apply(spec: &RollupSpec, state: &mut State, page: &[RecordChange]) -> Vec<RollupPoint> {
    let mut points = Vec::new();
    // Each group the import touched, with its last change of it.
    let mut touched: BTreeMap<String, i64> = BTreeMap::new();
    for (i, change) in page.iter().enumerate() {
        // A deletion takes the state it had out of its group; anything else takes the
        // previous state out and puts the new one in.
        let (out, into) = if change.deleted {
            (Some(&change.record), None)
        } else {
            (change.previous.as_ref(), Some(&change.record))
        };
        if let Some((group, value)) = out.and_then(|p| contribution(spec, p)) {
            state
                .groups
                .entry(group.to_owned())
                .or_default()
                .add(value, -1.0);
            touched.insert(group.to_owned(), change.seq);
        }
        if let Some((group, value)) = into.and_then(|r| contribution(spec, r)) {
            state
                .groups
                .entry(group.to_owned())
                .or_default()
                .add(value, 1.0);
            touched.insert(group.to_owned(), change.seq);
        }
        let import_ends = page
            .get(i + 1)
            .is_none_or(|next| next.import != change.import);
        if import_ends {
            for (group, seq) in std::mem::take(&mut touched) {
                let sums = state.groups.get(&group).copied().unwrap_or_default();
                points.push(sums.point(&change.import, change.at, seq, &group));
            }
        }
    }
    // Imports of a dataset commit side by side (PostgreSQL), so one import's changes
    // can come back after another's: one point per (import, group), the last, which a
    // single upsert statement needs.
    let mut seen = std::collections::BTreeSet::new();
    let mut kept: Vec<RollupPoint> = points
        .into_iter()
        .rev()
        .filter(|p| seen.insert((p.import.clone(), p.group.clone())))
        .collect();
    kept.reverse();
    kept
}

#[cfg(test)]
pub(crate) mod tests_support {
    use std::collections::BTreeMap;

    use chrono::{DateTime, Utc};

    use super::{RollupSpec, State, apply};
    use crate::model::{Attributes, Dimensions, ImportId, Measures, Record, RecordKey};
    use crate::ports::{RecordChange, RollupPoint};

    fn record(key: &str, value: Option<(&str, f64)>) -> Record {
        let mut dimensions = Dimensions::default();
        let mut measures = Measures::default();
        if let Some((group, value)) = value {
            dimensions
                .insert("test", group.to_owned())
                .expect("dimension");
            measures.insert("percent", value).expect("measure");
        }
        Record {
            key: RecordKey::try_new(vec![key.to_owned()]).expect("key"),
            version: None,
            dimensions,
            measures,
            attributes: Attributes::default(),
        }
    }

    /// A change of `key` by import `import` from `before` to `now` (group, value).
    pub(crate) fn change(
        seq: i64,
        import: &str,
        at: DateTime<Utc>,
        key: &str,
        now: Option<(&str, f64)>,
        before: Option<(&str, f64)>,
    ) -> RecordChange {
        RecordChange {
            seq,
            import: ImportId::parse(format!("import-{import}")).expect("id"),
            at,
            record: record(key, now),
            previous: before.map(|b| record(key, Some(b))),
            deleted: false,
        }
    }

    /// `key`'s deletion by import `import`, from the state `was` (group, value).
    pub(crate) fn deletion(
        seq: i64,
        import: &str,
        at: DateTime<Utc>,
        key: &str,
        was: (&str, f64),
    ) -> RecordChange {
        RecordChange {
            deleted: true,
            previous: None,
            ..change(seq, import, at, key, Some(was), None)
        }
    }

    /// The points one page of `changes` gives, as they are saved.
    pub(crate) fn apply_page(changes: &[RecordChange]) -> Vec<RollupPoint> {
        let spec = RollupSpec {
            name: "r".into(),
            measure: "percent".into(),
            group_by: "test".into(),
            every: None,
        };
        apply(&spec, &mut State::default(), changes)
    }

    /// The series `changes` give read `page` at a time, each point replacing one of
    /// the same import and group (as the stores save them).
    pub(crate) fn apply_all(changes: &[RecordChange], page: usize) -> Vec<RollupPoint> {
        let spec = RollupSpec {
            name: "r".into(),
            measure: "percent".into(),
            group_by: "test".into(),
            every: None,
        };
        let mut state = State::default();
        let mut saved = BTreeMap::new();
        for chunk in changes.chunks(page) {
            for p in apply(&spec, &mut state, chunk) {
                saved.insert((p.import.as_str().to_owned(), p.group.clone()), p);
            }
            // Through JSON, as a checkpoint goes.
            let json = serde_json::to_value(&state).expect("state");
            state = serde_json::from_value(json).expect("state back");
        }
        let mut points: Vec<RollupPoint> = saved.into_values().collect();
        points.sort_by_key(|p| (p.seq, p.group.clone()));
        points
    }
}
