//! `intake serve`: the HTTP server and the import workers of one process, and their
//! graceful shutdown. On SIGINT or SIGTERM the server stops accepting, lets in-flight
//! requests finish within the grace period, and then the workers roll back and
//! release the imports they hold, so another process claims them at once.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Instant;

use actix_web::HttpServer;
use actix_web::dev::ServerHandle;
use anyhow::Context as _;
use intake_actix_web_api::{AdminState, ApiState, Metrics};
use intake_domain::callbacks::CallbackSettings;
use intake_domain::delivery::DeliveryWork;
use intake_domain::ingest::{ImportWorker, Shutdown, ShutdownTrigger, shutdown_channel};
use intake_domain::jobs::JobWork;
use intake_domain::ports::Backups;
use intake_domain::sources::SourceWork;
use intake_domain::work::{LeasedWork, Runtime, WorkSettings};

use crate::settings::Settings;
use crate::telemetry::LogControl;
use crate::wiring::{Observers, Relay, Services, Storage};

/// A built, bound server with its workers, ready to run.
pub struct Application {
    port: u16,
    server: actix_web::dev::Server,
    workers: Workers,
}

/// How many workers of each kind a process starts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerCounts {
    /// Import workers.
    pub imports: u32,
    /// Delivery workers.
    pub deliveries: u32,
    /// Callback timer workers.
    pub callbacks: u32,
    /// Pull source workers.
    pub sources: u32,
    /// Job workers.
    pub jobs: u32,
}

/// Starts `count` workers of `work` on the one runtime, named `{prefix}-{kind}-{i}`.
fn spawn_workers<W: LeasedWork + 'static>(
    services: &Services,
    work: Arc<W>,
    settings: WorkSettings,
    (prefix, kind, count): (&str, &str, u32),
    shutdown: &Shutdown,
) -> Vec<tokio::task::JoinHandle<()>> {
    let runtime = Arc::new(Runtime::new(
        work,
        services.clock.clone(),
        services.wakeups.clone(),
        settings,
    ));
    (0..count)
        .map(|i| {
            let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
            let name = format!("{prefix}-{kind}-{i}");
            tokio::spawn(async move { runtime.run(&name, shutdown).await })
        })
        .collect()
}

/// The workers of this process: imports, deliveries and callback timers.
pub struct Workers {
    trigger: ShutdownTrigger,
    shutdown: Shutdown,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Workers {
    /// Starts `counts` workers on the current runtime, and `relay` if any, which tells this
    /// process of what other processes commit: on PostgreSQL it wakes the workers
    /// across instances and this process's waiting requests of imports other instances
    /// finish; on both databases it tells of dataset changes (ADR 25).
    pub fn start(services: &Services, counts: WorkerCounts, relay: Option<Relay>) -> Self {
        let (trigger, shutdown) = shutdown_channel();
        let (host, pid) = (host(), std::process::id());
        let mut tasks: Vec<_> = (0..counts.imports)
            .map(|i| {
                let worker = ImportWorker::new(services.imports.clone(), services.clock.clone());
                let shutdown = shutdown.clone();
                let name = intake_domain::ingest::worker_name(&host, pid, i);
                tokio::spawn(async move { worker.run(&name, shutdown).await })
            })
            .collect();
        if counts.deliveries > 0 {
            let work = Arc::new(DeliveryWork::new(&services.deliveries));
            let settings = services.deliveries.settings().work();
            let runtime = Arc::new(Runtime::new(
                work,
                services.clock.clone(),
                services.wakeups.clone(),
                settings,
            ));
            tasks.extend((0..counts.deliveries).map(|i| {
                let (runtime, shutdown) = (runtime.clone(), shutdown.clone());
                let name = format!("{host}-{pid}-delivery-{i}");
                tokio::spawn(async move { runtime.run(&name, shutdown).await })
            }));
            let (service, shutdown) = (services.deliveries.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move {
                service.keep_house_until(shutdown).await;
            }));
        }
        let prefix = format!("{host}-{pid}");
        if counts.callbacks > 0 {
            tasks.extend(spawn_workers(
                services,
                services.callbacks.clone(),
                CallbackSettings::default().work(),
                (&prefix, "callback", counts.callbacks),
                &shutdown,
            ));
            let (work, shutdown) = (services.callbacks.clone(), shutdown.clone());
            tasks.push(tokio::spawn(async move {
                work.keep_house_until(shutdown).await;
            }));
        }
        tasks.extend(spawn_workers(
            services,
            Arc::new(SourceWork::new(services.sources.clone())),
            services.sources.settings().work(),
            (&prefix, "source", counts.sources),
            &shutdown,
        ));
        tasks.extend(spawn_workers(
            services,
            Arc::new(JobWork::new(services.jobs.clone())),
            services.jobs.settings().work(),
            (&prefix, "job", counts.jobs),
            &shutdown,
        ));
        // Every instance obeys the pauses, whichever instance an operator asked.
        let (control, stopping) = (services.workers.clone(), shutdown.clone());
        tasks.push(tokio::spawn(async move {
            control.follow_until(stopping).await;
        }));
        // Even with no workers, requests waiting for their imports hear of finishes,
        // and answers hear of dataset changes.
        let (wakeups, kept) = (services.wakeups.clone(), shutdown.clone());
        tasks.extend(relay.map(|relay| match relay {
            Relay::Postgres(store) => tokio::spawn(async move {
                store.relay_wakeups(wakeups, shutdown).await;
            }),
            Relay::Sqlite(store) => tokio::spawn(async move {
                store
                    .relay_changes(wakeups.datasets().clone(), shutdown)
                    .await;
            }),
        }));
        Self {
            trigger,
            shutdown: kept,
            tasks,
        }
    }

