//! The yardstick of DESIGN §16's request-rate bars: an actix-web server with one empty
//! handler and nothing else, on the same runtime settings as `intake serve`. Benchmarks
//! run it beside the real server and divide.
//!
//! ```text
//! cargo run --release -p intake-actix-web-api --example empty_handler -- 127.0.0.1:18200
//! ```

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:18200".into());
    HttpServer::new(|| App::new().route("/", web::get().to(HttpResponse::Ok)))
        .bind(addr)?
        .run()
        .await
}
