//! `intake replay`: the account-update indexer challenge against a running server.
//! Sends a JSON array's updates one at a time, in file order, each after a seeded
//! random pause, through the REST API (`POST …/imports?wait=true`); waits until every
//! callback they set has fired or been cancelled (`GET …/callbacks`); then prints the
//! highest-token record per group (`GET …/top`) and a summary.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::path::Path;
use std::time::Duration;

use anyhow::Context as _;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;

use crate::remote::{Api, problem};

/// What `replay` is asked to do.
#[derive(Debug, Clone)]
pub struct ReplayArgs {
    /// The server's base URL.
    pub server: String,
    /// A bearer token, when the server wants one.
    pub token: Option<String>,
    /// The dataset (its contract must read the file's updates).
    pub dataset: String,
    /// The pause before each update, in milliseconds, drawn uniformly.
    pub delay_ms: RangeInclusive<u64>,
    /// The seed of the pauses.
    pub seed: u64,
    /// The measure to rank by.
    pub measure: String,
    /// The dimension to group by.
    pub group_by: String,
    /// Show a progress bar.
    pub progress: bool,
}

/// Parses `0..1000ms` (or `0..1000`, `250ms`): the range of pauses, in milliseconds.
///
/// # Errors
/// When it is not such a range.
pub fn parse_delay(text: &str) -> Result<RangeInclusive<u64>, String> {
    let bare = text.trim().trim_end_matches("ms");
    let (low, high) = bare.split_once("..").unwrap_or((bare, bare));
    let number = |s: &str| {
        s.trim()
            .parse::<u64>()
            .map_err(|_| format!("{text:?}: expected a range of milliseconds such as 0..1000ms"))
    };
    let (low, high) = (number(low)?, number(high)?);
    if low > high || high > 3_600_000 {
        return Err(format!(
            "{text:?}: the low end must not exceed the high end, at most an hour"
        ));
    }
    Ok(low..=high)
}

/// A small seeded generator (SplitMix64): the same seed gives the same pauses.
struct Pauses {
    state: u64,
    range: RangeInclusive<u64>,
}

impl Pauses {
    fn next(&mut self) -> Duration {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let span = self.range.end() - self.range.start() + 1;
        Duration::from_millis(self.range.start() + z % span)
    }
}

/// What the replay counted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Updates sent.
    pub sent: u64,
    /// Accepted as a new or newer version.
    pub indexed: u64,
    /// Older than the version held: ignored.
    pub ignored_as_old: u64,
    /// Equal to what was held: ignored.
    pub duplicates: u64,
    /// Not a valid update (reported by the import).
    pub invalid: u64,
    /// Callbacks fired.
    pub fired: u64,
    /// Callbacks cancelled by a newer version.
    pub cancelled: u64,
    /// Callbacks fired more than 100 ms after they were due.
    pub late: u64,
}

impl Api {
    /// Every callback of `dataset` in `status` set by one of `imports`.
    async fn callbacks(
        &self,
        dataset: &str,
        status: &str,
        imports: &HashSet<String>,
    ) -> anyhow::Result<Vec<Value>> {
        let mut found = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut path = format!("/v1/datasets/{dataset}/callbacks?status={status}&limit=1000");
            if let Some(c) = &cursor {
                path.push_str(&format!("&cursor={c}"));
            }
            let page = self.get(&path).await?;
            let items = page["items"].as_array().cloned().unwrap_or_default();
            found.extend(
                items
                    .into_iter()
                    .filter(|c| c["import"].as_str().is_some_and(|i| imports.contains(i))),
            );
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return Ok(found),
            }
        }
    }
}

fn count(report: &Value, field: &str) -> u64 {
    report[field].as_u64().unwrap_or(0)
}

