//! A webhook receiver for the delivery benchmark (`scripts/bench/deliveries.sh`): it
//! answers every `POST /hook` with `204` at once, counts them, and keeps how long each
//! event took from being written (its body's `timestamp`) to arriving here.
//! `GET /stats` gives `{"count", "p50_ms", "p99_ms", "max_ms"}`; `POST /reset` starts
//! over. `wrk` against `POST /hook` measures what the receiver itself can take.
//! `RECEIVER_DELAY_MS=N` makes each answer wait N ms (a slow receiver: how many
//! requests Intake keeps in flight shows in the rate).
//!
//! ```text
//! cargo run --release -p intake-app --example webhook_receiver -- 127.0.0.1:18300
//! ```

use std::sync::Mutex;

use actix_web::{App, HttpResponse, HttpServer, web};
use chrono::{DateTime, Utc};

#[derive(Default)]
struct Stats {
    count: u64,
    latencies_ms: Vec<f64>,
}

async fn hook(body: web::Bytes, stats: web::Data<Mutex<Stats>>) -> HttpResponse {
    let now = Utc::now();
    if let Some(ms) = std::env::var("RECEIVER_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        actix_web::rt::time::sleep(std::time::Duration::from_millis(ms)).await;
    }
    let written = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["timestamp"].as_str().map(str::to_owned))
        .and_then(|t| DateTime::parse_from_rfc3339(&t).ok());
    let mut stats = stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    stats.count += 1;
    if let Some(written) = written {
        let ms = (now - written.with_timezone(&Utc))
            .num_microseconds()
            .unwrap_or(0) as f64
            / 1e3;
        stats.latencies_ms.push(ms);
    }
    HttpResponse::NoContent().finish()
}

async fn stats(stats: web::Data<Mutex<Stats>>) -> HttpResponse {
    let stats = stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut sorted = stats.latencies_ms.clone();
    sorted.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = ((sorted.len() as f64 - 1.0) * q).round() as usize;
        sorted.get(i).copied().unwrap_or(0.0)
    };
    HttpResponse::Ok().json(serde_json::json!({
        "count": stats.count, "p50_ms": at(0.5), "p99_ms": at(0.99), "max_ms": at(1.0),
    }))
}

async fn reset(stats: web::Data<Mutex<Stats>>) -> HttpResponse {
    *stats
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = Stats::default();
    HttpResponse::NoContent().finish()
}

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18300".into());
    let shared = web::Data::new(Mutex::new(Stats::default()));
    HttpServer::new(move || {
        App::new()
            .app_data(shared.clone())
            .route("/hook", web::post().to(hook))
            .route("/stats", web::get().to(stats))
            .route("/reset", web::post().to(reset))
    })
    .bind(addr)?
    .run()
    .await
}
