//! Apps: create, read, update, delete, and box art upload.
//!
//! The console lists the whole catalog (built-in Desktop, config-file apps, added
//! apps) but changes only the added ones; the others answer 409 saying where they come
//! from.

use std::io::Cursor;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::Mgmt;
use super::auth::AdminSession;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use crate::catalog::{AppSource, CatalogApp};
use crate::store::{AppUpdate, NewApp};

/// Largest box art upload, bytes.
pub const MAX_BOX_ART: usize = 4 * 1024 * 1024;
/// Largest box art width or height, pixels.
const MAX_ART_SIDE: u32 = 4096;
const MAX_TITLE: usize = 100;
const MAX_COMMAND: usize = 4096;

/// An app as the console shows it.
#[derive(Debug, Serialize, ToSchema)]
pub struct AppView {
    /// The id clients use.
    pub id: u32,
    /// The title clients show.
    pub title: String,
    /// What it runs, if anything.
    pub command: Option<String>,
    /// "built_in", "config" (from the config file) or "added" (here or with the CLI).
    pub source: String,
    /// Whether the console can change or delete it.
    pub editable: bool,
    /// Whether it has uploaded box art (else a generated poster is used).
    pub custom_box_art: bool,
}

/// `POST /api/v1/apps` body.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAppRequest {
    /// The title clients show.
    #[schema(min_length = 1, max_length = 100)]
    pub title: String,
    /// The command that starts it; empty or absent streams without launching anything.
    #[serde(default)]
    pub command: Option<String>,
}

/// `PATCH /api/v1/apps/{id}` body; absent fields stay as they are.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AppChange {
    /// A new title.
    #[serde(default)]
    pub title: Option<String>,
    /// A new command; an empty string clears it.
    #[serde(default)]
    pub command: Option<String>,
}

fn source_name(s: AppSource) -> &'static str {
    match s {
        AppSource::BuiltIn => "built_in",
        AppSource::Config => "config",
        AppSource::Store => "added",
    }
}

async fn view(state: &Mgmt, app: CatalogApp) -> ApiResult<AppView> {
    let custom_box_art = if app.source == AppSource::Store {
        state
            .host
            .store
            .app(i64::from(app.id))
            .await?
            .is_some_and(|a| a.box_art.is_some())
    } else {
        false
    };
    Ok(AppView {
        id: app.id,
        title: app.title,
        command: app.command,
        source: source_name(app.source).into(),
        editable: app.source == AppSource::Store,
        custom_box_art,
    })
}

fn no_app(id: i64) -> ApiError {
    ApiError::not_found(format!("no app has id {id}; reload the app list"))
}

/// The catalog app `id`, if it exists and may be edited here.
async fn editable(state: &Mgmt, id: i64) -> ApiResult<CatalogApp> {
    let id32 = u32::try_from(id).map_err(|_| no_app(id))?;
    let app = state
        .host
        .catalog
        .get(id32)
        .await?
        .ok_or_else(|| no_app(id))?;
    match app.source {
        AppSource::Store => Ok(app),
        AppSource::BuiltIn => Err(ApiError::conflict(format!(
            "\"{}\" is built in and cannot be changed",
            app.title
        ))),
        AppSource::Config => Err(ApiError::conflict(format!(
            "\"{}\" comes from the config file (/etc/punktfunk/host.toml): change it there",
            app.title
        ))),
    }
}

async fn check_title(state: &Mgmt, title: &str, except: Option<u32>) -> ApiResult<()> {
    if title.is_empty() || title.chars().count() > MAX_TITLE || title.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "an app title is 1 to {MAX_TITLE} characters (no control characters)"
        )));
    }
    let clash = state
        .host
        .catalog
        .list()
        .await?
        .into_iter()
        .find(|a| a.title.eq_ignore_ascii_case(title) && Some(a.id) != except);
    if let Some(a) = clash {
        return Err(ApiError::conflict(format!(
            "an app titled \"{}\" already exists: choose another title",
            a.title
        )));
    }
    Ok(())
}

fn check_command(command: Option<String>) -> ApiResult<Option<String>> {
    let command = command
        .map(|c| c.trim().to_owned())
        .filter(|c| !c.is_empty());
    if command
        .as_ref()
        .is_some_and(|c| c.len() > MAX_COMMAND || c.chars().any(char::is_control))
    {
        return Err(ApiError::invalid(format!(
            "a command is at most {MAX_COMMAND} bytes, on one line (no control characters)"
        )));
    }
    Ok(command)
}

