//! A request the proxy answers itself, with a JSON error.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, DATE};
use http::{HeaderValue, Response};

use crate::body::ProxyBody;
use crate::error_code::ErrorCode;
use crate::headers::ERROR_HEADER;

/// An error answer: its code and a sentence for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    pub code: ErrorCode,
    pub message: String,
}

impl Failure {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// `{"error":{"code":"...","message":"..."}}` with the code's status.
    pub fn into_response(self) -> Response<ProxyBody> {
        let body = serde_json::json!({
            "error": { "code": self.code.as_str(), "message": self.message }
        });
        let body = serde_json::to_vec(&body).unwrap_or_else(|_| {
            format!(r#"{{"error":{{"code":"{}","message":""}}}}"#, self.code).into_bytes()
        });
        let mut response = Response::new(ProxyBody::full(Bytes::from(body)));
        *response.status_mut() = self.code.status();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(ERROR_HEADER, HeaderValue::from_static(self.code.as_str()));
        headers.insert(DATE, crate::headers::date_now());
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn renders_json_with_status_and_header() {
        let response =
            Failure::new(ErrorCode::NoInstance, "no \"running\" instance").into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        assert_eq!(response.headers()[ERROR_HEADER], "no_instance");
        assert!(response.headers()[DATE].to_str().unwrap().ends_with(" GMT"));
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(json["error"]["code"], "no_instance");
        assert_eq!(json["error"]["message"], "no \"running\" instance");
    }
}
