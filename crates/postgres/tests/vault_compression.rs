//! The raw vault compresses with lz4 where the server has it (migration 0010): a
//! stored document's chunks say `lz4`, and the document reads back byte for byte.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests")]

#[path = "support/schema.rs"]
mod support;

use intake_domain::ports::ImportVault;
use support::{dataset, fresh, guarded, receive_all, service, url};

#[tokio::test]
async fn vault_chunks_are_compressed_with_lz4_and_read_back_whole() {
    let t = fresh().await;
    let store = t.store.clone();
    let schema = t.schema.clone();
    guarded(vec![t], async move {
        let options: sqlx::postgres::PgConnectOptions = url().parse().unwrap();
        let options = options.options([("search_path", schema.as_str())]);
        let mut conn = sqlx::ConnectOptions::connect(&options).await.unwrap();
        let has_lz4 = sqlx::query("CREATE TEMP TABLE probe (b bytea COMPRESSION lz4)")
            .execute(&mut conn)
            .await
            .is_ok();

        // About 1 MB of CSV: four chunks, each large and repetitive enough to compress.
        let document = support::csv("key-", 40_000);
        let service = service(&store, std::time::Duration::from_secs(30));
        receive_all(&store, &service, vec![document.clone()]).await;

        let methods: Vec<Option<String>> =
            sqlx::query_scalar("SELECT pg_column_compression(bytes) FROM vault_chunks ORDER BY n")
                .fetch_all(&mut conn)
                .await
                .unwrap();
        assert!(methods.len() > 1, "expected several chunks: {methods:?}");
        let expected = if has_lz4 { "lz4" } else { "pglz" };
        assert!(
            methods.iter().all(|m| m.as_deref() == Some(expected)),
            "chunks compressed as {methods:?}, expected {expected}"
        );

        let import = store.list(&dataset(), 1, 0).await.unwrap().remove(0);
        let mut reader = store.open(&import.id).await.unwrap();
        let mut back = Vec::new();
        while let Some(chunk) = reader.next_chunk().await.unwrap() {
            back.extend_from_slice(&chunk);
        }
        assert!(back == document, "the document read back differs");
    })
    .await;
}
