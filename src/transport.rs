//! How the tool reaches a server: HTTP clients built from one shared TLS configuration,
//! per-user loopback source addresses, and transport errors described in words.

use rustls::ClientConfig;
use rustls_platform_verifier::BuilderVerifierExt;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// An HTTP client from a shared TLS configuration: one keep-alive connection, no cookies,
/// no redirects followed, and optionally its own source address.
pub fn http_client(
    tls: &ClientConfig,
    timeout: Option<Duration>,
    source: Option<IpAddr>,
) -> Result<reqwest::Client, reqwest::Error> {
    let mut builder = reqwest::Client::builder()
        .tls_backend_preconfigured(tls.clone())
        .user_agent(concat!("lva-loadtest/", env!("CARGO_PKG_VERSION")))
        .pool_max_idle_per_host(1)
        .tcp_nodelay(true)
        .cookie_store(false)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(timeout) = timeout {
        builder = builder.timeout(timeout);
    }
    if let Some(source) = source {
        builder = builder.local_address(source);
    }
    builder.build()
}

/// The WebSocket URL of `path` on the HTTP base URL `base`: `ws://` or `wss://` after its
/// scheme.
pub fn ws_url_of(base: &str, path: &str) -> String {
    let rest = base
        .strip_prefix("https://")
        .map(|r| format!("wss://{r}"))
        .or_else(|| base.strip_prefix("http://").map(|r| format!("ws://{r}")))
        .unwrap_or_else(|| base.to_string());
    format!("{rest}{path}")
}

/// Source address of user `index` on the loopback network: 127.0.x.y, never 127.0.0.1
/// (kept for everything else on the machine) nor a broadcast-looking .0 or .255.
pub fn loopback_source(index: u64) -> IpAddr {
    let n = index % (250 * 250);
    let (hi, lo) = (n / 250, n % 250);
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (hi / 250) as u8,
        (hi % 250) as u8,
        2 + lo as u8,
    ))
}

/// The TLS configuration of every client of a run: the platform's certificate verifier,
/// HTTP/1.1 only.
pub fn tls_config() -> Result<ClientConfig, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS setup failed: {e}"))?
        .with_platform_verifier()
        .map_err(|e| format!("TLS certificate verifier setup failed: {e}"))?
        .with_no_client_auth();
    // Goose's reqwest speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// True when the URL's host is this machine's loopback.
pub fn is_loopback_host(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d == "localhost",
        None => false,
    }
}

/// The innermost cause of an error: what the operating system or the peer said.
pub fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cause = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_sources_are_distinct_and_never_127_0_0_1() {
        let mut seen = std::collections::HashSet::new();
        for i in 1..=5000 {
            let ip = loopback_source(i);
            assert_ne!(ip, IpAddr::V4(Ipv4Addr::LOCALHOST));
            assert!(ip.is_loopback());
            assert!(seen.insert(ip), "{ip} repeated");
        }
    }

    #[test]
    fn loopback_hosts_are_recognised() {
        assert!(is_loopback_host(
            &Url::parse("http://[::1]:1").expect("url")
        ));
        assert!(is_loopback_host(
            &Url::parse("http://localhost:1").expect("url")
        ));
        assert!(!is_loopback_host(
            &Url::parse("https://example.com").expect("url")
        ));
    }
}