/// Every app clients see.
#[utoipa::path(
    get, path = "/api/v1/apps", tag = "apps",
    operation_id = "apps_list",
    security(("session_cookie" = [])),
    responses(
        (status = 200, description = "Apps", body = [AppView]),
        (status = 401, description = "Not logged in", body = ErrorBody),
    )
)]
pub async fn list(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
) -> ApiResult<Json<Vec<AppView>>> {
    let mut out = Vec::new();
    for app in state.host.catalog.list().await? {
        out.push(view(&state, app).await?);
    }
    Ok(Json(out))
}

/// Add an app.
#[utoipa::path(
    post, path = "/api/v1/apps", tag = "apps",
    operation_id = "apps_create",
    security(("session_cookie" = [], "csrf_token" = [])),
    request_body = NewAppRequest,
    responses(
        (status = 201, description = "Added", body = AppView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 409, description = "The title is taken", body = ErrorBody),
        (status = 422, description = "Bad title or command", body = ErrorBody),
    )
)]
pub async fn create(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiJson(body): ApiJson<NewAppRequest>,
) -> ApiResult<(StatusCode, Json<AppView>)> {
    let title = body.title.trim().to_owned();
    check_title(&state, &title, None).await?;
    let command = check_command(body.command)?;
    let app = state
        .host
        .store
        .create_app(NewApp {
            title,
            command,
            box_art: None,
        })
        .await?;
    tracing::info!(id = app.id, title = %app.title, "added an app");
    let id = u32::try_from(app.id).map_err(ApiError::internal)?;
    let app = state
        .host
        .catalog
        .get(id)
        .await?
        .ok_or_else(|| ApiError::internal("a created app is missing from the catalog"))?;
    Ok((StatusCode::CREATED, Json(view(&state, app).await?)))
}

/// One app.
#[utoipa::path(
    get, path = "/api/v1/apps/{id}", tag = "apps",
    operation_id = "apps_get",
    security(("session_cookie" = [])),
    params(("id" = i64, Path, description = "App id")),
    responses(
        (status = 200, description = "The app", body = AppView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn get(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Json<AppView>> {
    let id32 = u32::try_from(id).map_err(|_| no_app(id))?;
    let app = state
        .host
        .catalog
        .get(id32)
        .await?
        .ok_or_else(|| no_app(id))?;
    Ok(Json(view(&state, app).await?))
}

/// Change an added app's title or command.
#[utoipa::path(
    patch, path = "/api/v1/apps/{id}", tag = "apps",
    operation_id = "apps_update",
    security(("session_cookie" = [], "csrf_token" = [])),
    params(("id" = i64, Path, description = "App id")),
    request_body = AppChange,
    responses(
        (status = 200, description = "Changed", body = AppView),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "Built in, from the config file, or the title is taken", body = ErrorBody),
        (status = 422, description = "Bad title or command", body = ErrorBody),
    )
)]
pub async fn update(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
    ApiJson(body): ApiJson<AppChange>,
) -> ApiResult<Json<AppView>> {
    let app = editable(&state, id).await?;
    let title = match body.title {
        Some(t) => {
            let t = t.trim().to_owned();
            check_title(&state, &t, Some(app.id)).await?;
            Some(t)
        }
        None => None,
    };
    let command = match body.command {
        Some(c) => Some(check_command(Some(c))?),
        None => None,
    };
    state
        .host
        .store
        .update_app(
            id,
            AppUpdate {
                title,
                command,
                box_art: None,
            },
        )
        .await?
        .ok_or_else(|| no_app(id))?;
    let app = state
        .host
        .catalog
        .get(app.id)
        .await?
        .ok_or_else(|| no_app(id))?;
    Ok(Json(view(&state, app).await?))
}

/// Delete an added app. Its id is never reused.
#[utoipa::path(
    delete, path = "/api/v1/apps/{id}", tag = "apps",
    operation_id = "apps_delete",
    security(("session_cookie" = [], "csrf_token" = [])),
    params(("id" = i64, Path, description = "App id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "Built in or from the config file", body = ErrorBody),
    )
)]
pub async fn delete(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    let app = editable(&state, id).await?;
    if !state.host.store.delete_app(id).await? {
        return Err(no_app(id));
    }
    tracing::info!(id, title = %app.title, "deleted an app");
    Ok(StatusCode::NO_CONTENT)
}

