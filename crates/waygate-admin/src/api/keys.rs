//! `/api/v1/keys…` and `/api/v1/secrets`: API keys (the secret shown once, at creation or
//! rotation) and the names of stored secrets — never their values.

use axum::extract::State;
use http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use utoipa_axum::{router::OpenApiRouter, routes};

use crate::extract::{store_problem, Actor, AppState, Json, Path};
use crate::Problem;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(revoke))
        .routes(routes!(rotate))
        .routes(routes!(secrets))
}

/// An API key (its hash stays in the store).
#[derive(Serialize, ToSchema)]
pub struct KeyRow {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// `active`, `revoked` or `expired`.
    pub state: String,
    /// Unix milliseconds.
    pub created_at: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct KeyList {
    pub keys: Vec<KeyRow>,
}

#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewKeyRequest {
    /// Who or what the key is for: 1 to 128 characters, no control characters.
    #[schema(min_length = 1, max_length = 128, pattern = "^[^\\u0000-\\u001f\\u007f]+$")]
    pub name: String,
    /// `mcp`, `admin`, `admin:read`, `metrics`, `server:NAME` or role names.
    #[serde(default = "default_scopes")]
    #[schema(schema_with = scopes_schema)]
    pub scopes: Vec<String>,
    /// Days until the key expires; never when absent.
    /// (Read as a number: JSON Schema counts `30.0` as the integer 30.)
    #[serde(default)]
    #[schema(value_type = Option<u32>, minimum = 1, maximum = 36500)]
    pub expires_in_days: Option<f64>,
}

fn scopes_schema() -> utoipa::openapi::schema::Array {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Type};
    ArrayBuilder::new()
        .items(
            ObjectBuilder::new()
                .schema_type(Type::String)
                .pattern(Some("^[A-Za-z0-9_.:-]{1,64}$"))
                .build(),
        )
        .min_items(Some(1))
        .max_items(Some(64))
        .description(Some(
            "Scopes: mcp, admin, admin:read, metrics, server:NAME or role names",
        ))
        .build()
}

fn default_scopes() -> Vec<String> {
    vec!["mcp".into()]
}

