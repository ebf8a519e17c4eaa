//! The admin HTTP API and `/metrics` (axum). The only module that knows HTTP: handlers translate requests into calls on
//! [`Service`] and its results and errors into status codes and JSON.
//!
//! Reads are open (the API listens on loopback by default); every mutating endpoint requires
//! `Authorization: Bearer <token>` with the configured token, and is refused when no token is configured. Every error
//! is JSON: `{"status": 404, "error": "no dataset \"x\" in the running config"}`.

pub mod client;

use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::json;

use crate::pass::hold::Selector;
use crate::service::plugins::RollbackError;
use crate::service::shadows::ShadowError;
use crate::service::{Service, TriggerError};
use crate::state::AuditFilter;

/// Largest page of the pass history.
pub const MAX_PAGE: u32 = 1_000;
const DEFAULT_PAGE: u32 = 50;

/// An error answer: a status code and a message.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError(status, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({ "status": self.0.as_u16(), "error": self.1 }));
        let mut r = (self.0, body).into_response();
        if self.0 == StatusCode::UNAUTHORIZED {
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        r
    }
}

impl From<crate::state::StateError> for ApiError {
    fn from(e: crate::state::StateError) -> Self {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

/// A page size from a query: the default when absent, refused outside 1 to [`MAX_PAGE`].
fn page_limit(limit: Option<u32>) -> Result<u32, ApiError> {
    let limit = limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("limit must be between 1 and {MAX_PAGE}, got {limit}"),
        ));
    }
    Ok(limit)
}

fn bad_query(e: QueryRejection) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, e.body_text())
}

/// The API's routes over a service.
pub fn router(service: Arc<Service>) -> Router {
    let admin = Router::new()
        .route("/v1/plugins/reload", post(reload_plugins))
        .route("/v1/plugins/{name}/rollback", post(rollback_plugin))
        .route("/v1/datasets/{name}/passes", post(trigger_pass))
        .route("/v1/config/reload", post(reload_config))
        .route("/v1/holds", post(add_hold))
        .route("/v1/holds/{id}/lift", post(lift_hold))
        .route("/v1/datasets/{name}/trash/restore", post(restore_trash))
        .route("/v1/datasets/{name}/shadow", post(set_shadow))
        .route("/v1/datasets/{name}/shadow/promote", post(promote_shadow))
        .route("/v1/datasets/{name}/shadow/discard", post(discard_shadow))
        .route_layer(middleware::from_fn_with_state(service.clone(), require_token));
    Router::new()
        .route("/healthz", get(health))
        .route("/v1/service", get(service_info))
        .route("/readyz", get(ready))
        .route("/metrics", get(metrics))
        .route("/v1/plugins", get(list_plugins))
        .route("/v1/plugins/{name}", get(get_plugin))
        .route("/v1/datasets", get(list_datasets))
        .route("/v1/datasets/{name}", get(get_dataset))
        .route("/v1/passes", get(list_passes))
        .route("/v1/passes/{id}", get(get_pass))
        .route("/v1/holds", get(list_holds))
        .route("/v1/datasets/{name}/trash", get(list_trash))
        .route("/v1/datasets/{name}/shadow", get(get_shadow))
        .route("/v1/audit", get(audit))
        .route("/v1/audit/export", get(audit_export))
        .merge(admin)
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed on this endpoint")
        })
        .with_state(service)
}

/// Serves the API on `listener` until `shutdown` completes (the caller passes the service's shutdown), then lets the
/// requests in flight finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    service: Arc<Service>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(service))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Compares without an early exit, so response time does not reveal how much of a guessed token was right.
fn same_token(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(State(service): State<Arc<Service>>, req: Request, next: Next) -> Response {
    let Some(expected) = service.config().service.api_token.clone() else {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "mutating endpoints are disabled: no API token is configured (set RETENTION_API_TOKEN or service.api_token)",
        )
        .into_response();
    };
    let given = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        None => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "missing bearer token (Authorization: Bearer <token>)",
        )
        .into_response(),
        Some(t) if same_token(t.trim(), &expected) => next.run(req).await,
        Some(_) => ApiError::new(StatusCode::UNAUTHORIZED, "wrong bearer token").into_response(),
    }
}

async fn health() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

/// Where the API listens and what an operator should know about it.
async fn service_info(State(service): State<Arc<Service>>) -> Response {
    let config = service.config();
    let s = &config.service;
    Json(json!({
        "service": {
            "version": env!("CARGO_PKG_VERSION"),
            "listen": s.listen.to_string(),
            "reachable_off_machine": !s.listen.ip().is_loopback(),
            "api_token": s.api_token.is_some(),
            "state_dir": s.state_dir.display().to_string(),
            "warnings": crate::service::exposure_warnings(s),
        }
    }))
    .into_response()
}

