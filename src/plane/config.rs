//! Plane settings from the environment (SPEC §10). Secrets come only from
//! here, never from `orch.toml`, and `Debug` never shows them.

use std::fmt;

use super::signature::Secret;
use crate::config::ConfigError;

/// Everything orch needs to talk to Plane. The webhook works with only the
/// secret; the API (state names, replay check, comments, relations) needs
/// the URL, the token and the workspace together.
#[derive(Clone)]
pub struct PlaneConfig {
    /// `ORCH_PLANE_URL`: the instance root, e.g. `https://plane.example`.
    pub url: Option<String>,
    pub api_token: Option<Secret>,
    pub workspace: Option<String>,
    pub webhook_secret: Option<Secret>,
    /// `ORCH_PLANE_START_STATE`, default `To Analyse`.
    pub start_state: String,
    /// `ORCH_PLANE_STOP_STATE`, default `STOP`.
    pub stop_state: String,
}

/// The three settings the API needs, present together.
#[derive(Clone)]
pub struct PlaneApiConfig {
    pub url: String,
    pub token: Secret,
    pub workspace: String,
}

impl Default for PlaneConfig {
    fn default() -> Self {
        Self {
            url: None,
            api_token: None,
            workspace: None,
            webhook_secret: None,
            start_state: "To Analyse".into(),
            stop_state: "STOP".into(),
        }
    }
}

impl PlaneConfig {
    /// Reads the `ORCH_PLANE_*` variables. A partial API setup (a URL
    /// without a token, say) is refused by name, because it would silently
    /// turn the replay check off.
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let text = |k: &str| {
            env(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let url = text("ORCH_PLANE_URL")
            .map(|u| base_url("ORCH_PLANE_URL", &u))
            .transpose()?;
        let workspace = text("ORCH_PLANE_WORKSPACE");
        if let Some(w) = &workspace
            && !is_slug(w)
        {
            return Err(ConfigError::Invalid {
                key: "ORCH_PLANE_WORKSPACE",
                reason: "expected the workspace slug (letters, digits, '-' or '_')".into(),
            });
        }
        let api_token = Secret::from_env(env("ORCH_PLANE_API_TOKEN"));
        let set = [url.is_some(), api_token.is_some(), workspace.is_some()];
        if set.contains(&true) && set.contains(&false) {
            let missing = [
                ("ORCH_PLANE_URL", url.is_none()),
                ("ORCH_PLANE_API_TOKEN", api_token.is_none()),
                ("ORCH_PLANE_WORKSPACE", workspace.is_none()),
            ]
            .into_iter()
            .find(|(_, missing)| *missing)
            .map_or("ORCH_PLANE_URL", |(k, _)| k);
            return Err(ConfigError::Invalid {
                key: missing,
                reason: "the Plane API needs ORCH_PLANE_URL, ORCH_PLANE_API_TOKEN and ORCH_PLANE_WORKSPACE together".into(),
            });
        }
        let defaults = Self::default();
        let start_state = text("ORCH_PLANE_START_STATE").unwrap_or(defaults.start_state);
        let stop_state = text("ORCH_PLANE_STOP_STATE").unwrap_or(defaults.stop_state);
        if start_state == stop_state {
            return Err(ConfigError::Invalid {
                key: "ORCH_PLANE_STOP_STATE",
                reason: format!("must differ from ORCH_PLANE_START_STATE ({start_state:?})"),
            });
        }
        Ok(Self {
            url,
            api_token,
            workspace,
            webhook_secret: Secret::from_env(env("ORCH_PLANE_WEBHOOK_SECRET")),
            start_state,
            stop_state,
        })
    }

    /// The API settings, when all three are configured.
    pub fn api(&self) -> Option<PlaneApiConfig> {
        Some(PlaneApiConfig {
            url: self.url.clone()?,
            token: self.api_token.clone()?,
            workspace: self.workspace.clone()?,
        })
    }

    /// The webhook secret as bytes, for [`super::webhook::verify`].
    pub fn webhook_secret(&self) -> Option<&[u8]> {
        self.webhook_secret.as_ref().map(|s| s.expose().as_bytes())
    }
}

impl fmt::Debug for PlaneConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaneConfig")
            .field("url", &self.url)
            .field("api_token", &self.api_token)
            .field("workspace", &self.workspace)
            .field("webhook_secret", &self.webhook_secret)
            .field("start_state", &self.start_state)
            .field("stop_state", &self.stop_state)
            .finish()
    }
}