    /// Also backs the database up every `every` until stopped; a failed backup is
    /// logged as an error (and shown by `/admin/state`), the next one tried on time.
    pub fn back_up_every(&mut self, backups: Arc<dyn Backups>, every: std::time::Duration) {
        let shutdown = self.shutdown.clone();
        self.tasks.push(tokio::spawn(async move {
            loop {
                let slept = async {
                    tokio::time::sleep(every).await;
                    true
                };
                let stopped = async {
                    shutdown.wait().await;
                    false
                };
                if !futures_lite::future::or(slept, stopped).await {
                    return;
                }
                if let Err(e) = backups.make().await {
                    tracing::error!(error = %format!("{e:#}"), "the scheduled backup failed");
                }
            }
        }));
    }

    /// Stops them: each rolls back and releases what it holds.
    pub async fn stop(self) {
        self.trigger.trigger();
        for task in self.tasks {
            if let Err(e) = task.await {
                tracing::error!(error = %e, "a worker ended abnormally");
            }
        }
    }
}

/// Who this process's pids belong to: the machine's name, and its PID namespace when
/// `/proc` tells it (containers sharing a host name each have their own). Workers of
/// several processes share a database: their names (`{host}-{pid}-{n}`) tell them
/// apart in logs and tell a restarted process which leases its dead predecessor, in
/// the same namespace, left.
fn host() -> String {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "intake".into());
    let namespace = std::fs::read_link("/proc/self/ns/pid")
        .ok()
        .and_then(|link| {
            let link = link.to_string_lossy().into_owned();
            let inode = link.strip_prefix("pid:[")?.strip_suffix(']')?.to_owned();
            Some(inode)
        });
    match namespace {
        Some(inode) => format!("{name}.{inode}"),
        None => name,
    }
}

/// Whether process `pid` runs on this machine, other than this one: at start-up this
/// process holds no lease yet, so a lease under its own pid was left by a predecessor
/// that had the same pid (a container's PID 1, restarted). Without `/proc` nothing can
/// be told, and every other process counts as alive (its leases expire as usual).
fn is_alive(pid: u32) -> bool {
    pid != std::process::id()
        && (!std::path::Path::new("/proc/self").exists()
            || std::path::Path::new(&format!("/proc/{pid}")).exists())
}

/// Takes back the imports that workers of this host's dead processes held, so a
/// restart resumes them at once instead of a lease later.
async fn take_back_abandoned(services: &Services) {
    match services
        .imports
        .take_back_abandoned(&host(), &is_alive)
        .await
    {
        Ok(0) => {}
        Ok(n) => tracing::info!(imports = n, "resuming imports a previous process left"),
        Err(e) => {
            tracing::warn!(error = %e, "could not take back abandoned imports; their leases will expire")
        }
    }
}

