//! `spawn_app`: the real server, built by the same `Application::build` as `intake
//! serve`, on a random port over a fresh database (a SQLite file in a temporary
//! directory, or a PostgreSQL schema of its own, dropped afterwards), and a client
//! with typed helpers.

use std::path::PathBuf;

use awc::http::StatusCode;
use intake_app::server::Application;
use intake_app::settings::Settings;
use serde_json::Value;

/// The PostgreSQL server the suites need (they fail, never skip, without it).
pub fn postgres_url() -> String {
    std::env::var("INTAKE_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Which database a test app runs on.
#[derive(Debug, Clone, Copy)]
pub enum Db {
    Sqlite,
    Postgres,
}

/// A running server and what to clean up after it.
pub struct TestApp {
    pub base: String,
    pub client: awc::Client,
    handle: actix_web::dev::ServerHandle,
    running: std::sync::Mutex<Option<tokio::task::JoinHandle<anyhow::Result<()>>>>,
    schema: Option<(String, String)>,
    _dir: tempfile::TempDir,
}

/// An answer: status, headers and the body as JSON (`Null` when it is not JSON).
pub struct Answer {
    pub status: StatusCode,
    pub headers: awc::http::header::HeaderMap,
    pub body: Value,
    pub bytes: Vec<u8>,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts a problem document with this status and code, and gives it back.
    pub fn problem(&self, status: u16, code: &str) -> &Value {
        assert_eq!(self.status.as_u16(), status, "{}", self.body);
        assert_eq!(
            self.header("content-type"),
            Some("application/problem+json"),
            "{}",
            self.body
        );
        assert_eq!(self.body["code"], code, "{}", self.body);
        assert_eq!(self.body["status"], status);
        assert_eq!(
            self.body["instance"].as_str(),
            self.header("x-request-id"),
            "the problem quotes the request id"
        );
        &self.body
    }
}

/// Starts the server on `db` with small limits, so that limits can be tested.
pub async fn spawn_app(db: Db) -> TestApp {
    spawn_app_with(db, |_| {}).await
}

/// Starts the server on `db` with the test settings changed by `adjust`.
pub async fn spawn_app_with(db: Db, adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut settings = Settings {
        listen: "127.0.0.1:0".into(),
        log: std::env::var("TEST_LOG").unwrap_or_else(|_| "off".into()),
        workers: 2,
        max_document_bytes: 1 << 20,
        max_json_bytes: 64 * 1024,
        import_wait_seconds: 20,
        shutdown_grace_seconds: 5,
        // Cases send requests as fast as they can; the limit cases set their own.
        rate_limit_per_second: 0.0,
        ..Settings::default()
    };
    let mut schema = None;
    match db {
        Db::Sqlite => {
            settings.database_url =
                format!("sqlite://{}", dir.path().join("intake.db").display()).into();
        }
        Db::Postgres => {
            let name = format!("intake_test_app_{}", uuid::Uuid::now_v7().simple());
            settings.database_url = postgres_url().into();
            settings.database_schema = Some(name.clone());
            schema = Some((postgres_url(), name));
        }
    }
    adjust(&mut settings);
    intake_app::telemetry::init(&settings).expect("telemetry");
    let app = Application::build(&settings).await.unwrap_or_else(|e| {
        panic!(
            "the server did not start on {db:?} ({}): {e:#}",
            settings.database_url
        )
    });
    let base = format!("http://127.0.0.1:{}", app.port());
    let handle = app.handle();
    let running = tokio::spawn(app.run_until_stopped());
    TestApp {
        base,
        client: awc::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .finish(),
        handle,
        running: std::sync::Mutex::new(Some(running)),
        schema,
        _dir: dir,
    }
}

impl TestApp {
    /// Stops the server gracefully and drops the database.
    pub async fn stop(self) {
        self.cleanup().await;
    }

    /// Stops the server and drops the database, leaving `self` to be dropped (a failed
    /// case calls it before panicking on).
    pub async fn cleanup(&self) {
        self.handle.stop(true).await;
        // The server has stopped; wait for the workers too, before the schema goes.
        let running = self.running.lock().expect("not poisoned").take();
        if let Some(running) = running {
            let _ = running.await;
        }
        if let Some((url, schema)) = self.schema.clone() {
            let store = intake_postgres::PgStore::connect(&intake_postgres::Settings {
                url,
                schema: Some(schema),
                ..intake_postgres::Settings::default()
            })
            .expect("connect");
            store.drop_schema().await.expect("schema dropped");
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn answer<S>(mut res: awc::ClientResponse<S>) -> Answer
    where
        S: futures_lite::Stream<Item = Result<actix_web::web::Bytes, awc::error::PayloadError>>
            + Unpin,
    {
        let bytes = res.body().limit(16 << 20).await.expect("a body").to_vec();
        Answer {
            status: res.status(),
            headers: res.headers().clone(),
            body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            bytes,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        let res = self.client.get(self.url(path)).send().await.expect("sent");
        Self::answer(res).await
    }

    pub async fn get_with(&self, path: &str, header: (&str, &str)) -> Answer {
        let req = self.client.get(self.url(path)).insert_header(header);
        Self::answer(req.send().await.expect("sent")).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        let res = self
            .client
            .delete(self.url(path))
            .send()
            .await
            .expect("sent");
        Self::answer(res).await
    }

    pub async fn patch_json(&self, path: &str, body: &Value) -> Answer {
        let res = self.client.patch(self.url(path)).send_json(body).await;
        Self::answer(res.expect("sent")).await
    }

    pub async fn post_json(&self, path: &str, body: &Value) -> Answer {
        let res = self.client.post(self.url(path)).send_json(body).await;
        Self::answer(res.expect("sent")).await
    }

    /// Posts raw bytes with a content type (none when `None`).
    pub async fn post_bytes(
        &self,
        path: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Answer {
        let mut req = self.client.post(self.url(path));
        if let Some(content_type) = content_type {
            req = req.insert_header(("content-type", content_type));
        }
        Self::answer(req.send_body(body).await.expect("sent")).await
    }

    /// Posts a document to a dataset and waits for its report.
    pub async fn import(&self, dataset: &str, content_type: &str, body: Vec<u8>) -> Answer {
        let path = format!("/v1/datasets/{dataset}/imports?wait=true");
        self.post_bytes(&path, Some(content_type), body).await
    }

    /// Creates a dataset from an example contract.
    pub async fn create_example(&self, dataset: &str, contract: &str) -> Answer {
        let contract: Value =
            serde_json::from_slice(&example("contracts", contract)).expect("json");
        let body = serde_json::json!({"name": dataset, "contract": contract});
        self.post_json("/v1/datasets", &body).await
    }
}

/// A file of `examples/`.
pub fn example(folder: &str, name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples")
        .join(folder)
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