impl fmt::Debug for PlaneApiConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlaneApiConfig")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("workspace", &self.workspace)
            .finish()
    }
}

/// Validates a service's base URL: http or https, no credentials, no query.
/// A trailing `/` and a trailing `/api/v1` are dropped, because the
/// clients append the API path themselves. Shared with the Gitea settings.
pub fn base_url(key: &'static str, value: &str) -> Result<String, ConfigError> {
    let invalid = |reason: &str| ConfigError::Invalid {
        key,
        reason: reason.to_owned(),
    };
    let url = reqwest::Url::parse(value).map_err(|_| invalid("expected an http(s) URL"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(invalid("expected an http(s) URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "credentials belong in the token variable, not the URL",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid("expected no query or fragment"));
    }
    let trimmed = url.as_str().trim_end_matches('/');
    Ok(trimmed
        .strip_suffix("/api/v1")
        .unwrap_or(trimmed)
        .to_owned())
}

fn is_slug(s: &str) -> bool {
    s.len() <= 100
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn defaults_and_full_setup() {
        let c = PlaneConfig::from_env(&env_of(&[])).unwrap();
        assert_eq!(c.start_state, "To Analyse");
        assert_eq!(c.stop_state, "STOP");
        assert!(c.api().is_none() && c.webhook_secret().is_none());
        let c = PlaneConfig::from_env(&env_of(&[
            ("ORCH_PLANE_URL", "https://plane.example/api/v1/"),
            ("ORCH_PLANE_API_TOKEN", "plane_api_abc"),
            ("ORCH_PLANE_WORKSPACE", "acme"),
            ("ORCH_PLANE_WEBHOOK_SECRET", "whsec"),
            ("ORCH_PLANE_STOP_STATE", "Halt"),
        ]))
        .unwrap();
        assert_eq!(c.api().unwrap().url, "https://plane.example");
        assert_eq!(c.stop_state, "Halt");
        assert_eq!(c.webhook_secret(), Some(&b"whsec"[..]));
        let shown = format!("{c:?} {:?}", c.api().unwrap());
        assert!(
            !shown.contains("plane_api_abc") && !shown.contains("whsec"),
            "{shown}"
        );
    }

    fn check_err(pairs: &[(&str, &str)], key: &str) {
        let e = PlaneConfig::from_env(&env_of(pairs))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(key), "{e} should name {key}");
        assert!(!e.contains("tok3n"), "{e}");
    }

    #[test]
    fn bad_values_name_their_key() {
        check_err(&[("ORCH_PLANE_URL", "ftp://x")], "ORCH_PLANE_URL");
        check_err(&[("ORCH_PLANE_URL", "https://u:tok3n@x")], "ORCH_PLANE_URL");
        check_err(&[("ORCH_PLANE_WORKSPACE", "a/b")], "ORCH_PLANE_WORKSPACE");
        check_err(
            &[
                ("ORCH_PLANE_URL", "https://x"),
                ("ORCH_PLANE_WORKSPACE", "acme"),
            ],
            "ORCH_PLANE_API_TOKEN",
        );
        check_err(&[("ORCH_PLANE_API_TOKEN", "tok3n")], "ORCH_PLANE_URL");
        check_err(
            &[("ORCH_PLANE_STOP_STATE", "To Analyse")],
            "ORCH_PLANE_STOP_STATE",
        );
    }
}