/// A key just made: `key` is shown this once.
#[derive(Serialize, ToSchema)]
pub struct CreatedKey {
    pub id: String,
    pub name: String,
    pub scopes: Vec<String>,
    /// The secret; store it now, it cannot be shown again.
    pub key: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[utoipa::path(get, path = "/api/v1/keys", tag = "keys",
    responses((status = 200, body = KeyList), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn list(State(state): State<AppState>) -> Result<Json<KeyList>, Problem> {
    let now = now_ms();
    let keys = state
        .store()?
        .keys()
        .await
        .map_err(store_problem)?
        .into_iter()
        .map(|k| KeyRow {
            state: match (k.revoked_at, k.expires_at) {
                (Some(_), _) => "revoked",
                (None, Some(e)) if e <= now => "expired",
                _ => "active",
            }
            .into(),
            id: k.id,
            name: k.name,
            scopes: k.scopes,
            created_at: k.created_at,
            expires_at: k.expires_at,
            revoked_at: k.revoked_at,
        })
        .collect();
    Ok(Json(KeyList { keys }))
}

async fn make(state: &AppState, name: &str, scopes: &[String], expires_at: Option<i64>) -> Result<CreatedKey, Problem> {
    let k = waygate_core::auth::generate_key();
    state
        .store()?
        .create_key(&k.id, name, &k.hash, scopes, expires_at)
        .await
        .map_err(store_problem)?;
    Ok(CreatedKey {
        id: k.id,
        name: name.to_string(),
        scopes: scopes.to_vec(),
        key: k.key,
        expires_at,
    })
}

#[utoipa::path(post, path = "/api/v1/keys", tag = "keys", request_body = NewKeyRequest,
    responses((status = 201, body = CreatedKey),
        (status = 400, description = "A bad name or scope (named in `field`)", body = Problem, content_type = "application/problem+json"),
        (status = 415, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn create(
    State(state): State<AppState>,
    actor: Actor,
    Json(req): Json<NewKeyRequest>,
) -> Result<(StatusCode, Json<CreatedKey>), Problem> {
    let name = req.name.as_str();
    let n = name.chars().count();
    if n == 0 || n > 128 || name.chars().any(|c| c.is_ascii_control()) {
        return Err(Problem::bad_request("name must be 1 to 128 characters without control characters").field("name"));
    }
    if req.scopes.is_empty() || req.scopes.len() > 64 {
        return Err(Problem::bad_request("one to 64 scopes are needed (e.g. \"mcp\")").field("scopes"));
    }
    for (i, s) in req.scopes.iter().enumerate() {
        waygate_core::auth::check_scope(s).map_err(|m| Problem::bad_request(m).field(format!("scopes[{i}]")))?;
    }
    let expires = match req.expires_in_days {
        Some(d) if d.fract() != 0.0 || !(1.0..=36_500.0).contains(&d) => {
            return Err(Problem::bad_request(format!(
                "expires_in_days {d} is not a whole number of days in 1..=36500"
            ))
            .field("expires_in_days"))
        }
        Some(d) => Some(now_ms() + d as i64 * 86_400_000),
        None => None,
    };
    let r = make(&state, name, &req.scopes, expires).await;
    let target = match &r {
        Ok(k) => format!("{} {name} [{}]", k.id, req.scopes.join(",")),
        Err(_) => name.to_string(),
    };
    state.audit("admin/keys.create", &target, r.is_ok(), &actor);
    let key = r?;
    state.backend.keys_changed().await;
    Ok((StatusCode::CREATED, Json(key)))
}

async fn active(state: &AppState, id: &str) -> Result<waygate_store::KeyRow, Problem> {
    state
        .store()?
        .keys()
        .await
        .map_err(store_problem)?
        .into_iter()
        .find(|k| k.id == id && k.revoked_at.is_none())
        .ok_or_else(|| Problem::not_found(format!("no active key with id {id:?}")).field("id"))
}

#[utoipa::path(delete, path = "/api/v1/keys/{id}", tag = "keys", params(("id" = String, Path)),
    responses((status = 204, description = "Revoked; refused from now on"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "The key of this request, or the last active admin key", body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn revoke(State(state): State<AppState>, actor: Actor, Path(id): Path<String>) -> Result<StatusCode, Problem> {
    let key = active(&state, &id).await?;
    // No lock-out by accident: not the credential of this very request, not the last
    // active admin key.
    if actor.0.principal.as_ref().is_some_and(|p| p.id == id) {
        return Err(Problem::conflict(
            "this request is authenticated with that key; revoke it with another admin key (or rotate it)",
        )
        .field("id"));
    }
    if key.scopes.iter().any(|s| s == "admin") {
        let now = now_ms();
        let admins = state
            .store()?
            .keys()
            .await
            .map_err(store_problem)?
            .into_iter()
            .filter(|k| k.revoked_at.is_none() && k.expires_at.is_none_or(|e| e > now))
            .filter(|k| k.scopes.iter().any(|s| s == "admin"))
            .count();
        if admins <= 1 {
            return Err(Problem::conflict("that is the last active admin key; create another one first").field("id"));
        }
    }
    let r = state.store()?.revoke_key(&id).await.map_err(store_problem);
    state.audit("admin/keys.revoke", &id, r.is_ok(), &actor);
    r?;
    state.backend.keys_changed().await;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/api/v1/keys/{id}/rotate", tag = "keys", params(("id" = String, Path)),
    responses((status = 201, description = "A new key with the same name and scopes; the old one is revoked", body = CreatedKey),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn rotate(
    State(state): State<AppState>,
    actor: Actor,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<CreatedKey>), Problem> {
    let old = active(&state, &id).await?;
    let r = async {
        let k = make(&state, &old.name, &old.scopes, old.expires_at).await?;
        state.store()?.revoke_key(&id).await.map_err(store_problem)?;
        Ok::<_, Problem>(k)
    }
    .await;
    state.audit("admin/keys.rotate", &id, r.is_ok(), &actor);
    let key = r?;
    state.backend.keys_changed().await;
    Ok((StatusCode::CREATED, Json(key)))
}

#[derive(Serialize, ToSchema)]
pub struct SecretList {
    /// Names usable as `${secret:NAME}`; values never leave the store.
    pub secrets: Vec<String>,
}

#[utoipa::path(get, path = "/api/v1/secrets", tag = "keys",
    responses((status = 200, body = SecretList), (status = 503, body = Problem, content_type = "application/problem+json")))]
async fn secrets(State(state): State<AppState>) -> Result<Json<SecretList>, Problem> {
    let secrets = state
        .store()?
        .secrets()
        .await
        .map_err(store_problem)?
        .into_iter()
        .map(|s| s.name)
        .collect();
    Ok(Json(SecretList { secrets }))
}
