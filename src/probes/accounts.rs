//! The probes' own accounts: registered and logged in for one probe, named after the run
//! (`lt-{run_id}-probe-{n}@loadtest.example.com`), deleted (or logged out) at its end.

use super::ProbeOutcome;
use super::call::Call;
use super::client::{Kit, ProbeClient};
use super::probe::Probe;
use super::reply::{ProbeReply, tokens_of};
use rand::Rng;
use serde_json::{Value, json};
use std::sync::atomic::Ordering;

/// A probe account with its tokens.
#[derive(Debug, Clone)]
pub(super) struct ProbeAccount {
    /// The account's id, when the registration answer gave one.
    pub id: Option<String>,
    pub email: String,
    pub password: String,
    pub access: String,
    pub refresh: String,
    /// Deleted already (nothing to clean up).
    pub deleted: bool,
}

impl Kit {
    /// A probe account's address and a password the API's policy accepts.
    fn new_credentials(&self) -> (String, String) {
        let n = self.next_account.fetch_add(1, Ordering::Relaxed);
        let email = format!("lt-{}-probe-{n}@loadtest.example.com", self.settings.run_id);
        let password = self.password("Pr0be-");
        (email, password)
    }

    /// A random password with `prefix`, remembered as a secret.
    pub fn password(&self, prefix: &str) -> String {
        const ALNUM: &[u8] = b"abcdefghijkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        let mut rng = rand::rng();
        let tail: String = (0..16)
            .map(|_| char::from(ALNUM[rng.random_range(0..ALNUM.len())]))
            .collect();
        let password = format!("{prefix}{tail}");
        self.keep_secret(&password);
        password
    }

    /// An address no account of this run has.
    pub fn unknown_email(&self) -> String {
        format!(
            "lt-{}-probe-nobody@loadtest.example.com",
            self.settings.run_id
        )
    }
}

impl<'k> Probe<'k> {
    /// The usual start of a probe: a client and a fresh probe account. `Err` is the
    /// outcome to return at once (not tested) when either cannot be had.
    pub async fn with_account(
        kit: &'k Kit,
        name: &'static str,
    ) -> Result<(Probe<'k>, ProbeClient, ProbeAccount), ProbeOutcome> {
        let mut p = Probe::new(kit, name);
        let Some(client) = p.client() else {
            return Err(p.finish());
        };
        match p.account_or_untested(&client).await {
            Some(account) => Ok((p, client, account)),
            None => Err(p.finish()),
        }
    }

    /// Registers a new probe account and logs in.
    pub async fn account(&mut self, client: &ProbeClient) -> Result<ProbeAccount, String> {
        let (email, password) = self.kit.new_credentials();
        let call = Call::post("/api/auth/register").json(json!({
            "email": email,
            "password": password,
            "full_name": "Security Probe",
        }));
        let answer = self.ask(client, &call).await;
        if let Some(why) = Probe::setup_refused("registering a probe account", &answer) {
            return Err(why);
        }
        if !answer.is_success() {
            return Err(format!(
                "registering a probe account was refused ({})",
                answer.describe()
            ));
        }
        let id = answer.json.as_ref().and_then(|v| match v.get("id")? {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        });
        let (_, answer) = self.login(client, &email, &password).await;
        match tokens_of(&answer) {
            Some((access, refresh)) => Ok(ProbeAccount {
                id,
                email,
                password,
                access,
                refresh,
                deleted: false,
            }),
            None => Err(
                Probe::setup_refused("logging in to a new probe account", &answer).unwrap_or_else(
                    || {
                        format!(
                            "logging in to a new probe account failed ({})",
                            answer.describe()
                        )
                    },
                ),
            ),
        }
    }

    /// A probe account, or `None` with the probe marked not tested.
    pub async fn account_or_untested(&mut self, client: &ProbeClient) -> Option<ProbeAccount> {
        match self.account(client).await {
            Ok(account) => Some(account),
            Err(why) => {
                self.not_tested(&why);
                None
            }
        }
    }

    pub fn login_call(email: &str, password: &str) -> Call {
        Call::post("/api/auth/login/json").json(json!({"email": email, "password": password}))
    }

    pub async fn login(
        &mut self,
        client: &ProbeClient,
        email: &str,
        password: &str,
    ) -> (Call, ProbeReply) {
        let call = Probe::login_call(email, password);
        let answer = self.ask(client, &call).await;
        (call, answer)
    }

    /// Deletes the probe account (or only logs out with `keep_accounts`). A failure is
    /// noted, never a finding.
    pub async fn remove(&mut self, client: &ProbeClient, account: &ProbeAccount) {
        if account.deleted {
            return;
        }
        let call = if self.kit.settings.keep_accounts {
            Call::post("/api/auth/logout").json(json!({"refresh_token": account.refresh}))
        } else {
            Call::post("/api/gdpr/delete")
                .json(json!({"confirm": true, "reason": "security probe cleanup"}))
        }
        .bearer(&account.access);
        let answer = self.ask(client, &call).await;
        if !answer.is_success() {
            self.note(format!(
                "cleanup: {} {} for the probe account answered {}",
                call.method,
                call.path,
                answer.describe()
            ));
        }
    }
}
