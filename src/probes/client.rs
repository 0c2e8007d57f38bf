//! The probes' own clients: each with its own source address and forwarded-for address, so
//! that it has a rate-limit budget of its own, apart from the simulated users'. `Kit` is what
//! the probes of one run share: these clients, and (in `accounts` and `redact`) the probe
//! accounts' numbering and the secrets to keep out of every output.

use super::ProbeSettings;
use crate::exchange::context::{DOCUMENTATION_ADDRESSES, documentation_address};
use crate::transport::{http_client, loopback_source};
use reqwest::Client;
use rustls::ClientConfig;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Who a probe client is to the server: its source address and its `X-Forwarded-For`.
/// A fresh client of the same source keeps both, and so its rate-limit budget.
#[derive(Debug, Clone, Default)]
pub(super) struct Source {
    pub(super) local: Option<IpAddr>,
    pub(super) forwarded_for: Option<String>,
}

/// An HTTP client of a probe, with its source.
pub(super) struct ProbeClient {
    pub(super) http: Client,
    pub(super) source: Source,
}

/// Shared by the probes of one run.
pub(super) struct Kit {
    pub(super) settings: ProbeSettings,
    pub(super) base: String,
    pub(super) tls: Arc<ClientConfig>,
    next_source: AtomicU64,
    /// Numbers the probe accounts (see `accounts`).
    pub(super) next_account: AtomicU64,
    /// Every password and token the probes used (see `redact`).
    pub(super) secrets: Mutex<Vec<String>>,
}

impl Kit {
    pub fn new(settings: ProbeSettings, tls: Arc<ClientConfig>) -> Kit {
        let base = settings.host.as_str().trim_end_matches('/').to_string();
        Kit {
            settings,
            base,
            tls,
            next_source: AtomicU64::new(1),
            next_account: AtomicU64::new(1),
            secrets: Mutex::new(Vec::new()),
        }
    }

    /// True when every client is a client of its own to the server (its own loopback
    /// source address, or its own forwarded-for address), so that it has its own
    /// rate-limit budget, apart from the simulated users'.
    pub fn own_sources(&self) -> bool {
        self.settings.source_base.is_some() || self.settings.forwarded_for_pool.is_some()
    }

    /// True when every client sends an `X-Forwarded-For` of its own (the users do too).
    pub fn sends_forwarded_for(&self) -> bool {
        self.settings.forwarded_for_pool.is_some()
    }

    /// A new client with a new source of its own (when the settings give the probes any).
    pub fn client(&self) -> Result<ProbeClient, String> {
        let n = self.next_source.fetch_add(1, Ordering::Relaxed);
        let source = Source {
            local: self
                .settings
                .source_base
                .map(|base| loopback_source(base + n)),
            forwarded_for: self
                .settings
                .forwarded_for_pool
                .map(|_| self.probe_address(n)),
        };
        self.client_from(source)
    }

    /// A new client, so a new connection, of the same source as `client`.
    pub fn fresh(&self, client: &ProbeClient) -> Result<ProbeClient, String> {
        self.client_from(client.source.clone())
    }

    fn client_from(&self, source: Source) -> Result<ProbeClient, String> {
        let http = http_client(&self.tls, Some(self.settings.timeout), source.local)
            .map_err(|e| format!("could not build a probe client: {e}"))?;
        Ok(ProbeClient { http, source })
    }

    /// An address no user and no other probe client sends as `X-Forwarded-For`.
    pub fn spare_address(&self) -> String {
        self.probe_address(self.next_source.fetch_add(1, Ordering::Relaxed))
    }

    /// The probes' `n`-th forwarded-for address (from 1): documentation addresses counted
    /// from the end, past the ones the users' pool takes from the start; once those run
    /// out, IPv6 documentation addresses (RFC 3849), which no user sends.
    fn probe_address(&self, n: u64) -> String {
        let users = self
            .settings
            .forwarded_for_pool
            .map_or(0, |pool| u64::from(pool).min(DOCUMENTATION_ADDRESSES));
        if n <= DOCUMENTATION_ADDRESSES - users {
            documentation_address(DOCUMENTATION_ADDRESSES - n).to_string()
        } else {
            Ipv6Addr::new(0x2001, 0xdb8, 0x10ad, 0, 0, 0, (n >> 16) as u16, n as u16).to_string()
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use url::Url;

    #[test]
    fn probe_addresses_stay_apart_from_the_users_pool() {
        let kit = |pool: Option<u32>| {
            let mut settings = ProbeSettings::new(Url::parse("http://127.0.0.1:1").expect("url"));
            settings.forwarded_for_pool = pool;
            let tls = crate::transport::tls_config(&crate::transport::TlsOptions::default())
                .expect("tls");
            Kit::new(settings, Arc::new(tls))
        };
        // From the end of the documentation addresses, where a pool of 10 never reaches.
        let k = kit(Some(10));
        assert_eq!(k.probe_address(1), "203.0.113.254");
        let users: Vec<String> = (0..10)
            .map(|n| documentation_address(n).to_string())
            .collect();
        for n in 1..=752 {
            assert!(!users.contains(&k.probe_address(n)), "{n}");
        }
        // Past what the pool leaves, and with a pool that takes them all: IPv6.
        assert_eq!(k.probe_address(753), "2001:db8:10ad::2f1");
        assert_eq!(kit(Some(5000)).probe_address(1), "2001:db8:10ad::1");
        assert!(kit(Some(10)).own_sources() && kit(None).own_sources());
        let client = k.client().expect("client");
        assert_eq!(
            client.source.forwarded_for.as_deref(),
            Some("203.0.113.254")
        );
        let fresh = k.fresh(&client).expect("fresh");
        assert_eq!(fresh.source.forwarded_for, client.source.forwarded_for);
        assert_eq!(fresh.source.local, client.source.local);
    }
}
