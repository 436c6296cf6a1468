//! Small local stand-ins for Plane and Gitea: axum servers on
//! `127.0.0.1:0` that follow the documented paths and status codes, keep
//! just enough state to answer like the real thing, can be scripted to fail
//! (429 with `Retry-After`, 5xx), and record every request so tests can
//! assert on headers and bodies. `fixtures/` holds the example payloads the
//! project's contract describes (Plane webhook, project and states; Gitea
//! repository and pull request).

pub mod gitea;
pub mod plane;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;

use axum::Router;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::Value;

/// One request as the fake server saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Seen {
    pub fn new(method: Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> Self {
        let query = uri
            .query()
            .unwrap_or("")
            .split('&')
            .filter(|p| !p.is_empty())
            .map(|p| {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                (percent_decode(k), percent_decode(v))
            })
            .collect();
        let headers = headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_ascii_lowercase(),
                    v.to_str().unwrap_or("").to_owned(),
                )
            })
            .collect();
        Self {
            method,
            path: uri.path().to_owned(),
            query,
            headers,
            body: String::from_utf8_lossy(body).into_owned(),
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).expect("a JSON request body")
    }

    /// The path split at `/`, without the empty ends.
    pub fn segments(&self) -> Vec<&str> {
        self.path.split('/').filter(|s| !s.is_empty()).collect()
    }
}

/// Decodes a query component (`%XX` and `+`).
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A canned answer the server gives instead of handling a request.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub retry_after: Option<u64>,
    pub body: String,
}

impl Scripted {
    pub fn status(status: u16) -> Self {
        Self {
            status,
            retry_after: None,
            body: r#"{"error":"scripted"}"#.into(),
        }
    }

    pub fn rate_limited(retry_after: u64) -> Self {
        Self {
            status: 429,
            retry_after: Some(retry_after),
            body: r#"{"detail":"Request was throttled."}"#.into(),
        }
    }

    pub fn respond(&self) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert("content-type", HeaderValue::from_static("application/json"));
        if let Some(s) = self.retry_after {
            headers.insert("retry-after", HeaderValue::from(s));
        }
        (
            StatusCode::from_u16(self.status).expect("a valid status"),
            headers,
            self.body.clone(),
        )
            .into_response()
    }
}

/// Scripted answers for the next requests, in order.
#[derive(Debug, Default)]
pub struct Script(VecDeque<Scripted>);

impl Script {
    pub fn push(&mut self, s: Scripted) {
        self.0.push_back(s);
    }

    pub fn next(&mut self) -> Option<Scripted> {
        self.0.pop_front()
    }
}

/// A JSON answer.
pub fn json(status: u16, value: Value) -> Response {
    (
        StatusCode::from_u16(status).expect("a valid status"),
        [("content-type", "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// An answer with no body.
pub fn empty(status: u16) -> Response {
    StatusCode::from_u16(status)
        .expect("a valid status")
        .into_response()
}

/// Serves `app` on an ephemeral loopback port for the rest of the test.
pub async fn serve(app: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a loopback port");
    let addr = listener.local_addr().expect("bound address");
    tokio::spawn(async move {
        axum::serve(listener, app).await.expect("fake server runs");
    });
    addr
}