async fn ready(State(service): State<Arc<Service>>) -> Response {
    if service.is_ready() {
        Json(json!({ "ready": true })).into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, Json(json!({ "ready": false }))).into_response()
    }
}

async fn metrics(State(service): State<Arc<Service>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        service.metrics.render(),
    )
        .into_response()
}

async fn list_plugins(State(service): State<Arc<Service>>) -> Response {
    Json(json!({ "plugins": service.plugins.list() })).into_response()
}

async fn get_plugin(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let status = service
        .plugins
        .status(&name)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no plugin {name:?}")))?;
    let events = service.state.plugin_events(Some(&name), 50)?;
    Ok(Json(json!({ "plugin": status, "events": events })).into_response())
}

async fn reload_plugins(State(service): State<Arc<Service>>) -> Response {
    service.plugins.scan().await;
    Json(json!({ "plugins": service.plugins.list() })).into_response()
}

async fn rollback_plugin(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    match service.plugins.rollback(&name).await {
        Ok(status) => Ok(Json(json!({ "plugin": status })).into_response()),
        Err(e @ RollbackError::Unknown(_)) => Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ (RollbackError::NoPrevious(_) | RollbackError::Removed(_))) => {
            Err(ApiError::new(StatusCode::CONFLICT, e.to_string()))
        }
    }
}

async fn list_datasets(State(service): State<Arc<Service>>) -> Response {
    Json(json!({ "datasets": service.datasets() })).into_response()
}

async fn get_dataset(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let ds = service.dataset(&name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no dataset {name:?} in the running config"),
        )
    })?;
    Ok(Json(json!({ "dataset": ds })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerQuery {
    /// Plan and report without touching data.
    #[serde(default)]
    dry_run: bool,
    /// Let the pass past the fraction guards (never past holds or the other guards).
    #[serde(default)]
    force: bool,
}

async fn trigger_pass(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    query: Result<Query<TriggerQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    match service.trigger(&name, q.dry_run, q.force).await {
        Ok(report) => Ok(Json(report).into_response()),
        Err(e @ TriggerError::UnknownDataset(_)) => Err(ApiError::new(StatusCode::NOT_FOUND, e.to_string())),
        Err(e @ TriggerError::Busy(_)) => Err(ApiError::new(StatusCode::CONFLICT, e.to_string())),
        Err(e @ TriggerError::ShuttingDown) => Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())),
    }
}

async fn reload_config(State(service): State<Arc<Service>>) -> Result<Response, ApiError> {
    match service.reload_config().await {
        Ok(r) => Ok(Json(json!({ "reloaded": r })).into_response()),
        Err(e) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("config reload refused, the running config stays: {e}"),
        )),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PassesQuery {
    /// Only this dataset's passes.
    dataset: Option<String>,
    /// Page size, 1 to 1000 (default 50).
    limit: Option<u32>,
    /// Paging cursor: passes older than this pass id (the `next` of the previous page).
    before: Option<String>,
}

async fn list_passes(
    State(service): State<Arc<Service>>,
    query: Result<Query<PassesQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = page_limit(q.limit)?;
    if let Some(b) = &q.before
        && !service.state.has_pass(b)?
    {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("before: no pass {b:?} in the history"),
        ));
    }
    let passes = service.state.passes(q.dataset.as_deref(), q.before.as_deref(), limit)?;
    let next = (passes.len() == limit as usize)
        .then(|| passes.last().map(|p| p.pass_id.clone()))
        .flatten();
    Ok(Json(json!({ "passes": passes, "next": next })).into_response())
}

async fn get_pass(State(service): State<Arc<Service>>, Path(id): Path<String>) -> Result<Response, ApiError> {
    let json = service
        .state
        .pass_report(&id)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no pass {id:?} in the history")))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], json).into_response())
}

/// A JSON body, with serde's message on a bad one.
fn body<T>(b: Result<Json<T>, axum::extract::rejection::JsonRejection>) -> Result<T, ApiError> {
    b.map(|Json(v)| v)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e.body_text()))
}

/// `POST /v1/holds` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewHold {
    dataset: String,
    /// `{"label": {"key": "service", "value": "billing"}}` or `{"name_prefix": "billing/"}`.
    selector: Selector,
    reason: String,
    author: String,
}

fn check_text(field: &str, v: &str) -> Result<(), ApiError> {
    if v.trim().is_empty() || v.len() > 1_000 || v.chars().any(char::is_control) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("{field} must be 1 to 1000 printable characters, got {v:?}"),
        ));
    }
    Ok(())
}

