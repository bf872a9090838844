//! `GET /api/v1/openapi.json`: the OpenAPI 3.1 document of this API, kept by hand beside the
//! route table; a test fails when the two disagree.

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

/// The document, as checked in.
pub const DOCUMENT: &str = include_str!("openapi.json");

pub(super) async fn document() -> Response {
    ([(CONTENT_TYPE, "application/json")], DOCUMENT).into_response()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::DOCUMENT;
    use crate::api::routes::{Access, routes};

    fn document() -> Value {
        serde_json::from_str(DOCUMENT).expect("openapi.json is JSON")
    }

    #[test]
    fn the_document_names_every_route_and_no_other() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let table: BTreeSet<(String, String)> = routes()
            .iter()
            .map(|r| (r.method.as_str().to_lowercase(), r.path.to_owned()))
            .collect();
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().expect("paths") {
            for (method, _) in item.as_object().expect("path item") {
                if method != "parameters" {
                    documented.insert((method.clone(), path.clone()));
                }
            }
        }
        let missing: Vec<_> = table.difference(&documented).collect();
        let extra: Vec<_> = documented.difference(&table).collect();
        assert!(
            missing.is_empty(),
            "routes missing from openapi.json: {missing:?}"
        );
        assert!(
            extra.is_empty(),
            "openapi.json names routes that do not exist: {extra:?}"
        );
    }

    #[test]
    fn every_operation_says_how_it_authenticates_and_fails() {
        let doc = document();
        for r in routes() {
            let op = &doc["paths"][r.path][r.method.as_str().to_lowercase()];
            let what = format!("{} {}", r.method, r.path);
            assert!(op["operationId"].is_string(), "{what}: operationId");
            assert!(op["responses"].is_object(), "{what}: responses");
            let security = op["security"].as_array();
            match r.access {
                Access::Public => assert_eq!(
                    security.map(Vec::len),
                    Some(0),
                    "{what} is public: security must be []"
                ),
                Access::Sensor => {
                    let s = security.expect("security");
                    assert!(s.iter().any(|x| x.get("sensorToken").is_some()), "{what}");
                }
                Access::Role(_) | Access::Live => {
                    assert!(
                        security.is_none(),
                        "{what}: operator routes use the default security"
                    );
                    assert!(op["responses"]["401"].is_object(), "{what}: 401");
                    assert!(op["responses"]["403"].is_object(), "{what}: 403");
                    let role = r.access.role().map(|x| x.as_str());
                    assert_eq!(
                        op["x-vigil-role"].as_str(),
                        role,
                        "{what}: x-vigil-role must name the route table's role"
                    );
                }
            }
            // Every path parameter is declared.
            for segment in r.path.split('/') {
                if let Some(name) = segment.strip_prefix('{').and_then(|s| s.strip_suffix('}')) {
                    let declared = op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .chain(
                            doc["paths"][r.path]["parameters"]
                                .as_array()
                                .into_iter()
                                .flatten(),
                        )
                        .any(|p| p["in"] == "path" && p["name"] == name);
                    assert!(declared, "{what}: path parameter {name} undeclared");
                }
            }
        }
        let schemes = &doc["components"]["securitySchemes"];
        assert!(schemes["bearerToken"].is_object());
        assert!(schemes["sessionCookie"].is_object());
        assert!(doc["components"]["schemas"]["Error"].is_object());
    }
}
