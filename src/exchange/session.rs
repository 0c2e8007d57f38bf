//! What one simulated user keeps between its tasks: its own client, its account and
//! tokens, its session id. Goose holds it as the user's session data.

use crate::transport::user_client::UserClient;
use goose::goose::GooseUser;
use std::time::Instant;

/// A test account the run created.
#[derive(Debug, Clone)]
pub struct Account {
    pub email: String,
    pub password: String,
    /// The server's id for the account, from its registration answer.
    pub id: Option<String>,
    /// Known to exist on the server: its registration or a login succeeded. Only such an
    /// account can fail to be cleaned up.
    pub exists: bool,
    /// Deleted through the GDPR endpoint (nothing left to clean up).
    pub deleted: bool,
}

#[derive(Debug, Clone)]
pub struct Tokens {
    pub access: String,
    pub refresh: String,
    /// When the access token is expected to expire, from `expires_in`.
    pub expires_at: Instant,
}

/// Everything one simulated user keeps between its tasks.
#[derive(Debug, Clone)]
pub struct UserSession {
    pub index: u64,
    /// The name of the user class it belongs to.
    pub class: &'static str,
    pub client: UserClient,
    pub session_id: String,
    pub forwarded_for: Option<String>,
    /// How many accounts this user has had (GDPR users start over after a deletion).
    pub generation: u32,
    pub account: Option<Account>,
    pub tokens: Option<Tokens>,
    /// Its class's on-start work is done and it was not refused: a stop from now on is a
    /// stop during the run, not a refusal at start.
    pub ready: bool,
    /// The user could not authenticate: its tasks do nothing until the run ends.
    pub stopped: bool,
    pub export_id: Option<String>,
    /// Accounts created by this user that were deleted or left (for cleanup counts).
    pub created_accounts: u64,
    /// Open model: the intended start of the task iteration under way; its first request
    /// takes it, and is timed from it.
    pub intended: Option<std::time::Instant>,
    /// Open model: the arrival that started this user, for its first task.
    pub first_arrival: Option<super::arrivals::Ticket>,
}

impl UserSession {
    pub fn access_token(&self) -> Option<&str> {
        self.tokens.as_ref().map(|t| t.access.as_str())
    }
}

/// The user's session, once its class's on-start work has set it up.
pub fn session(user: &GooseUser) -> Option<&UserSession> {
    user.get_session_data::<UserSession>()
}

/// The user's session, to change it.
pub fn session_mut(user: &mut GooseUser) -> Option<&mut UserSession> {
    user.get_session_data_mut::<UserSession>()
}

/// True when the user has stopped (it could not authenticate): its tasks are skipped until
/// the run ends.
pub fn is_stopped(user: &GooseUser) -> bool {
    session(user).is_some_and(|s| s.stopped)
}
