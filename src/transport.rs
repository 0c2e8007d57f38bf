//! How the tool reaches a server: HTTP clients built from one shared TLS configuration
//! (each simulated user's own in [`user_client`]), per-user loopback source addresses, and
//! transport errors described in words.

pub mod user_client;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::BuilderVerifierExt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
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

/// How many loopback source addresses there are for users: `127.a.b.c` with `a` from 1 to
/// 254, `b` any, and `c` from 2 to 254 (127.0.x.x, which holds 127.0.0.1, is kept for
/// everything else on the machine; `.0`, `.1` and `.255` endings are left out).
pub const LOOPBACK_SOURCES: u64 = 254 * 256 * 253;

/// Loopback source address number `n` (taken modulo [`LOOPBACK_SOURCES`]). A run numbers
/// its users from a random offset, so back-to-back runs use other addresses and never
/// inherit each other's per-client rate-limit budget.
pub fn loopback_source(n: u64) -> IpAddr {
    let n = n % LOOPBACK_SOURCES;
    IpAddr::V4(Ipv4Addr::new(
        127,
        1 + (n / (256 * 253)) as u8,
        ((n / 253) % 256) as u8,
        2 + (n % 253) as u8,
    ))
}

/// How the run's clients trust servers: the platform's certificate store, plus a private CA
/// (`--ca-cert`), or nothing at all (`--insecure`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsOptions {
    /// A PEM file of CA certificates trusted beside the platform's.
    pub ca_cert: Option<PathBuf>,
    /// Accept any certificate; the handshake's signatures are still checked.
    pub insecure: bool,
}

/// Why the TLS configuration could not be built: a configuration error, found before any
/// traffic.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("--ca-cert {}: {reason} (give a PEM file of CA certificates)", path.display())]
    CaCert { path: PathBuf, reason: String },
    #[error("TLS setup failed: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The TLS configuration of every client of a run: the platform's verifier (with the extra
/// CA, or none with `--insecure`), HTTP/1.1 only.
pub fn tls_config(options: &TlsOptions) -> Result<ClientConfig, TlsSetupError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = if options.insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else if let Some(path) = &options.ca_cert {
        let extra = read_ca_certs(path)?;
        let verifier =
            rustls_platform_verifier::Verifier::new_with_extra_roots(extra.clone(), provider)?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(OwnCertificate {
                pinned: extra,
                inner: verifier,
            }))
    } else {
        builder.with_platform_verifier()?
    };
    let mut config = builder.with_no_client_auth();
    // Goose's reqwest speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

fn read_ca_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsSetupError> {
    let bad = |reason: String| TlsSetupError::CaCert {
        path: path.to_path_buf(),
        reason,
    };
    let pem = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("not a PEM certificate file ({e:?})")))?;
    if certs.is_empty() {
        return Err(bad("it holds no certificate".into()));
    }
    Ok(certs)
}

/// `--ca-cert FILE`: the CAs in FILE beside the system's, and, as curl does, a server whose
/// own certificate is one of FILE's (a self-signed certificate, `CA:TRUE` or not: a chain
/// verifier refuses both, the first as its own unknown issuer, the second as a CA used as an
/// end entity). Such a certificate is trusted as given, byte for byte; its names must still
/// cover the host.
#[derive(Debug)]
struct OwnCertificate {
    pinned: Vec<CertificateDer<'static>>,
    inner: rustls_platform_verifier::Verifier,
}

impl ServerCertVerifier for OwnCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if self
            .pinned
            .iter()
            .any(|c| c.as_ref() == end_entity.as_ref())
        {
            let parsed = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_name(&parsed, server_name)?;
            return Ok(ServerCertVerified::assertion());
        }
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// `--insecure`: any certificate is accepted, but the handshake is still signed with the
/// certificate's key, so the connection is encrypted to whoever holds it.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// The TLS error inside a transport error, when the failure was the handshake's.
pub fn tls_failure<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(e);
    while let Some(error) = cause {
        if let Some(tls) = error.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        // An I/O error's `source()` skips the error it wraps (which may be another I/O
        // error around the TLS one): follow what it holds instead.
        cause = match error
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
        {
            Some(inner) => Some(inner as &(dyn std::error::Error + 'static)),
            None => error.source(),
        };
    }
    None
}

/// A failed TLS handshake in words, with the way out.
pub fn explain_tls(error: &rustls::Error) -> String {
    use rustls::{CertificateError, Error, OtherError};
    let way_out = "pass --ca-cert FILE (PEM: the CA's certificate, or the server's own \
                   self-signed one) or --insecure";
    match error {
        Error::InvalidCertificate(CertificateError::UnknownIssuer) => format!(
            "the server's certificate is self-signed or signed by a CA this machine does not \
             trust: {way_out}"
        ),
        Error::InvalidCertificate(CertificateError::Other(OtherError(other)))
            if format!("{other:?}").contains("CaUsedAsEndEntity") =>
        {
            format!(
                "the server's certificate is self-signed (a CA certificate used as its own): {way_out}"
            )
        }
        Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the server's certificate is for another name than the host's: use the name it \
              was issued for, or --insecure"
            .to_string(),
        Error::InvalidCertificate(
            CertificateError::Expired | CertificateError::ExpiredContext { .. },
        ) => "the server's certificate has expired: renew it, or pass --insecure".to_string(),
        Error::InvalidCertificate(other) => {
            format!("the server's certificate was refused ({other:?}): {way_out}")
        }
        Error::InvalidMessage(_) => {
            "the server did not answer in TLS: is it plain http:// on this port?".to_string()
        }
        other => format!("the TLS handshake failed: {other}"),
    }
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
    fn a_tls_error_is_found_inside_nested_io_errors() {
        let tls = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let inner = std::io::Error::new(std::io::ErrorKind::InvalidData, tls);
        let outer = std::io::Error::other(inner);
        let found = tls_failure(&outer).expect("found");
        assert!(explain_tls(found).contains("--ca-cert FILE"));
        assert!(tls_failure(&std::io::Error::other("plain")).is_none());
    }

    #[test]
    fn loopback_sources_are_distinct_and_never_127_0_0_1() {
        let mut seen = std::collections::HashSet::new();
        // Across the wrap from the last address back to the first, too.
        for i in (LOOPBACK_SOURCES - 2500)..(LOOPBACK_SOURCES + 2500) {
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
