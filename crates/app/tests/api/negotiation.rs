//! Content negotiation over HTTP (DESIGN §11): the same answers as XML when `Accept`
//! prefers it, problem documents included, and `406` when it accepts neither.

use super::support::{Db, example, spawn_app_with};

pub async fn answers_are_json_or_xml_by_accept_and_406_otherwise(db: Db) {
    let app = spawn_app_with(db, |_| {}).await;
    super::run(&app, async {
        assert_eq!(
            app.create_example("exam-results", "exam-results.json")
                .await
                .status,
            201
        );
        let imported = app
            .import(
                "exam-results",
                "text/xml+markr",
                example("data", "markr-sample-results.xml"),
            )
            .await;
        assert_eq!(imported.status, 200, "{}", imported.body);

        let path = "/v1/datasets/exam-results/aggregate?measure=percent&group_by=test_id";
        let json = app.get(path).await;
        assert_eq!(json.header("content-type"), Some("application/json"));
        let xml = app.get_with(path, ("accept", "application/xml")).await;
        assert_eq!(xml.status, 200);
        assert_eq!(xml.header("content-type"), Some("application/xml"));
        assert!(xml.header("vary").is_some_and(|v| v.contains("accept")));
        let text = String::from_utf8(xml.bytes.clone()).unwrap();
        assert!(
            text.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<response>"),
            "{text}"
        );
        for part in [
            "<dataset>exam-results</dataset>",
            "<groups><item>",
            "<count>81</count>",
            "<group>9863</group>",
            "<filters></filters>",
        ] {
            assert!(text.contains(part), "{part} in {text}");
        }
        let weighted = app
            .get_with(
                path,
                ("accept", "application/xml;q=0.4, application/json;q=0.9"),
            )
            .await;
        assert_eq!(weighted.header("content-type"), Some("application/json"));

        let missing = app
            .get_with("/v1/datasets/nope", ("accept", "text/xml"))
            .await;
        assert_eq!(missing.status, 404);
        assert_eq!(
            missing.header("content-type"),
            Some("application/problem+xml")
        );
        let text = String::from_utf8(missing.bytes.clone()).unwrap();
        assert!(
            text.contains("<problem xmlns=\"urn:ietf:rfc:7807\">"),
            "{text}"
        );
        assert!(text.contains("<code>not_found</code>"), "{text}");
        let id = missing.header("x-request-id").unwrap();
        assert!(
            text.contains(&format!("<instance>{id}</instance>")),
            "{text}"
        );

        let refused = app.get_with(path, ("accept", "image/png")).await;
        let problem = refused.problem(406, "not_acceptable");
        assert!(
            problem["detail"].as_str().unwrap().contains("image/png"),
            "{problem}"
        );
        // The documents have one type of their own and are never refused.
        let spec = app
            .get_with("/openapi/v1.json", ("accept", "image/png"))
            .await;
        assert_eq!(spec.status, 200);
    })
    .await;
    app.stop().await;
}
