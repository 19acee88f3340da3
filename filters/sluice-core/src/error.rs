//! Errors as callers see them.
//!
//! Every refusal a filter makes is an [`ApiError`]: a status and a body in the dialect the caller
//! spoke. OpenAI: `{"error":{"message","type","param","code"}}`. Anthropic:
//! `{"type":"error","error":{"type","message"}}`. The host crate sends it; this module only
//! decides the bytes, so it is testable anywhere.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The API dialect a caller speaks (and so the error format it expects).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    #[default]
    #[serde(rename = "openai")]
    OpenAi,
    Anthropic,
}

impl Dialect {
    /// The dialect implied by a request path: Anthropic's Messages API lives at `/v1/messages`.
    pub fn from_path(path: &str) -> Dialect {
        let path = path.split('?').next().unwrap_or(path);
        if path.ends_with("/v1/messages") || path.ends_with("/v1/messages/count_tokens") {
            Dialect::Anthropic
        } else {
            Dialect::OpenAi
        }
    }
}

/// What went wrong, which fixes the HTTP status and the `type` in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// 400: the request is malformed or breaks a limit.
    InvalidRequest,
    /// 401: no key, or a key the gateway does not know.
    Authentication,
    /// 403: the key is known but may not do this.
    Permission,
    /// 404: unknown model, template or endpoint.
    NotFound,
    /// 405: a method the path does not take (send an `allow` header with it).
    MethodNotAllowed,
    /// 413: the body is over the configured limit.
    RequestTooLarge,
    /// 429: over a rate or token budget.
    RateLimit,
    /// 502: the upstream answered something the gateway could not use.
    BadGateway,
    /// 503: a dependency of the gateway (e.g. a call-out) is unavailable and policy is fail-closed.
    Unavailable,
}

impl ErrorKind {
    pub const fn status(self) -> u16 {
        match self {
            ErrorKind::InvalidRequest => 400,
            ErrorKind::Authentication => 401,
            ErrorKind::Permission => 403,
            ErrorKind::NotFound => 404,
            ErrorKind::MethodNotAllowed => 405,
            ErrorKind::RequestTooLarge => 413,
            ErrorKind::RateLimit => 429,
            ErrorKind::BadGateway => 502,
            ErrorKind::Unavailable => 503,
        }
    }

    /// The `error.type` string in the given dialect.
    pub const fn type_name(self, dialect: Dialect) -> &'static str {
        match (dialect, self) {
            (_, ErrorKind::InvalidRequest | ErrorKind::MethodNotAllowed) => "invalid_request_error",
            (_, ErrorKind::Authentication) => "authentication_error",
            (_, ErrorKind::Permission) => "permission_error",
            (Dialect::OpenAi, ErrorKind::NotFound) => "invalid_request_error",
            (Dialect::Anthropic, ErrorKind::NotFound) => "not_found_error",
            (Dialect::OpenAi, ErrorKind::RequestTooLarge) => "invalid_request_error",
            (Dialect::Anthropic, ErrorKind::RequestTooLarge) => "request_too_large",
            (Dialect::OpenAi, ErrorKind::RateLimit) => "rate_limit_exceeded",
            (Dialect::Anthropic, ErrorKind::RateLimit) => "rate_limit_error",
            (Dialect::OpenAi, ErrorKind::BadGateway | ErrorKind::Unavailable) => "server_error",
            (Dialect::Anthropic, ErrorKind::BadGateway) => "api_error",
            (Dialect::Anthropic, ErrorKind::Unavailable) => "overloaded_error",
        }
    }
}

