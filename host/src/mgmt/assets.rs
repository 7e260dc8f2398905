//! The console's own files (the single-page app), served from the binary or from a
//! directory, never from anywhere on the internet.
//!
//! Paths that name no file and have no extension get `index.html`, so the app's
//! client-side routes (`/devices`, `/pairing`) load on a reload or a bookmark.

use std::borrow::Cow;
use std::path::PathBuf;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};

use super::Mgmt;
use super::error::ApiError;
use crate::config::WebConfig;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/web_assets.rs"));
}

/// Where the packaged console lives on an installed system.
pub const SYSTEM_DIR: &str = "/usr/share/punktfunk/web";

/// Where the files come from.
#[derive(Debug, Clone)]
pub enum Assets {
    /// Built into the binary.
    Embedded,
    /// A directory holding `index.html` and `assets/`.
    Dir(PathBuf),
}

impl Assets {
    /// `[web] assets_dir`, else the system directory if it has a console, else the
    /// embedded files.
    pub fn from_config(web: &WebConfig) -> Self {
        if let Some(dir) = &web.assets_dir {
            return Self::Dir(dir.clone());
        }
        let system = PathBuf::from(SYSTEM_DIR);
        if system.join("index.html").is_file() {
            Self::Dir(system)
        } else {
            if !embedded::BUILT {
                tracing::warn!(
                    "this build has no web console (only a page saying how to build it)"
                );
            }
            Self::Embedded
        }
    }

    /// The file at `rel` (already checked by [`clean_path`]).
    async fn read(&self, rel: &str) -> Option<Cow<'static, [u8]>> {
        match self {
            Self::Embedded => embedded::FILES
                .iter()
                .find(|(p, _)| *p == rel)
                .map(|(_, bytes)| Cow::Borrowed(*bytes)),
            Self::Dir(dir) => tokio::fs::read(dir.join(rel)).await.ok().map(Cow::Owned),
        }
    }
}

/// The request path as a relative file path, or `None` if it tries to leave the web
/// root or is otherwise odd.
pub fn clean_path(path: &str) -> Option<String> {
    let rel = path.strip_prefix('/').unwrap_or(path);
    if rel.is_empty() {
        return Some("index.html".into());
    }
    let ok = rel.split('/').all(|seg| {
        !seg.is_empty()
            && seg != "."
            && seg != ".."
            && !seg.contains('\\')
            && !seg.contains('\0')
            && !seg.starts_with('.')
    });
    ok.then(|| rel.to_owned())
}

fn mime(rel: &str) -> &'static str {
    match rel.rsplit_once('.').map(|(_, ext)| ext) {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json" | "webmanifest") => "application/json",
        Some("woff2") => "font/woff2",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Serves the console's files; answers everything no API route took.
pub async fn serve(State(state): State<Arc<Mgmt>>, method: Method, uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::not_found(format!(
            "no API endpoint {method} {path}; the list is at /api/openapi.json"
        ))
        .into_response();
    }
    if method != Method::GET && method != Method::HEAD {
        return ApiError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "the console's pages only answer GET",
        )
        .into_response();
    }
    let Some(rel) = clean_path(path) else {
        return ApiError::not_found("no such page").into_response();
    };
    let (rel, bytes) = match state.assets.read(&rel).await {
        Some(b) => (rel, b),
        None if !rel.rsplit('/').next().unwrap_or("").contains('.') => {
            match state.assets.read("index.html").await {
                Some(b) => ("index.html".to_owned(), b),
                None => {
                    return ApiError::not_found("the console's files are missing").into_response();
                }
            }
        }
        None => return ApiError::not_found("no such file").into_response(),
    };
    // Vite puts content hashes in every file name under assets/.
    let cache = if rel.starts_with("assets/") {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let body = if method == Method::HEAD {
        Body::empty()
    } else {
        match bytes {
            Cow::Borrowed(b) => Body::from(b),
            Cow::Owned(v) => Body::from(v),
        }
    };
    let mut resp = Response::new(body);
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(&rel)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_cannot_leave_the_root() {
        assert_eq!(clean_path("/").as_deref(), Some("index.html"));
        assert_eq!(
            clean_path("/assets/index-abc.js").as_deref(),
            Some("assets/index-abc.js")
        );
        assert_eq!(clean_path("/devices").as_deref(), Some("devices"));
        for bad in [
            "/../etc/passwd",
            "/assets/../../x",
            "//x",
            "/a//b",
            "/.env",
            "/a\\b",
            "/x/./y",
        ] {
            assert_eq!(clean_path(bad), None, "{bad}");
        }
    }

    #[test]
    fn the_embedded_set_has_an_index() {
        assert!(embedded::FILES.iter().any(|(p, _)| *p == "index.html"));
        assert_eq!(mime("index.html"), "text/html; charset=utf-8");
        assert_eq!(mime("assets/a.js"), "text/javascript; charset=utf-8");
    }
}