impl Application {
    /// Opens the database (migrating it), builds the services, binds the listener and
    /// starts the workers.
    ///
    /// # Errors
    /// When the database cannot be opened or the address cannot be bound.
    pub async fn build(settings: &Settings) -> anyhow::Result<Self> {
        settings.check_exposure()?;
        let tokens = settings.auth_tokens.tokens()?;
        let storage = Storage::open(settings).await?;
        let metrics = Arc::new(Metrics::new());
        let observers = Observers {
            imports: metrics.clone(),
            callbacks: metrics.clone(),
        };
        let services = Services::new(&storage, settings, Some(observers))?;
        let limits = crate::wiring::limits(settings)?;
        let addr = settings.listen_addr()?;
        let listener = TcpListener::bind(addr).with_context(|| format!("binding {addr}"))?;
        let port = listener.local_addr()?.port();
        let state = Arc::new(ApiState {
            datasets: services.datasets.clone(),
            imports: services.imports.clone(),
            deliveries: services.deliveries.clone(),
            callbacks: services.callback_listings.clone(),
            sources: services.sources.clone(),
            jobs: services.jobs.clone(),
            dependencies: [Some(storage.health.clone()), limits.redis]
                .into_iter()
                .flatten()
                .collect(),
            rate_limiter: limits.limiter,
            metrics,
            settings: intake_actix_web_api::Settings {
                max_json_bytes: settings.max_json_bytes,
                max_wait: settings.import_wait(),
                tokens: tokens.clone(),
                rate_limit: settings.rate_limit()?,
                default_timeout: settings.request_timeouts().0,
                max_timeout: settings.request_timeouts().1,
                max_url_bytes: settings.max_url_bytes,
                max_header_bytes: settings.max_header_bytes,
                ..intake_actix_web_api::Settings::default()
            },
            started: Instant::now(),
            admin: AdminState {
                instance: format!("{}-{}", host(), std::process::id()),
                config: serde_json::to_value(settings.redacted())?,
                workers: services.workers.clone(),
                log: Arc::new(LogControl::new(&settings.log)),
                backups: storage.backups.clone(),
            },
        });
        // Signals are ours (`stop_on_signals`): actix's own handling makes SIGINT a
        // forced stop that drops requests in flight.
        let mut server = HttpServer::new(move || intake_actix_web_api::app(state.clone()))
            .shutdown_timeout(settings.shutdown_grace_seconds)
            .disable_signals();
        if settings.http_workers > 0 {
            server = server.workers(settings.http_workers);
        }
        let server = server.listen(listener)?.run();
        if settings.workers > 0 {
            take_back_abandoned(&services).await;
        }
        let counts = WorkerCounts {
            imports: settings.workers,
            deliveries: settings.delivery_workers,
            callbacks: settings.callback_workers,
            sources: settings.source_workers,
            jobs: settings.job_workers,
        };
        // Workers obey the pauses from their first claim.
        if let Err(e) = services.workers.read().await {
            tracing::warn!(error = %format!("{e:#}"), "could not read which kinds of work are paused");
        }
        let mut workers = Workers::start(&services, counts, Some(storage.relay.clone()));
        // Only SQLite has backups made by the service.
        if let Some(backups) = &storage.backups
            && let (Some(every), _, _) = settings.backups()?
        {
            workers.back_up_every(backups.clone(), every);
        }
        if tokens.is_empty() {
            tracing::warn!(%addr, "no auth tokens are configured: authentication is off, \
                so only a loopback address may be bound");
        } else {
            tracing::info!(tokens = tokens.len(), "bearer tokens are required");
        }
        let data = settings.data_location()?;
        tracing::info!(%addr, port, database = %settings.database_url,
            workers = settings.workers, "intake is serving; its data is in {data}");
        Ok(Self {
            port,
            server,
            workers,
        })
    }

    /// The port bound (useful with port 0).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A handle that stops the server gracefully (what a signal does).
    pub fn handle(&self) -> ServerHandle {
        self.server.handle()
    }

    /// Serves until [`ServerHandle::stop`] (which [`stop_on_signals`] calls on SIGINT
    /// or SIGTERM), then stops the workers.
    ///
    /// # Errors
    /// When the server fails.
    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let served = self.server.await;
        tracing::info!("server stopped; stopping the workers");
        self.workers.stop().await;
        tracing::info!("intake stopped");
        served.context("serving HTTP")
    }
}

/// Stops the server on SIGINT or SIGTERM gracefully: it stops accepting and gives
/// requests in flight the grace period. A second SIGINT (an impatient Ctrl-C) exits
/// at once (status 130).
pub async fn stop_on_signals(handle: ServerHandle) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut interrupt), Ok(mut terminate)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        tracing::error!("could not listen for SIGINT and SIGTERM; stop intake with SIGKILL");
        return;
    };
    let name = futures_lite::future::or(
        async {
            interrupt.recv().await;
            "SIGINT"
        },
        async {
            terminate.recv().await;
            "SIGTERM"
        },
    )
    .await;
    tracing::info!(
        signal = name,
        "stopping gracefully: requests in flight may finish (a second SIGINT stops at once)"
    );
    actix_web::rt::spawn(async move { handle.stop(true).await });
    interrupt.recv().await;
    // A graceful stop in progress cannot be cut short through the server handle: the
    // process exits. The database rolls back what workers had not committed, and the
    // next start takes their imports back at once.
    tracing::warn!("a second SIGINT: exiting now, dropping requests in flight");
    std::process::exit(130);
}
