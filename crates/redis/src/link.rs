//! One lazily connected Redis connection behind a back-off, shared by the adapters
//! of this crate: connecting on first use, bounding every call, backing off after a
//! failure, and logging changes of state rather than every failed call.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow};
use redis::RedisError;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// How long after a failure a link gives up at once before it connects again.
const RETRY_EVERY: Duration = Duration::from_secs(1);

/// At most one log line per this period for errors that leave the connection up (the
/// server refusing a command, say).
const ERROR_LOG_EVERY: Duration = Duration::from_secs(10);

/// A connection to one Redis server, opened on first use (see the module
/// documentation).
pub(crate) struct RedisLink {
    client: redis::Client,
    /// The URL without its password.
    pub(crate) url: String,
    timeout: Duration,
    /// Who uses it, in log lines (`cache`, `rate limiter`).
    user: &'static str,
    /// What the user does while Redis is down, in log lines.
    meanwhile: &'static str,
    link: Mutex<Link>,
}

/// The connection's state, behind a lock that is never held across an `await`.
struct Link {
    /// The open connection and its generation.
    connection: Option<(ConnectionManager, u64)>,
    /// Counts connections made, so a failure seen on an old one does not drop a newer.
    generation: u64,
    /// When there is no connection, the earliest time to try connecting again.
    next_attempt: Instant,
    /// Why the last attempt or call failed, while there is no connection.
    last_error: Option<String>,
    /// Whether "cache unavailable" was logged and "cache back" was not since.
    down: bool,
    /// When an error other than a broken connection was last logged, and how many were
    /// not logged since.
    errors_logged_at: Option<Instant>,
    errors_not_logged: u64,
}

/// Why a call gave no answer; already logged where it needs to be.
pub(crate) type Failure = anyhow::Error;

impl RedisLink {
    /// A link to the Redis at `url`; does not connect.
    ///
    /// # Errors
    /// When the URL is malformed, or the timeout is zero.
    pub(crate) fn new(
        url: &str,
        timeout: Duration,
        user: &'static str,
        meanwhile: &'static str,
    ) -> anyhow::Result<Self> {
        let redacted = intake_domain::redact::url(url);
        let client = redis::Client::open(url)
            .with_context(|| format!("parsing the Redis URL {redacted}"))?;
        anyhow::ensure!(
            !timeout.is_zero(),
            "the Redis timeout must be more than zero"
        );
        Ok(Self {
            client,
            url: redacted,
            timeout,
            user,
            meanwhile,
            link: Mutex::new(Link {
                connection: None,
                generation: 0,
                next_attempt: Instant::now(),
                last_error: None,
                down: false,
                errors_logged_at: None,
                errors_not_logged: 0,
            }),
        })
    }

    fn link(&self) -> MutexGuard<'_, Link> {
        // The state stays consistent whatever panicked while holding the lock.
        self.link.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The open connection, or a new one when the back-off allows an attempt.
    async fn connection(&self) -> Result<(ConnectionManager, u64), Failure> {
        {
            let mut link = self.link();
            if let Some((connection, generation)) = &link.connection {
                return Ok((connection.clone(), *generation));
            }
            let now = Instant::now();
            if now < link.next_attempt {
                let why = link.last_error.as_deref().unwrap_or("connecting");
                return Err(anyhow!("Redis at {} is unavailable: {why}", self.url));
            }
            // This caller makes the attempt; the others answer misses meanwhile.
            link.next_attempt = now + RETRY_EVERY;
        }
        let config = ConnectionManagerConfig::new()
            .set_number_of_retries(0)
            .set_connection_timeout(Some(self.timeout))
            .set_response_timeout(Some(self.timeout));
        let connecting = ConnectionManager::new_with_config(self.client.clone(), config);
        let error = match tokio::time::timeout(self.timeout, connecting).await {
            Ok(Ok(connection)) => {
                let mut link = self.link();
                link.generation += 1;
                let generation = link.generation;
                link.connection = Some((connection.clone(), generation));
                link.last_error = None;
                if link.down {
                    link.down = false;
                    tracing::info!(redis.url = %self.url, "{} back: connected to Redis again", self.user);
                } else {
                    tracing::info!(redis.url = %self.url, "{}: connected to Redis", self.user);
                }
                return Ok((connection, generation));
            }
            Ok(Err(e)) => format!("connecting: {e}"),
            Err(_) => format!("connecting: no answer within {:?}", self.timeout),
        };
        Err(self.broken(None, error))
    }

    /// Records a failure that leaves no usable connection: drops it (unless it is
    /// already a newer one than `generation`), backs off, and logs the first of a run.
    fn broken(&self, generation: Option<u64>, error: String) -> Failure {
        let mut link = self.link();
        let current = link.connection.as_ref().map(|(_, g)| *g);
        if generation.is_some() && current != generation {
            // Another caller already dropped that connection, or made a new one.
            return anyhow!("Redis at {}: {error}", self.url);
        }
        link.connection = None;
        link.next_attempt = Instant::now() + RETRY_EVERY;
        if !link.down {
            link.down = true;
            tracing::warn!(
                redis.url = %self.url,
                error.message = %error,
                "{} unavailable: {}, retrying Redis at most once per {RETRY_EVERY:?}",
                self.user,
                self.meanwhile
            );
        }
        link.last_error = Some(error.clone());
        anyhow!("Redis at {}: {error}", self.url)
    }

    /// Logs an error that leaves the connection usable, at most once per
    /// [`ERROR_LOG_EVERY`].
    fn refused(&self, what: &str, error: &RedisError) -> Failure {
        let mut link = self.link();
        let now = Instant::now();
        let due = link
            .errors_logged_at
            .is_none_or(|at| now.duration_since(at) >= ERROR_LOG_EVERY);
        if due {
            tracing::warn!(
                redis.url = %self.url,
                error.message = %error,
                errors.not_logged = link.errors_not_logged,
                "{} {what} failed", self.user
            );
            link.errors_logged_at = Some(now);
            link.errors_not_logged = 0;
        } else {
            link.errors_not_logged += 1;
        }
        anyhow!("Redis at {}: {what}: {error}", self.url)
    }

    /// Runs one Redis call on the connection, bounded by the timeout, and sorts out
    /// its failures.
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, Failure>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let (connection, generation) = self.connection().await?;
        match tokio::time::timeout(self.timeout, f(connection)).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) if breaks_the_connection(&e) => {
                Err(self.broken(Some(generation), format!("{what}: {e}")))
            }
            Ok(Err(e)) => Err(self.refused(what, &e)),
            Err(_) => Err(self.broken(
                Some(generation),
                format!("{what}: no answer within {:?}", self.timeout),
            )),
        }
    }

    /// Whether Redis answers `PING` now (within the timeout).
    ///
    /// # Errors
    /// When it does not, or the link is backing off after a failure.
    pub(crate) async fn ping(&self) -> anyhow::Result<()> {
        let reply: String = self
            .call("ping", |mut c| async move {
                redis::cmd("PING").query_async(&mut c).await
            })
            .await?;
        anyhow::ensure!(reply == "PONG", "Redis answered {reply:?} to PING");
        Ok(())
    }
}

/// Whether an error means the connection is gone (rather than one command refused).
fn breaks_the_connection(e: &RedisError) -> bool {
    e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error()
}
