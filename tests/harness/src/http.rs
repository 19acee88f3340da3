//! A minimal blocking HTTP client for tests (ureq underneath): the status, headers and the
//! exact body bytes, whatever the status.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// Header names lower-case, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> crate::Result<serde_json::Value> {
        serde_json::from_slice(&self.body)
            .map_err(|e| format!("response is not JSON ({e}): {}", self.text()))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(60)))
        .build()
        .into()
}

fn finish(
    result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> crate::Result<Response> {
    let mut resp = result.map_err(|e| format!("request failed: {e}"))?;
    let status = resp.status().as_u16();
    let headers = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let body = resp
        .body_mut()
        .with_config()
        .limit(256 << 20)
        .read_to_vec()
        .map_err(|e| format!("reading the body failed: {e}"))?;
    Ok(Response {
        status,
        headers,
        body,
    })
}

/// `POST url` with a JSON body and extra headers.
pub fn post(url: &str, body: &[u8], headers: &[(&str, &str)]) -> crate::Result<Response> {
    let mut req = agent().post(url).header("content-type", "application/json");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.send(body))
}

pub fn get(url: &str) -> crate::Result<Response> {
    finish(agent().get(url).call())
}

/// `GET url` with extra headers.
pub fn get_with(url: &str, headers: &[(&str, &str)]) -> crate::Result<Response> {
    let mut req = agent().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    finish(req.call())
}
