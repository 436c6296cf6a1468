//! When `orch serve` holds the store file (redb locks it for one process),
//! `orch task …` and `orch queue` speak to it over its HTTP API instead.

use anyhow::{Context, anyhow};
use serde_json::Value;

use super::Failure;
use crate::config::Settings;

/// One request to the running server; prints the JSON answer. A non-2xx
/// answer is a runtime error carrying the server's one-line message.
pub fn call(
    settings: &Settings,
    method: &str,
    path: &str,
    body: Option<Value>,
) -> Result<Value, Failure> {
    let mut addr = settings.http_addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
    }
    let url = format!("http://{addr}{path}");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let client = reqwest::Client::builder()
            .no_proxy()
            .timeout(std::time::Duration::from_secs(30))
            .build()?;
        let mut req = match method {
            "POST" => client
                .post(&url)
                .header("Content-Type", "application/json")
                .body(
                    body.unwrap_or(Value::Object(Default::default()))
                        .to_string(),
                ),
            _ => client.get(&url),
        };
        if let Some(token) = &settings.api_token {
            req = req.bearer_auth(token.expose());
        }
        let resp = req.send().await.with_context(|| {
            format!(
                "the store is held by a running orch serve, and its API at {addr} did not answer"
            )
        })?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let value: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(value)
        } else {
            let msg = value["error"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| status.to_string());
            Err(Failure::Runtime(anyhow!(
                "{msg} (HTTP {})",
                status.as_u16()
            )))
        }
    })
}

/// Percent-encodes one path segment or query value.
pub fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b':' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
