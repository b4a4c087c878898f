//! Limits per route class over HTTP: URL and headers (`400` naming which), JSON bodies
//! and documents (`413`, each with its own configurable size), path parameters (`400`
//! naming the parameter).

use super::support::{Db, spawn_app_with};

pub async fn oversized_or_malformed_requests_are_refused_by_route_class(db: Db) {
    let app = spawn_app_with(db, |s| {
        s.max_url_bytes = 512;
        s.max_header_bytes = 2048;
        s.max_json_bytes = 4096;
        s.max_document_bytes = 64 * 1024;
    })
    .await;
    super::run(&app, async {
        let long = format!("/v1/datasets?note={}", "x".repeat(600));
        let problem = app.get(&long).await.problem(400, "bad_request").clone();
        assert_eq!(problem["errors"][0]["field"], "url", "{problem}");
        let big = "y".repeat(3000);
        let answer = app
            .get_with("/v1/datasets", ("x-padding", big.as_str()))
            .await;
        let problem = answer.problem(400, "bad_request");
        assert_eq!(problem["errors"][0]["field"], "headers", "{problem}");

        // JSON bodies are small, documents large: each class has its own limit.
        let contract = serde_json::json!({"description": "z".repeat(5000)});
        let body = serde_json::json!({"name": "big", "contract": contract});
        app.post_json("/v1/datasets", &body)
            .await
            .problem(413, "payload_too_large");
        assert_eq!(
            app.create_example("customers", "customers.json")
                .await
                .status,
            201
        );
        let small_document = "id,first_name,last_name,email,phone\nc-1,A,B,a@b.c,\n";
        let imported = app
            .import("customers", "text/csv", small_document.as_bytes().to_vec())
            .await;
        assert_eq!(
            imported.status, 200,
            "a document larger than a JSON body is fine"
        );
        let mut large = String::from("id,first_name,last_name,email,phone\n");
        while large.len() <= 64 * 1024 {
            large.push_str("c-2,Ada,Lovelace,ada@example.com,+44 20 7946 0001\n");
        }
        app.import("customers", "text/csv", large.into_bytes())
            .await
            .problem(413, "payload_too_large");

        // Path parameters are checked before anything is looked up.
        for (path, field) in [
            ("/v1/datasets/Bad!Name", "dataset"),
            ("/v1/datasets/customers/contracts/0", "version"),
            ("/v1/datasets/customers/imports/bad!id", "import"),
        ] {
            let answer = app.get(path).await;
            let problem = answer.problem(400, "bad_request");
            assert_eq!(problem["errors"][0]["field"], field, "{path}: {problem}");
        }
    })
    .await;
    app.stop().await;
}
