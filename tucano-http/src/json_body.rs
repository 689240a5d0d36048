//! `JsonBody<T>`: a JSON request body with Tucano's error contract — 413 over the size limit,
//! 400 for malformed JSON, 422 for well-formed JSON of the wrong shape.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ApiError;

/// Largest request body the APIs accept.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// A request body parsed as JSON (the Content-Type is not checked).
#[derive(Debug, Clone)]
pub struct JsonBody<T>(pub T);

impl<T: DeserializeOwned, S: Send + Sync> FromRequest<S> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "payload_too_large",
                        format!("request body is larger than {MAX_BODY_BYTES} bytes"),
                    )
                } else {
                    ApiError::new(StatusCode::BAD_REQUEST, "bad_body", rejection.body_text())
                }
            })?;
        parse(&bytes).map(JsonBody)
    }
}

/// Parses `bytes` as `T`, telling malformed JSON (400) from the wrong shape (422).
pub fn parse<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(bytes).map_err(|error| {
        use serde_json::error::Category;
        match error.classify() {
            Category::Data => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_spec",
                error.to_string(),
            ),
            Category::Syntax | Category::Eof | Category::Io => ApiError::new(
                StatusCode::BAD_REQUEST,
                "malformed_json",
                format!("request body is not valid JSON: {error}"),
            ),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tucano_core::ServiceSpec;

    #[test]
    fn tells_malformed_from_invalid() {
        let malformed = parse::<ServiceSpec>(b"{\"name\": ").unwrap_err();
        assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
        assert_eq!(malformed.body.error.code, "malformed_json");
        let invalid = parse::<ServiceSpec>(br#"{"name":"Bad Name","command":["x"]}"#).unwrap_err();
        assert_eq!(invalid.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(invalid.body.error.message.contains("Bad Name"));
        let negative = parse::<ServiceSpec>(br#"{"name":"a","command":["x"],"replicas":-1}"#);
        assert_eq!(
            negative.unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
    }
}
