//! HTTPS and WSS for the reference server (`--tls-cert`, `--tls-key`): a listener that hands
//! axum connections whose TLS handshake is done, so a staging-like server with a self-signed
//! or private-CA certificate can be tested for real.

use super::config::TlsFiles;
use super::error::ServerError;
use axum::serve::Listener;
use rustls::ServerConfig as TlsServerConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its handshake before it is dropped.
const HANDSHAKE_LIMIT: Duration = Duration::from_secs(10);

/// Reads the certificate chain and key into a server configuration (HTTP/1.1).
pub(crate) fn server_config(files: &TlsFiles) -> Result<Arc<TlsServerConfig>, ServerError> {
    let bad = |what: &str, e: &dyn std::fmt::Display| {
        ServerError::Config(format!("cannot read the TLS {what}: {e}"))
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| bad("certificate (--tls-cert)", &format!("{e:?}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad("certificate (--tls-cert)", &format!("{e:?}")))?;
    if certs.is_empty() {
        return Err(ServerError::Config(
            "--tls-cert holds no certificate".to_string(),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| bad("key (--tls-key)", &format!("{e:?}")))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = TlsServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(certs, key))
        .map_err(|e| bad("certificate and key", &e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Connections of the listener `L` that finished their handshake, for axum.
pub(crate) struct TlsListener<L: Listener> {
    ready: mpsc::Receiver<(TlsStream<L::Io>, SocketAddr)>,
    local: SocketAddr,
}

impl<L: Listener<Addr = SocketAddr>> TlsListener<L> {
    /// Accepts connections from `listener` and shakes hands with each on its own task, so
    /// that a slow client does not hold the others back.
    pub(crate) fn new(mut listener: L, config: Arc<TlsServerConfig>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (ready_tx, ready) = mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (connection, peer) = listener.accept().await;
                if ready_tx.is_closed() {
                    return;
                }
                let (acceptor, ready) = (acceptor.clone(), ready_tx.clone());
                tokio::spawn(async move {
                    if let Ok(Ok(tls)) =
                        tokio::time::timeout(HANDSHAKE_LIMIT, acceptor.accept(connection)).await
                    {
                        let _ = ready.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

impl<L: Listener<Addr = SocketAddr>> Listener for TlsListener<L> {
    type Io = TlsStream<L::Io>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(connection) => connection,
            // The acceptor only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
