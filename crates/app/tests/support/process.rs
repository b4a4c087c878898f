//! `intake` processes as an operator runs them: started with an environment, stopped
//! with a signal.
#![allow(dead_code, reason = "each test file uses its part")]

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The binary, with an empty environment and a SQLite database in `data`.
pub fn intake(data: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_intake"));
    let url = format!("sqlite://{}", data.join("intake.db").display());
    command
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("INTAKE_DATABASE_URL", url)
        .current_dir(data);
    command
}

/// A port nothing listens on now.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// `intake serve` on a free port with this extra environment (standard error piped),
/// and its base URL.
pub fn serve(dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let port = free_port();
    let mut command = intake(dir);
    command
        .arg("serve")
        .env("INTAKE_LISTEN", format!("127.0.0.1:{port}"))
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    (command.spawn().unwrap(), format!("http://127.0.0.1:{port}"))
}

/// What an operator's `kill` sends.
pub fn sigterm(child: &Child) {
    let pid = child.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status();
    assert!(killed.unwrap().success());
}

/// Waits until `base` answers `/healthz`.
pub async fn wait_until_up(client: &awc::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if client.get(format!("{base}/healthz")).send().await.is_ok() {
            return;
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("intake serve did not come up");
}