/// The app's box art (uploaded, from the config file, or generated), as PNG.
#[utoipa::path(
    get, path = "/api/v1/apps/{id}/box-art", tag = "apps",
    operation_id = "apps_get_box_art",
    security(("session_cookie" = [])),
    params(("id" = i64, Path, description = "App id")),
    responses(
        (status = 200, description = "PNG image", content_type = "image/png", body = Vec<u8>),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
    )
)]
pub async fn get_box_art(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<Response> {
    let id32 = u32::try_from(id).map_err(|_| no_app(id))?;
    let png = state
        .host
        .catalog
        .box_art(id32)
        .await?
        .ok_or_else(|| no_app(id))?;
    let mut resp = png.into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("image/png"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(resp)
}

/// Checks that `bytes` is a PNG of a sensible size; the error says what is wrong.
pub fn check_png(bytes: &[u8]) -> ApiResult<(u32, u32)> {
    let not_png = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "box art must be a PNG image (Moonlight shows PNG); convert it and upload again",
        )
    };
    let decoder = png::Decoder::new(Cursor::new(bytes));
    let reader = decoder.read_info().map_err(|_| not_png())?;
    let info = reader.info();
    let (w, h) = (info.width, info.height);
    if w == 0 || h == 0 || w > MAX_ART_SIDE || h > MAX_ART_SIDE {
        return Err(ApiError::invalid(format!(
            "box art can be at most {MAX_ART_SIDE}x{MAX_ART_SIDE} pixels (this one is {w}x{h}); \
             600x800 is plenty"
        )));
    }
    Ok((w, h))
}

/// Upload box art (a PNG, at most 4 MiB) for an added app.
#[utoipa::path(
    put, path = "/api/v1/apps/{id}/box-art", tag = "apps",
    operation_id = "apps_put_box_art",
    security(("session_cookie" = [], "csrf_token" = [])),
    params(("id" = i64, Path, description = "App id")),
    request_body(content = Vec<u8>, content_type = "image/png", description = "PNG image"),
    responses(
        (status = 204, description = "Stored"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "Built in or from the config file", body = ErrorBody),
        (status = 413, description = "Larger than 4 MiB"),
        (status = 415, description = "Not sent as image/png", body = ErrorBody),
        (status = 422, description = "Not a PNG, or too large in pixels", body = ErrorBody),
    )
)]
pub async fn put_box_art(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<StatusCode> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !content_type.trim().eq_ignore_ascii_case("image/png") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the image as the request body with Content-Type: image/png",
        ));
    }
    editable(&state, id).await?;
    let (w, h) = check_png(&body)?;
    state
        .host
        .store
        .update_app(
            id,
            AppUpdate {
                box_art: Some(Some(body.to_vec())),
                ..AppUpdate::default()
            },
        )
        .await?
        .ok_or_else(|| no_app(id))?;
    tracing::info!(id, width = w, height = h, "box art uploaded");
    Ok(StatusCode::NO_CONTENT)
}

/// Remove uploaded box art (the generated poster is used again).
#[utoipa::path(
    delete, path = "/api/v1/apps/{id}/box-art", tag = "apps",
    operation_id = "apps_delete_box_art",
    security(("session_cookie" = [], "csrf_token" = [])),
    params(("id" = i64, Path, description = "App id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 401, description = "Not logged in", body = ErrorBody),
        (status = 403, description = "Missing CSRF token", body = ErrorBody),
        (status = 404, description = "No such app", body = ErrorBody),
        (status = 409, description = "Built in or from the config file", body = ErrorBody),
    )
)]
pub async fn delete_box_art(
    State(state): State<Arc<Mgmt>>,
    _: AdminSession,
    ApiPath(id): ApiPath<i64>,
) -> ApiResult<StatusCode> {
    editable(&state, id).await?;
    state
        .host
        .store
        .update_app(
            id,
            AppUpdate {
                box_art: Some(None),
                ..AppUpdate::default()
            },
        )
        .await?
        .ok_or_else(|| no_app(id))?;
    Ok(StatusCode::NO_CONTENT)
}
