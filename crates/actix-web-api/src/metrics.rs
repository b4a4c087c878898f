//! The Prometheus metrics of `/metrics`: requests by route and status with their
//! latency, imports by outcome, records ingested, callbacks fired (with their
//! lateness), late and cancelled, and, read when scraped, the import queue's depth and
//! each dependency's connection pool.

use std::sync::atomic::AtomicU64;
use std::time::Duration;

use intake_domain::callbacks::CallbackObserver;
use intake_domain::ingest::ImportObserver;
use intake_domain::merge::Verdict;
use intake_domain::ports::PoolUsage;
use intake_domain::{DatasetName, ImportReport};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    method: String,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabels {
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    status: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    dependency: &'static str,
    state: &'static str,
}

/// The registry and every metric in it; shared by the middleware, the import
/// workers (as their [`ImportObserver`]) and `/metrics`.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
    imports: Family<OutcomeLabels, Counter>,
    records: Counter,
    invalid: Counter,
    queue_depth: Gauge<u64, AtomicU64>,
    pools: Family<PoolLabels, Gauge>,
    callbacks_cancelled: Counter,
    callbacks_late: Counter,
    callback_lateness: Histogram,
    sources: Family<SourceLabels, Gauge>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// A registry with every metric at zero.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("intake");
        let requests = Family::<RequestLabels, Counter>::default();
        registry.register("http_requests", "HTTP requests served", requests.clone());
        let latency = Family::<RequestLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0005, 2.0, 16))
        });
        registry.register(
            "http_request_duration_seconds",
            "Time to serve an HTTP request",
            latency.clone(),
        );
        let imports = Family::<OutcomeLabels, Counter>::default();
        registry.register("imports", "Imports processed, by outcome", imports.clone());
        let records = Counter::default();
        registry.register(
            "records_ingested",
            "Records created or updated by committed imports",
            records.clone(),
        );
        let invalid = Counter::default();
        registry.register(
            "records_invalid",
            "Records reported invalid by processed imports",
            invalid.clone(),
        );
        let queue_depth = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "import_queue_depth",
            "Imports waiting for a worker",
            queue_depth.clone(),
        );
        let pools = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "pool_connections",
            "Connections of each dependency's pool, by state (open, idle, max)",
            pools.clone(),
        );
        let callbacks_cancelled = Counter::default();
        registry.register(
            "callbacks_cancelled",
            "Pending callbacks cancelled by a newer version of their record",
            callbacks_cancelled.clone(),
        );
        let callbacks_late = Counter::default();
        registry.register(
            "callbacks_late",
            "Callbacks fired more than 100 ms after they were due (after downtime, or overload)",
            callbacks_late.clone(),
        );
        // 1 ms to about 65 s.
        let callback_lateness = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        registry.register(
            "callback_lateness_seconds",
            "How long after it was due each callback fired",
            callback_lateness.clone(),
        );
        let sources = Family::<SourceLabels, Gauge>::default();
        registry.register(
            "sources",
            "Pull sources by health (healthy, degraded, paused)",
            sources.clone(),
        );
        Self {
            registry,
            sources,
            requests,
            latency,
            imports,
            records,
            invalid,
            queue_depth,
            pools,
            callbacks_cancelled,
            callbacks_late,
            callback_lateness,
        }
    }

    /// Counts and times one request.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, took: Duration) {
        let labels = RequestLabels {
            method: method.to_owned(),
            route: route.to_owned(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency
            .get_or_create(&labels)
            .observe(took.as_secs_f64());
    }

    /// Sets the values read at scrape time.
    pub fn set_gauges(&self, queue_depth: Option<u64>, pools: &[(&'static str, PoolUsage)]) {
        if let Some(depth) = queue_depth {
            self.queue_depth.set(depth);
        }
        for (dependency, usage) in pools {
            for (state, value) in [
                ("open", usage.size),
                ("idle", usage.idle),
                ("max", usage.max),
            ] {
                let labels = PoolLabels { dependency, state };
                self.pools.get_or_create(&labels).set(i64::from(value));
            }
        }
    }

    /// Sets how many pull sources are in each health, read at scrape time.
    pub fn set_sources(&self, counts: &[(&'static str, u64)]) {
        for (status, n) in counts {
            let labels = SourceLabels { status };
            self.sources
                .get_or_create(&labels)
                .set(i64::try_from(*n).unwrap_or(i64::MAX));
        }
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut text, &self.registry);
        text
    }
}

impl ImportObserver for Metrics {
    fn finished(&self, _: &DatasetName, verdict: Verdict, report: &ImportReport) {
        let outcome = match verdict {
            Verdict::Commit => "completed",
            Verdict::Reject => "failed",
        };
        self.imports.get_or_create(&OutcomeLabels { outcome }).inc();
        if verdict == Verdict::Commit {
            self.records.inc_by(report.inserted + report.updated);
        }
        self.invalid.inc_by(report.invalid);
    }

    fn callbacks_cancelled(&self, _: &DatasetName, count: u64) {
        self.callbacks_cancelled.inc_by(count);
    }
}

impl CallbackObserver for Metrics {
    fn fired(&self, _: &DatasetName, lateness: Duration, late: bool) {
        self.callback_lateness.observe(lateness.as_secs_f64());
        if late {
            self.callbacks_late.inc();
        }
    }
}
