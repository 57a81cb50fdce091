//! Authorization server metadata (RFC 8414, OpenID Connect Discovery).

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Metadata {
    pub issuer: String,
    pub authorization_endpoint: String,
    pub token_endpoint: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revocation_endpoint: Option<String>,
    /// RFC 8628: where a device asks for a code to sign in with, if the server offers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device_authorization_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo_endpoint: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_supported: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_challenge_methods_supported: Option<Vec<String>>,
    #[serde(default)]
    pub authorization_response_iss_parameter_supported: bool,
    /// latchkeyd's account API, when the server is a latchkeyd.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latchkey_account_api: Option<String>,
    /// RFC 9449 §5.1: the proof algorithms the server accepts, if it supports DPoP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_signing_alg_values_supported: Option<Vec<String>>,
}

impl Metadata {
    /// Does the server take DPoP proofs signed the way this client signs them?
    pub fn supports_dpop(&self) -> bool {
        self.dpop_signing_alg_values_supported
            .as_ref()
            .is_some_and(|algs| algs.iter().any(|a| a == crate::dpop::ALG))
    }
}

/// Tokens and passwords cross only TLS, except to a server on this very machine: plain http is
/// for development against a loopback address (RFC 8252 §8.3, RFC 6749 §3.1 and §3.2).
pub fn check_transport(address: &str) -> Result<()> {
    let url = url::Url::parse(address)
        .map_err(|e| Error::Config(format!("{address:?} is not a URL: {e}")))?;
    let loopback = match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if loopback => Ok(()),
        _ => Err(Error::Config(format!(
            "the server's address must start with https:// ({address} is not; plain http is only for a server on this computer)"
        ))),
    }
}

/// Fetches the metadata: OpenID Connect's location first, then RFC 8414's.
pub async fn discover(http: &reqwest::Client, issuer: &str) -> Result<Metadata> {
    let issuer = issuer.trim_end_matches('/');
    check_transport(issuer)?;
    let mut last = String::new();
    for path in [
        "/.well-known/openid-configuration",
        "/.well-known/oauth-authorization-server",
    ] {
        let res = http.get(format!("{issuer}{path}")).send().await?;
        if !res.status().is_success() {
            last = format!("{path} answered {}", res.status());
            continue;
        }
        let meta: Metadata = res
            .json()
            .await
            .map_err(|e| Error::Server(format!("{issuer}{path} is not valid metadata: {e}")))?;
        // RFC 8414 §3.3: the metadata must name the issuer it was fetched for.
        if meta.issuer.trim_end_matches('/') != issuer {
            return Err(Error::Server(format!(
                "{issuer} says its issuer is {}; refusing to mix them up",
                meta.issuer
            )));
        }
        for endpoint in [
            Some(&meta.authorization_endpoint),
            Some(&meta.token_endpoint),
            meta.revocation_endpoint.as_ref(),
            meta.userinfo_endpoint.as_ref(),
            meta.latchkey_account_api.as_ref(),
        ]
        .into_iter()
        .flatten()
        {
            check_transport(endpoint)?;
        }
        if let Some(methods) = &meta.code_challenge_methods_supported {
            if !methods.iter().any(|m| m == "S256") {
                return Err(Error::Unsupported(format!(
                    "{issuer} does not support PKCE with S256"
                )));
            }
        }
        return Ok(meta);
    }
    Err(Error::Server(format!(
        "{issuer} publishes no authorization server metadata ({last})"
    )))
}

#[cfg(test)]
mod tests {
    use super::check_transport;

    #[test]
    fn plain_http_only_on_loopback() {
        for ok in [
            "https://login.example.com",
            "http://127.0.0.1:7878",
            "http://[::1]:7878/x",
            "http://localhost:7878",
        ] {
            assert!(check_transport(ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://login.example.com",
            "http://192.168.1.10:7878",
            "ftp://127.0.0.1",
            "not a url",
        ] {
            let e = check_transport(refused).unwrap_err().to_string();
            assert!(
                e.contains("https://") || e.contains("not a URL"),
                "{refused}: {e}"
            );
        }
    }
}
