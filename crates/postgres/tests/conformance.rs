//! The storage and ingestion conformance suites of `intake-domain`, on the PostgreSQL
//! server of this machine: each case in its own schema, dropped afterwards. The server
//! is required: an unreachable one fails every case (`INTAKE_TEST_DATABASE_URL`
//! overrides the default URL).
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/schema.rs"]
mod support;

intake_domain::storage_conformance!(support::fresh());
