//! RFC 9457 problem details: every error of the admin API is `application/problem+json`
//! with the HTTP status, a title, a detail a person can act on and — when one field of the
//! request is at fault — its name.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue, StatusCode};
use serde::Serialize;
use utoipa::ToSchema;

/// An error answer (RFC 9457).
#[derive(Debug, Clone, Serialize, ToSchema, PartialEq)]
pub struct Problem {
    /// A URI naming the kind of problem; `about:blank` when the status says it all.
    #[serde(rename = "type")]
    #[schema(example = "about:blank")]
    pub kind: String,
    /// The status's reason phrase.
    #[schema(example = "Bad Request")]
    pub title: String,
    /// The HTTP status code.
    #[schema(example = 400)]
    pub status: u16,
    /// What went wrong, for a person.
    #[schema(example = "got \"sometimes\", expected always, on-conflict or never")]
    pub detail: String,
    /// The request field at fault (a JSON path in the body, or a parameter name).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(example = "prefix")]
    pub field: Option<String>,
}

impl Problem {
    pub fn new(status: StatusCode, detail: impl Into<String>) -> Self {
        Problem {
            kind: "about:blank".into(),
            title: status.canonical_reason().unwrap_or("Error").into(),
            status: status.as_u16(),
            detail: detail.into(),
            field: None,
        }
    }

    pub fn bad_request(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, detail)
    }

    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, detail)
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, detail)
    }

    /// From a status the backend chose (unknown codes become 500).
    pub fn with_status(code: u16, detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            detail,
        )
    }

    pub fn field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: {}", self.status, self.title, self.detail)
    }
}

impl std::error::Error for Problem {}

pub const PROBLEM_JSON: &str = "application/problem+json";

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let body = serde_json::to_vec(&self).unwrap_or_default();
        let mut r = (self.status(), body).into_response();
        r.headers_mut()
            .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
        r
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        let status = match &r {
            JsonRejection::MissingJsonContentType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            JsonRejection::BytesRejection(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => StatusCode::BAD_REQUEST,
        };
        // serde's message names the field ("missing field `name` at line 1 column 2").
        let detail = r.body_text();
        let field = field_of(&detail);
        let mut p = Problem::new(status, detail);
        p.field = field;
        p
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        let detail = r.body_text();
        let field = field_of(&detail);
        let mut p = Problem::bad_request(detail);
        p.field = field;
        p
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Problem::bad_request(r.body_text())
    }
}

/// The field serde names in its message: `missing field `x``, `unknown field `x``, or the
/// path axum puts first (`x: invalid type …`, `a.b[0]: …`).
fn field_of(msg: &str) -> Option<String> {
    for marker in ["field `", "variant `"] {
        if let Some(i) = msg.find(marker) {
            let rest = &msg[i + marker.len()..];
            return rest.find('`').map(|j| rest[..j].to_string());
        }
    }
    let rest = ["into the target type: ", "query string: "]
        .iter()
        .find_map(|p| msg.split_once(p).map(|(_, r)| r))?;
    let (path, _) = rest.split_once(": ")?;
    let ok = !path.is_empty() && path.chars().all(|c| c.is_ascii_alphanumeric() || "_.[]".contains(c));
    ok.then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serde_messages_name_the_field() {
        assert_eq!(
            field_of(
                "Failed to deserialize the JSON body into the target type: missing field `name` at line 1 column 2"
            ),
            Some("name".into())
        );
        assert_eq!(
            field_of("Failed to deserialize query string: limit: invalid digit found in string"),
            Some("limit".into())
        );
        assert_eq!(
            field_of("Failed to deserialize the JSON body into the target type: expires_in_days: invalid type: floating point `1.5`, expected u32 at line 1"),
            Some("expires_in_days".into())
        );
        assert_eq!(field_of("Expected request with `Content-Type: application/json`"), None);
    }

    #[test]
    fn problems_are_problem_json() {
        let r = Problem::not_found("no upstream named \"x\"")
            .field("name")
            .into_response();
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(r.headers()[header::CONTENT_TYPE], PROBLEM_JSON);
    }
}
