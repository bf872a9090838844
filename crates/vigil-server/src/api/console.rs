//! The web console, embedded at build time (see `build.rs`), served at `/`.

use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::ApiError;

include!(concat!(env!("OUT_DIR"), "/console_assets.rs"));

/// What `/` shows when the server was built without the console.
const NOT_BUILT: &str = "<!doctype html><title>Vigil</title><h1>Vigil</h1>\
<p>This server was built without its web console. Build it with <code>scripts/setup</code> \
(or <code>npm ci &amp;&amp; npm run build</code> in <code>console/</code>) and rebuild the server. \
The API is at <a href=\"/api/v1/health\">/api/v1</a>.</p>";

/// Content-Security-Policy of the console: its own scripts, styles and API only.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self' ws: wss:; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// Serves the console's files; anything under `/api/` that no route took is a JSON 404.
pub(super) async fn serve(uri: Uri) -> Response {
    let path = uri.path();
    if path.starts_with("/api/") || path == "/api" {
        return ApiError::not_found("no such route; the API lives under /api/v1").into_response();
    }
    let rel = match path.trim_start_matches('/') {
        "" => "index.html",
        other => other,
    };
    let Some((_, body, kind)) = ASSETS.iter().find(|(p, _, _)| *p == rel) else {
        if rel == "index.html" {
            return page(NOT_BUILT.as_bytes(), "text/html; charset=utf-8", false);
        }
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    page(body, kind, rel.starts_with("assets/"))
}

fn page(body: &'static [u8], kind: &'static str, immutable: bool) -> Response {
    let mut res = body.into_response();
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    h.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static(if immutable {
            "public, max-age=31536000, immutable"
        } else {
            "no-cache"
        }),
    );
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    res
}

/// Whether the console was built into this binary.
pub fn built() -> bool {
    ASSETS.iter().any(|(p, _, _)| *p == "index.html")
}
