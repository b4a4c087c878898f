//! The one tracing subscriber of the process: a filter from `log` (`INTAKE_LOG`), JSON
//! lines with the span fields (so every line of a request carries its `request_id`)
//! or pretty output on a terminal. The filter can be replaced at run time
//! (`PUT /admin/log-level`, through [`LogControl`]).

use std::collections::VecDeque;
use std::io::IsTerminal as _;
use std::sync::{Mutex, OnceLock};

use intake_actix_web_api::{LoggedError, Logging};
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::{Context, Layer, SubscriberExt as _};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::settings::{LogFormat, Settings};

/// Puts a new filter in force in the subscriber [`init`] installed.
type Reload = Box<dyn Fn(EnvFilter) -> Result<(), String> + Send + Sync>;

/// The installed subscriber's reload, and the filter in force.
static INSTALLED: OnceLock<(Reload, Mutex<String>)> = OnceLock::new();

fn parse(filter: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(filter).map_err(|e| format!("{e} (got {filter:?})"))
}

/// Installs the subscriber; a second call (tests) leaves the first in place.
///
/// # Errors
/// When the filter does not parse.
pub fn init(settings: &Settings) -> anyhow::Result<()> {
    let filter = parse(&settings.log).map_err(|e| anyhow::anyhow!("log: {e}"))?;
    let json = match settings.log_format {
        LogFormat::Json => true,
        LogFormat::Pretty => false,
        LogFormat::Auto => !std::io::stderr().is_terminal(),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_span_events(FmtSpan::NONE);
    let (installed, reload): (_, Reload) = if json {
        let builder = builder
            .json()
            .with_current_span(true)
            .with_span_list(true)
            .with_filter_reloading();
        let handle = builder.reload_handle();
        (
            builder.finish().with(ErrorRing).try_init(),
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
        )
    } else {
        let builder = builder
            .with_ansi(std::io::stderr().is_terminal())
            .with_filter_reloading();
        let handle = builder.reload_handle();
        (
            builder.finish().with(ErrorRing).try_init(),
            Box::new(move |f| handle.reload(f).map_err(|e| e.to_string())),
        )
    };
    // Already installed (several applications in one test process): keep the first.
    if installed.is_ok() {
        let _ = INSTALLED.set((reload, Mutex::new(settings.log.clone())));
    }
    Ok(())
}

/// The log filter of this process, as the management API reads and changes it. When
/// [`init`] installed no subscriber (Intake embedded as a library), a new filter is
/// checked and remembered, and nothing else logs through it.
pub struct LogControl {
    /// The filter when no subscriber of ours is installed.
    fallback: Mutex<String>,
}

impl LogControl {
    /// Control of the filter, which starts as `initial` (the `log` setting).
    pub fn new(initial: &str) -> Self {
        Self {
            fallback: Mutex::new(initial.to_owned()),
        }
    }

    fn current_filter(&self) -> &Mutex<String> {
        INSTALLED
            .get()
            .map_or(&self.fallback, |(_, current)| current)
    }
}

impl Logging for LogControl {
    fn recent_errors(&self) -> Vec<LoggedError> {
        let recent = RECENT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.iter().cloned().collect()
    }

    fn current(&self) -> String {
        self.current_filter()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn set(&self, filter: &str) -> Result<(), String> {
        let parsed = parse(filter)?;
        if let Some((reload, _)) = INSTALLED.get() {
            reload(parsed)?;
        }
        *self
            .current_filter()
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = filter.to_owned();
        Ok(())
    }
}

/// How many errors `/admin/state` shows.
const RECENT_ERRORS: usize = 20;

/// The last errors logged, newest first.
static RECENT: Mutex<VecDeque<LoggedError>> = Mutex::new(VecDeque::new());

/// A request span's id, kept in the span's extensions for the errors logged inside it.
struct RequestId(String);

/// Finds `request_id` among a span's or an event's fields, and writes the rest (the
/// message first) as one line.
#[derive(Default)]
struct Fields {
    request_id: Option<String>,
    message: String,
    others: Vec<String>,
}

impl Visit for Fields {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "request_id" if !value.is_empty() => self.request_id = Some(value.to_owned()),
            "request_id" => {}
            "message" => self.message = value.to_owned(),
            name => self.others.push(format!("{name}={value}")),
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "request_id" => self.request_id = Some(format!("{value:?}")),
            "message" => self.message = format!("{value:?}"),
            name => self.others.push(format!("{name}={value:?}")),
        }
    }
}

/// Keeps the last [`RECENT_ERRORS`] errors logged, each with the request it happened
/// in (its `request_id` field, or its request span's).
struct ErrorRing;

impl<S> Layer<S> for ErrorRing
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let (Some(request_id), Some(span)) = (fields.request_id, ctx.span(id)) {
            span.extensions_mut().insert(RequestId(request_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        if *event.metadata().level() != Level::ERROR {
            return;
        }
        let mut fields = Fields::default();
        event.record(&mut fields);
        let request_id = fields.request_id.or_else(|| {
            ctx.event_scope(event)?
                .find_map(|span| span.extensions().get::<RequestId>().map(|r| r.0.clone()))
        });
        let mut message = fields.message;
        for other in fields.others {
            message.push_str(if message.is_empty() { "" } else { " " });
            message.push_str(&other);
        }
        let error = LoggedError {
            at: chrono::Utc::now(),
            target: event.metadata().target().to_owned(),
            message,
            request_id,
        };
        let mut recent = RECENT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        recent.push_front(error);
        recent.truncate(RECENT_ERRORS);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use super::*;

    fn kept() -> Vec<LoggedError> {
        LogControl::new("info").recent_errors()
    }

    #[test]
    fn the_last_errors_are_kept_newest_first_with_their_request_ids() {
        let subscriber = tracing_subscriber::registry().with(ErrorRing);
        tracing::subscriber::with_default(subscriber, || {
            let request = tracing::info_span!("request", request_id = %"req-42", route = "/x");
            request.in_scope(|| tracing::error!(table = "sources", "reading sources failed"));
            tracing::warn!("a warning is not an error");
            tracing::error!(request_id = "req-7", "request failed");
            let errors = kept();
            assert_eq!(errors[0].message, "request failed");
            assert_eq!(errors[0].request_id.as_deref(), Some("req-7"));
            assert_eq!(errors[1].message, "reading sources failed table=sources");
            assert_eq!(
                errors[1].request_id.as_deref(),
                Some("req-42"),
                "from its span"
            );
            assert!(errors.iter().all(|e| !e.message.contains("warning")));
            for i in 0..25 {
                tracing::error!(worker = i, "claiming work failed");
            }
        });
        let errors = kept();
        assert_eq!(errors.len(), RECENT_ERRORS);
        assert_eq!(errors[0].message, "claiming work failed worker=24");
        assert_eq!(errors[0].request_id, None);
        assert_eq!(errors[0].target, module_path!());
    }

    #[test]
    fn a_filter_that_does_not_parse_changes_nothing() {
        let log = LogControl::new("info");
        let error = log.set("info,[oops").unwrap_err();
        assert!(error.contains("oops"), "{error}");
        assert_eq!(log.current(), "info");
        log.set("warn,intake_domain=debug").unwrap();
        assert_eq!(log.current(), "warn,intake_domain=debug");
    }
}
