//! The pre-flight check: `HOST/health` must answer before any traffic is sent.

use super::HostError;
use crate::transport::{TlsOptions, explain_tls, http_client, root_cause, tls_config, tls_failure};
use std::time::Duration;
use url::Url;

/// Calls `HOST/health` with the run's TLS settings: unreachable is a configuration error
/// (a refused certificate is explained, with the way out); another status a warning.
pub async fn preflight(host: &Url, tls: &TlsOptions) -> Result<(), HostError> {
    let url = format!("{}/health", host.as_str().trim_end_matches('/'));
    let config = tls_config(tls).map_err(|e| HostError::Preflight(e.to_string()))?;
    let client = http_client(&config, Some(Duration::from_secs(10)), None)
        .map_err(|e| HostError::Preflight(format!("cannot build the pre-flight client: {e}")))?;
    match client.get(&url).send().await {
        Ok(r) if r.status() == reqwest::StatusCode::OK => Ok(()),
        Ok(r) => {
            errln!(
                "warning: pre-flight GET {url} answered {} (expected 200); the run goes on",
                r.status()
            );
            Ok(())
        }
        Err(e) => {
            if let Some(tls) = tls_failure(&e) {
                return Err(HostError::Preflight(format!(
                    "pre-flight check failed: GET {url}: {}",
                    explain_tls(tls)
                )));
            }
            let why = if e.is_timeout() {
                "timed out after 10 s".to_string()
            } else if e.is_connect() {
                format!("could not connect ({})", root_cause(&e))
            } else {
                root_cause(&e)
            };
            if !e.is_connect()
                && let Some(https) = speaks_tls(host).await
            {
                return Err(HostError::Preflight(format!(
                    "pre-flight check failed: GET {url}: {why}. The server speaks HTTPS at \
                     this address: use --host {https}"
                )));
            }
            Err(HostError::Preflight(format!(
                "pre-flight check failed: GET {url}: {why}. Is the server running at that address? \
                 (--skip-preflight runs anyway)"
            )))
        }
    }
}

/// For an `http://` host whose answer made no sense: the same address as `https://` when a
/// TLS server answers there (its certificate unchecked: this only tells what it speaks).
async fn speaks_tls(host: &Url) -> Option<Url> {
    if host.scheme() != "http" {
        return None;
    }
    let mut https = host.clone();
    let port = host.port_or_known_default()?;
    https.set_scheme("https").ok()?;
    https.set_port(Some(port)).ok()?;
    let any_certificate = TlsOptions {
        insecure: true,
        ..TlsOptions::default()
    };
    let config = tls_config(&any_certificate).ok()?;
    let client = http_client(&config, Some(Duration::from_secs(5)), None).ok()?;
    let url = format!("{}/health", https.as_str().trim_end_matches('/'));
    client.get(&url).send().await.ok().map(|_| https)
}