/// A refusal to send back to the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
    /// The request field at fault, if one is (OpenAI's `param`).
    pub param: Option<String>,
    /// A machine-readable code, e.g. `model_not_found`, `context_length_exceeded`.
    pub code: Option<String>,
    /// Extra response headers (e.g. `retry-after`).
    pub headers: Vec<(String, String)>,
}

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        ApiError {
            kind,
            message: message.into(),
            param: None,
            code: None,
            headers: Vec::new(),
        }
    }

    pub fn invalid_request(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotFound, message)
    }

    pub fn with_code(mut self, code: impl Into<String>) -> Self {
        self.code = Some(code.into());
        self
    }

    pub fn with_param(mut self, param: impl Into<String>) -> Self {
        self.param = Some(param.into());
        self
    }

    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The refusal for a request body over `max` bytes.
    pub fn body_too_large(max: u64) -> Self {
        Self::new(
            ErrorKind::RequestTooLarge,
            format!("Request body is over {max} bytes."),
        )
        .with_code("request_too_large")
    }

    /// The refusal for a request that the gateway's rewrite (`how`: "masked", "translated",
    /// …) would make longer than `max` bytes, more than Envoy holds (Envoy's own 413 would name
    /// its limit as if the caller had sent that much).
    pub fn rewritten_too_large(max: u64, how: &str) -> Self {
        Self::new(
            ErrorKind::RequestTooLarge,
            format!("Request body would be over {max} bytes once {how} by the gateway."),
        )
        .with_code("request_too_large")
    }

    /// The body that takes the place of a provider's error answer too long for the gateway to
    /// hold whole and remove its credentials from: its own text never passes (its status,
    /// already sent, stays).
    pub fn error_answer_too_large() -> Self {
        Self::new(
            ErrorKind::BadGateway,
            "The provider's error answer was too long for the gateway to check: its text is not \
             passed on."
                .to_owned(),
        )
        .with_code("upstream_error_too_large")
    }

    /// The answer a caller gets when an answer the gateway holds whole to rewrite it (values
    /// restored, a translation, a REST answer reduced) is, or would be once rewritten, longer
    /// than it can hold (`max` bytes, less for an answer of undeclared length).
    pub fn answer_too_large(max: u64) -> Self {
        Self::new(
            ErrorKind::BadGateway,
            format!(
                "The answer is too long for the gateway to hold whole and rewrite (it holds at \
                 most {max} bytes)."
            ),
        )
        .with_code("answer_too_large")
    }

    /// The body a caller would get when the request body is not valid JSON.
    pub fn malformed_json(detail: &str) -> Self {
        Self::invalid_request(format!("request body is not valid JSON: {detail}"))
            .with_code("invalid_json")
    }

    pub fn status(&self) -> u16 {
        self.kind.status()
    }

    /// The response body in the given dialect.
    pub fn body(&self, dialect: Dialect) -> Vec<u8> {
        let value = match dialect {
            Dialect::OpenAi => json!({
                "error": {
                    "message": self.message,
                    "type": self.kind.type_name(dialect),
                    "param": self.param,
                    "code": self.code,
                }
            }),
            Dialect::Anthropic => json!({
                "type": "error",
                "error": {
                    "type": self.kind.type_name(dialect),
                    "message": self.message,
                }
            }),
        };
        // Serialising a `serde_json::Value` cannot fail; fall back to a fixed body regardless.
        serde_json::to_vec(&value).unwrap_or_else(|_| b"{\"error\":{}}".to_vec())
    }

    /// All response headers to send with [`ApiError::body`].
    pub fn response_headers(&self) -> Vec<(&str, &str)> {
        let mut headers = vec![("content-type", "application/json")];
        headers.extend(self.headers.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        headers
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.status(),
            self.kind.type_name(Dialect::OpenAi),
            self.message
        )
    }
}

#[cfg(test)]
mod tests {
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    use super::*;
    use serde_json::Value;

    #[test]
    fn openai_body_has_message_type_param_code() {
        let err = ApiError::not_found("The model `nope` does not exist")
            .with_code("model_not_found")
            .with_param("model");
        assert_eq!(err.status(), 404);
        let v: Value = serde_json::from_slice(&err.body(Dialect::OpenAi)).unwrap();
        assert_eq!(v["error"]["message"], "The model `nope` does not exist");
        assert_eq!(v["error"]["type"], "invalid_request_error");
        assert_eq!(v["error"]["param"], "model");
        assert_eq!(v["error"]["code"], "model_not_found");
    }

    #[test]
    fn openai_body_keeps_null_param_and_code() {
        let v: Value =
            serde_json::from_slice(&ApiError::invalid_request("bad").body(Dialect::OpenAi))
                .unwrap();
        assert!(v["error"]["param"].is_null());
        assert!(v["error"]["code"].is_null());
        assert_eq!(v["error"].as_object().unwrap().len(), 4);
    }

    #[test]
    fn anthropic_body_shape() {
        let err = ApiError::new(ErrorKind::RateLimit, "slow down");
        let v: Value = serde_json::from_slice(&err.body(Dialect::Anthropic)).unwrap();
        assert_eq!(v["type"], "error");
        assert_eq!(v["error"]["type"], "rate_limit_error");
        assert_eq!(v["error"]["message"], "slow down");
    }

    #[test]
    fn statuses_match_kinds() {
        let pairs = [
            (ErrorKind::InvalidRequest, 400),
            (ErrorKind::Authentication, 401),
            (ErrorKind::Permission, 403),
            (ErrorKind::NotFound, 404),
            (ErrorKind::RequestTooLarge, 413),
            (ErrorKind::RateLimit, 429),
            (ErrorKind::BadGateway, 502),
            (ErrorKind::Unavailable, 503),
        ];
        for (kind, status) in pairs {
            assert_eq!(kind.status(), status);
        }
    }

    #[test]
    fn headers_include_content_type_and_extras() {
        let err = ApiError::new(ErrorKind::RateLimit, "x").with_header("retry-after", "3");
        assert_eq!(
            err.response_headers(),
            vec![("content-type", "application/json"), ("retry-after", "3")]
        );
    }

    #[test]
    fn dialect_from_path() {
        assert_eq!(Dialect::from_path("/v1/messages"), Dialect::Anthropic);
        assert_eq!(
            Dialect::from_path("/v1/messages?beta=true"),
            Dialect::Anthropic
        );
        assert_eq!(Dialect::from_path("/v1/chat/completions"), Dialect::OpenAi);
    }
}