async fn add_hold(
    State(service): State<Arc<Service>>,
    b: Result<Json<NewHold>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let h = body(b)?;
    if service.dataset(&h.dataset).is_none() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("dataset: no dataset {:?} in the running config", h.dataset),
        ));
    }
    check_text("reason", &h.reason)?;
    check_text("author", &h.author)?;
    match &h.selector {
        Selector::Label { key, value } => {
            check_text("selector.label.key", key)?;
            check_text("selector.label.value", value)?;
            // A key the dataset's segments can never have (a typo) would select nothing, ever, in silence.
            let keys = service.label_keys(&h.dataset).unwrap_or_default();
            if !keys.iter().any(|k| k == key) {
                let has = if keys.is_empty() {
                    "has no labels (its store config has no labels regex): select by name_prefix instead".to_string()
                } else {
                    format!(
                        "has the labels {} (the named captures of its labels regex)",
                        keys.join(", ")
                    )
                };
                return Err(ApiError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "selector.label.key: no segment of dataset {:?} can have a label {key:?}, so the hold would \
                         select nothing; the dataset {has}",
                        h.dataset
                    ),
                ));
            }
        }
        Selector::NamePrefix(p) => check_text("selector.name_prefix", p)?,
    }
    let hold = service.state.add_hold(&h.dataset, &h.selector, &h.reason, &h.author)?;
    tracing::info!(hold = hold.id, dataset = %hold.dataset, author = %hold.author, "legal hold set");
    // The hold is in force whatever comes next; what it selects today is told, not required (a hold on data not
    // written yet is legitimate).
    let selects = match service.hold_reach(&h.dataset, &h.selector).await {
        Ok((segments, trash)) => json!({ "segments": segments, "trash_entries": trash }),
        Err(e) => json!({ "error": format!("cannot tell what it selects now: {e}") }),
    };
    Ok((StatusCode::CREATED, Json(json!({ "hold": hold, "selects": selects }))).into_response())
}

/// `POST /v1/holds/{id}/lift` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Lift {
    author: String,
}

async fn lift_hold(
    State(service): State<Arc<Service>>,
    Path(id): Path<i64>,
    b: Result<Json<Lift>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let l = body(b)?;
    check_text("author", &l.author)?;
    let hold = service
        .state
        .lift_hold(id, &l.author)?
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("no hold {id}")))?;
    tracing::info!(hold = id, author = %l.author, "legal hold lifted");
    Ok(Json(json!({ "hold": hold })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HoldsQuery {
    dataset: Option<String>,
    /// Also lifted holds.
    #[serde(default)]
    all: bool,
}

async fn list_holds(
    State(service): State<Arc<Service>>,
    query: Result<Query<HoldsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let holds = service.state.holds(q.dataset.as_deref(), q.all)?;
    Ok(Json(json!({ "holds": holds })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AuditQuery {
    dataset: Option<String>,
    segment: Option<String>,
    action: Option<String>,
    outcome: Option<String>,
    pass_id: Option<String>,
    limit: Option<u32>,
    /// Paging cursor: records older than this `seq` (the `next` of the previous page).
    before: Option<i64>,
}

impl AuditQuery {
    fn filter(&self) -> AuditFilter {
        AuditFilter {
            dataset: self.dataset.clone(),
            segment: self.segment.clone(),
            action: self.action.clone(),
            outcome: self.outcome.clone(),
            pass_id: self.pass_id.clone(),
        }
    }
}

async fn audit(
    State(service): State<Arc<Service>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    let limit = page_limit(q.limit)?;
    let records = service.state.audit(&q.filter(), q.before, limit)?;
    let next = (records.len() == limit as usize)
        .then(|| records.last().map(|r| r.seq))
        .flatten();
    Ok(Json(json!({ "records": records, "next": next })).into_response())
}

/// The whole (filtered) audit trail as JSON lines, oldest first, streamed page by page.
async fn audit_export(
    State(service): State<Arc<Service>>,
    query: Result<Query<AuditQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(q) = query.map_err(bad_query)?;
    if q.limit.is_some() || q.before.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "export takes filters only, not limit or before",
        ));
    }
    let filter = q.filter();
    let state = service.state.clone();
    let pages = futures::stream::unfold(Some(0i64), move |cursor| {
        let state = state.clone();
        let filter = filter.clone();
        async move {
            let after = cursor?;
            let page = tokio::task::spawn_blocking(move || state.audit_after(&filter, after, 5_000)).await;
            match page {
                Ok(Ok(records)) if records.is_empty() => None,
                Ok(Ok(records)) => {
                    let next = records.last().map(|r| r.seq);
                    let mut chunk = Vec::with_capacity(records.len() * 256);
                    for r in &records {
                        serde_json::to_writer(&mut chunk, r).expect("records serialise");
                        chunk.push(b'\n');
                    }
                    Some((Ok::<_, std::io::Error>(chunk), next))
                }
                Ok(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), None)),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), None)),
            }
        }
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        axum::body::Body::from_stream(pages),
    )
        .into_response())
}

