//! Rebuilds the crate when a migration is added: `sqlx::migrate!` embeds the
//! directory's files at build time but cannot watch the directory itself.

fn main() {
    println!("cargo:rerun-if-changed=../../migrations/sqlite");
}