/// Replays `file` against the server, prints the top records per group and the
/// summary, and gives the summary.
///
/// # Errors
/// When the file is not a JSON array, the server is unreachable, the dataset does not
/// exist, an update is refused, or callbacks stay pending long after they were due.
pub async fn replay(file: &Path, args: &ReplayArgs) -> anyhow::Result<Summary> {
    let text = std::fs::read(file).with_context(|| format!("reading {}", file.display()))?;
    let updates: Vec<Value> = serde_json::from_slice(&text)
        .with_context(|| format!("{}: expected a JSON array of updates", file.display()))?;
    let api = Api::new(&args.server, args.token.clone())?;
    let dataset = &args.dataset;
    let (status, body) = api
        .send(
            api.client
                .get(format!("{}/v1/datasets/{dataset}", api.base)),
        )
        .await?;
    match status {
        200 => {}
        404 => anyhow::bail!(
            "no dataset {dataset:?} on {}: create it first (the README's accounts walkthrough)",
            api.base
        ),
        _ => anyhow::bail!("GET /v1/datasets/{dataset}: {status} {}", problem(&body)),
    }

    let bar = progress_bar(args.progress, updates.len() as u64);
    let mut pauses = Pauses {
        state: args.seed,
        range: args.delay_ms.clone(),
    };
    let mut summary = Summary::default();
    let mut imports = HashSet::new();
    for (n, update) in updates.iter().enumerate() {
        tokio::time::sleep(pauses.next()).await;
        let body = Value::Array(vec![update.clone()]).to_string();
        let url = format!("{}/v1/datasets/{dataset}/imports?wait=true", api.base);
        let request = api
            .client
            .post(url)
            .header("Content-Type", "application/json")
            .body(body);
        let (status, import) = api.send(request).await?;
        anyhow::ensure!(
            status == 200 || status == 201,
            "update {} was refused: {status} {}",
            n + 1,
            problem(&import)
        );
        let report = &import["report"];
        summary.sent += 1;
        summary.indexed += count(report, "inserted") + count(report, "updated");
        summary.ignored_as_old += count(report, "superseded");
        summary.duplicates += count(report, "unchanged");
        summary.invalid += count(report, "invalid");
        if let Some(id) = import["id"].as_str() {
            imports.insert(id.to_owned());
        }
        bar.set_message(format!(
            "indexed {}, old {}, invalid {}",
            summary.indexed, summary.ignored_as_old, summary.invalid
        ));
        bar.inc(1);
    }
    bar.finish_and_clear();

    wait_for_callbacks(&api, dataset, &imports, args.progress).await?;
    let fired = api.callbacks(dataset, "fired", &imports).await?;
    summary.fired = fired.len() as u64;
    summary.late = fired
        .iter()
        .filter(|c| c["lateness_ms"].as_i64().unwrap_or(0) > 100)
        .count() as u64;
    summary.cancelled = api.callbacks(dataset, "cancelled", &imports).await?.len() as u64;

    let top = api
        .get(&format!(
            "/v1/datasets/{dataset}/top?measure={}&group_by={}&k=1",
            args.measure, args.group_by
        ))
        .await?;
    print_top(&top, &args.measure, &args.group_by);
    println!(
        "\n{} updates sent: {} indexed, {} ignored as old, {} duplicates, {} invalid; \
         callbacks: {} fired ({} late), {} cancelled",
        summary.sent,
        summary.indexed,
        summary.ignored_as_old,
        summary.duplicates,
        summary.invalid,
        summary.fired,
        summary.late,
        summary.cancelled
    );
    Ok(summary)
}

fn progress_bar(shown: bool, len: u64) -> ProgressBar {
    if !shown {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    let style = ProgressStyle::with_template("{bar:30} {pos}/{len} updates  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar
}

/// Polls until none of the replay's callbacks is pending; gives up a minute after the
/// last one was due (the server's callback workers are not running, or stopped).
async fn wait_for_callbacks(
    api: &Api,
    dataset: &str,
    imports: &HashSet<String>,
    progress: bool,
) -> anyhow::Result<()> {
    let spinner = if progress {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    loop {
        let pending = api.callbacks(dataset, "pending", imports).await?;
        if pending.is_empty() {
            spinner.finish_and_clear();
            return Ok(());
        }
        spinner.set_message(format!("waiting for {} pending callbacks", pending.len()));
        spinner.tick();
        let latest_due = pending
            .iter()
            .filter_map(|c| c["due_at"].as_str())
            .filter_map(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .max();
        if let Some(due) = latest_due {
            anyhow::ensure!(
                chrono::Utc::now() < due + chrono::Duration::seconds(60),
                "{} callbacks are still pending a minute after they were due: are the \
                 server's callback workers running (callback_workers)?",
                pending.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A JSON number as people write it: `517`, not `517.0`.
fn number(value: &Value) -> String {
    match value.as_f64() {
        Some(n) if n.fract() == 0.0 && n.abs() < 1e15 => format!("{n:.0}"),
        Some(n) => n.to_string(),
        None => "-".into(),
    }
}

fn print_top(top: &Value, measure: &str, group_by: &str) {
    println!(
        "{:<16} {:<48} {:>10} {:>8}",
        group_by, "key", measure, "version"
    );
    for group in top["groups"].as_array().into_iter().flatten() {
        for ranked in group["records"].as_array().into_iter().flatten() {
            let record = &ranked["record"];
            println!(
                "{:<16} {:<48} {:>10} {:>8}",
                group["group"].as_str().unwrap_or(""),
                record["key"].as_str().unwrap_or(""),
                number(&ranked["score"]),
                number(&record["version"])
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_are_ranges_of_milliseconds() {
        assert_eq!(parse_delay("0..1000ms"), Ok(0..=1000));
        assert_eq!(parse_delay("5..10"), Ok(5..=10));
        assert_eq!(parse_delay("250ms"), Ok(250..=250));
        assert!(parse_delay("10..5ms").is_err());
        assert!(parse_delay("a..b").is_err());
    }

    #[test]
    fn pauses_are_seeded_and_within_the_range() {
        let draw = |seed| {
            let mut p = Pauses {
                state: seed,
                range: 0..=100,
            };
            (0..200).map(|_| p.next()).collect::<Vec<_>>()
        };
        assert_eq!(draw(7), draw(7), "the same seed, the same pauses");
        assert_ne!(draw(7), draw(8));
        let pauses = draw(1);
        assert!(pauses.iter().all(|d| *d <= Duration::from_millis(100)));
        assert!(pauses.iter().any(|d| *d < Duration::from_millis(20)));
        assert!(pauses.iter().any(|d| *d > Duration::from_millis(80)));
    }
}