async fn dataset_store(service: &Service, name: &str) -> Result<Arc<dyn crate::store::Store>, ApiError> {
    let config = service.config();
    let ds = config.dataset(name).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no dataset {name:?} in the running config"),
        )
    })?;
    crate::store::open(&ds.store)
        .await
        .map_err(|e| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, format!("dataset {name}: {e}")))
}

async fn list_trash(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let store = dataset_store(&service, &name).await?;
    let entries = match store.trash() {
        Some(t) => t
            .list()
            .await
            .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))?,
        None => Vec::new(),
    };
    Ok(Json(json!({ "trash": entries })).into_response())
}

/// `POST /v1/datasets/{name}/trash/restore` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Restore {
    /// Segment names, as reports and the trash listing show them.
    names: Vec<String>,
}

/// Restores each name; answers 200 when all were restored, else the first error's status, with every name's result.
async fn restore_trash(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    b: Result<Json<Restore>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    let r = body(b)?;
    if r.names.is_empty() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "names: give at least one segment name",
        ));
    }
    let store = dataset_store(&service, &name).await?;
    let mut status = StatusCode::OK;
    let mut results = Vec::new();
    for n in &r.names {
        match crate::execute::restore(Some(&service.state), &name, &*store, n, "admin API").await {
            Ok((e, unrecorded)) => {
                if let Some(err) = unrecorded {
                    tracing::error!("{} was restored but not recorded in the audit trail: {err}", e.name);
                }
                tracing::info!(dataset = %name, segment = %e.name, "restored from the trash");
                results.push(json!({ "name": n, "restored": e }));
            }
            Err(e) => {
                let code = match e {
                    crate::store::StoreError::NotInTrash { .. } => StatusCode::NOT_FOUND,
                    crate::store::StoreError::Taken { .. } => StatusCode::CONFLICT,
                    crate::store::StoreError::Refused(_) | crate::store::StoreError::Unsupported { .. } => {
                        StatusCode::BAD_REQUEST
                    }
                    _ => StatusCode::INTERNAL_SERVER_ERROR,
                };
                if status == StatusCode::OK {
                    status = code;
                }
                results.push(json!({ "name": n, "error": e.to_string() }));
            }
        }
    }
    let error = (status != StatusCode::OK).then(|| "not every segment was restored: see results".to_string());
    Ok((
        status,
        Json(json!({ "status": status.as_u16(), "results": results, "error": error })),
    )
        .into_response())
}

impl From<ShadowError> for ApiError {
    fn from(e: ShadowError) -> Self {
        let status = match &e {
            ShadowError::UnknownDataset(_) => StatusCode::NOT_FOUND,
            ShadowError::NoShadow(_) | ShadowError::Conflict(_) => StatusCode::CONFLICT,
            ShadowError::Invalid(_) => StatusCode::BAD_REQUEST,
            ShadowError::Write { .. } | ShadowError::State(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

async fn get_shadow(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let (shadow, comparisons, totals) = service.shadow(&name)?;
    Ok(Json(json!({ "shadow": shadow, "comparisons": comparisons, "totals": totals })).into_response())
}

/// `POST /v1/datasets/{name}/shadow` body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewShadow {
    /// The shadow plugin's name: the file `<plugin_dir>/<plugin>.wasm`.
    plugin: String,
    /// Real passes that run it, 1 to 10000.
    passes: u32,
}

async fn set_shadow(
    State(service): State<Arc<Service>>,
    Path(name): Path<String>,
    b: Result<Json<NewShadow>, axum::extract::rejection::JsonRejection>,
) -> Result<Response, ApiError> {
    // An unknown dataset is 404 whatever the body says.
    if service.dataset(&name).is_none() {
        return Err(ShadowError::UnknownDataset(name).into());
    }
    let n = body(b)?;
    let shadow = service.set_shadow(&name, &n.plugin, n.passes)?;
    Ok((StatusCode::CREATED, Json(json!({ "shadow": shadow }))).into_response())
}

async fn promote_shadow(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let promoted = service.promote_shadow(&name).await?;
    Ok(Json(json!({ "promoted": promoted })).into_response())
}

async fn discard_shadow(State(service): State<Arc<Service>>, Path(name): Path<String>) -> Result<Response, ApiError> {
    let shadow = service.discard_shadow(&name)?;
    Ok(Json(json!({ "shadow": shadow })).into_response())
}
