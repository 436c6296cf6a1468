//! Gitea settings from the environment (SPEC §10). The token and the
//! webhook secret come only from here and never print.

use std::fmt;

use crate::config::ConfigError;
use crate::plane::Secret;
use crate::plane::config::base_url;

#[derive(Clone, Default)]
pub struct GiteaConfig {
    /// `ORCH_GITEA_URL`: the instance root; the API is under `/api/v1`.
    pub url: Option<String>,
    pub token: Option<Secret>,
    pub webhook_secret: Option<Secret>,
}

impl GiteaConfig {
    /// Reads the `ORCH_GITEA_*` variables. A URL without a token (or the
    /// reverse) is refused by name: half a setup would fail at the first
    /// merge instead of at start.
    pub fn from_env(env: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = env("ORCH_GITEA_URL")
            .map(|u| u.trim().to_owned())
            .filter(|u| !u.is_empty())
            .map(|u| base_url("ORCH_GITEA_URL", &u))
            .transpose()?;
        let token = Secret::from_env(env("ORCH_GITEA_TOKEN"));
        match (&url, &token) {
            (Some(_), None) => {
                return Err(ConfigError::Invalid {
                    key: "ORCH_GITEA_TOKEN",
                    reason: "ORCH_GITEA_URL is set, so the API token is needed too".into(),
                });
            }
            (None, Some(_)) => {
                return Err(ConfigError::Invalid {
                    key: "ORCH_GITEA_URL",
                    reason: "ORCH_GITEA_TOKEN is set, so the instance URL is needed too".into(),
                });
            }
            _ => {}
        }
        Ok(Self {
            url,
            token,
            webhook_secret: Secret::from_env(env("ORCH_GITEA_WEBHOOK_SECRET")),
        })
    }

    /// The URL and token, when the API is configured.
    pub fn api(&self) -> Option<(&str, &Secret)> {
        Some((self.url.as_deref()?, self.token.as_ref()?))
    }

    /// The webhook secret as bytes, for [`super::webhook::verify`].
    pub fn webhook_secret(&self) -> Option<&[u8]> {
        self.webhook_secret.as_ref().map(|s| s.expose().as_bytes())
    }
}

impl fmt::Debug for GiteaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GiteaConfig")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("webhook_secret", &self.webhook_secret)
            .finish()
    }
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
    fn reads_and_redacts() {
        assert!(GiteaConfig::from_env(&env_of(&[])).unwrap().api().is_none());
        let c = GiteaConfig::from_env(&env_of(&[
            ("ORCH_GITEA_URL", "https://gitea.example/"),
            ("ORCH_GITEA_TOKEN", "gt-s3cret"),
            ("ORCH_GITEA_WEBHOOK_SECRET", "wh-s3cret"),
        ]))
        .unwrap();
        assert_eq!(c.api().unwrap().0, "https://gitea.example");
        let shown = format!("{c:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
    }

    #[test]
    fn half_a_setup_is_refused() {
        let e = GiteaConfig::from_env(&env_of(&[("ORCH_GITEA_URL", "https://g")]))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("ORCH_GITEA_TOKEN"), "{e}");
        let e = GiteaConfig::from_env(&env_of(&[("ORCH_GITEA_TOKEN", "gt-s3cret")]))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("ORCH_GITEA_URL") && !e.contains("s3cret"),
            "{e}"
        );
    }
}
