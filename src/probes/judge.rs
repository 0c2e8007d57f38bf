//! How an answer becomes a finding: a judge reads one answer into a `Ruling`; a flaw is
//! sent again on a fresh connection of the same source and reported only when it shows
//! again (`Probe::check`, `settle`), and findings of one cause are one finding.

use super::call::Call;
use super::client::ProbeClient;
use super::probe::Probe;
use super::reply::ProbeReply;
use super::{Finding, Severity};

/// A judge's ruling on one answer: what it shows. (The run's `verdict::Verdict` judges a
/// whole run; a ruling is one answer's, before it is confirmed.)
pub(super) enum Ruling {
    /// As it should be; the note (if any) says what was seen.
    Sound(Option<String>),
    /// It could not be judged (rate limited, no answer): noted, never a finding.
    Unchecked(Option<String>),
    /// It shows a flaw: reported once it shows again on a fresh connection.
    Flaw {
        severity: Severity,
        meaning: String,
        /// The part of the body that shows the flaw, when not its start.
        evidence: Option<String>,
    },
}

impl Ruling {
    pub fn flaw(severity: Severity, meaning: impl Into<String>) -> Ruling {
        Ruling::Flaw {
            severity,
            meaning: meaning.into(),
            evidence: None,
        }
    }

    pub fn sound(note: impl Into<String>) -> Ruling {
        Ruling::Sound(Some(note.into()))
    }

    pub fn unchecked(note: impl Into<String>) -> Ruling {
        Ruling::Unchecked(Some(note.into()))
    }
}

/// How one check settled, once a flaw was (or was not) confirmed on a fresh connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Settled {
    Sound,
    Unchecked,
    /// A flaw, seen twice: reported.
    Found,
    /// A flaw seen once, not again on a fresh connection: noted, not reported.
    Unconfirmed,
}

/// The usual judge of a request that must be refused (a 4xx): accepted is a finding of
/// `severity` meaning `meaning`; a server error a low finding; rate limited or unanswered,
/// not checked.
pub(super) fn refused(
    what: &str,
    severity: Severity,
    meaning: &str,
) -> impl Fn(&ProbeReply) -> Ruling + use<> {
    let (what, meaning) = (what.to_string(), meaning.to_string());
    move |answer: &ProbeReply| match answer.status {
        _ if answer.is_refusal() => Ruling::sound(format!("refused ({})", answer.describe())),
        Some(429) => Ruling::unchecked("rate limited (429), not checked"),
        Some(s) if s < 400 => Ruling::flaw(severity, meaning.clone()),
        Some(s) => Ruling::flaw(
            Severity::Low,
            format!("{what} got a server error ({s}) instead of a clean refusal."),
        ),
        None => Ruling::unchecked(format!("not checked, {}", answer.describe())),
    }
}

impl Probe<'_> {
    /// Asks `call` and judges the answer with `judge`; a flaw is reported only when a
    /// fresh connection shows it again (see [`Probe::settle`]).
    pub async fn check(
        &mut self,
        client: &ProbeClient,
        call: &Call,
        what: &str,
        judge: impl Fn(&ProbeReply) -> Ruling,
    ) -> (ProbeReply, Settled) {
        let answer = self.ask(client, call).await;
        let settled = self.settle(client, call, what, &answer, judge).await;
        (answer, settled)
    }

    /// Judges `answer`, already had for `call`. A flaw is sent again on a fresh connection
    /// of the same source and reported (with that second answer) only when the second
    /// answer shows the same flaw; otherwise it is noted as not confirmed.
    pub async fn settle(
        &mut self,
        client: &ProbeClient,
        call: &Call,
        what: &str,
        answer: &ProbeReply,
        judge: impl Fn(&ProbeReply) -> Ruling,
    ) -> Settled {
        match judge(answer) {
            Ruling::Flaw { severity, .. } => {
                let again = self.send_fresh(client, call).await;
                self.confirm(call, what, answer, &again, severity, judge)
            }
            ruling => self.record(what, ruling),
        }
    }

    /// `call` must be refused: [`refused`] as the judge.
    pub async fn expect_refused(
        &mut self,
        client: &ProbeClient,
        call: &Call,
        what: &str,
        severity: Severity,
        meaning: &str,
    ) -> Settled {
        let judge = refused(what, severity, meaning);
        self.check(client, call, what, judge).await.1
    }

    pub fn record(&mut self, what: &str, ruling: Ruling) -> Settled {
        match ruling {
            Ruling::Sound(note) => {
                if let Some(note) = note {
                    self.note(format!("{what}: {note}"));
                }
                Settled::Sound
            }
            Ruling::Unchecked(note) => {
                if let Some(note) = note {
                    self.note(format!("{what}: {note}"));
                }
                Settled::Unchecked
            }
            Ruling::Flaw { .. } => Settled::Found,
        }
    }

    /// Reports a flaw the probe has established (seen twice, the second time in `answer`
    /// on a fresh connection, or seen by its effect), shown by `input` (what the request
    /// sent, in words). Findings are by cause: a flaw of the same endpoint, severity and
    /// meaning as one already reported adds its input to that finding.
    pub fn report(
        &mut self,
        severity: Severity,
        call: &Call,
        answer: &ProbeReply,
        meaning: &str,
        input: &str,
    ) {
        self.add_finding(severity, call, answer, meaning, input, None);
    }

    /// [`Probe::report`], showing `evidence` (when given) as the answer's body of a new
    /// finding.
    fn add_finding(
        &mut self,
        severity: Severity,
        call: &Call,
        answer: &ProbeReply,
        meaning: &str,
        input: &str,
        evidence: Option<String>,
    ) {
        let endpoint = call.endpoint();
        // A `what` that ends naming the endpoint ("limit 0 on POST /api/search") is shown
        // as its input alone, under the finding's endpoint.
        let input = input
            .strip_suffix(endpoint.as_str())
            .and_then(|i| i.strip_suffix(" on "))
            .unwrap_or(input);
        let same = self
            .findings
            .iter_mut()
            .find(|f| f.severity == severity && f.endpoint == endpoint && f.meaning == meaning);
        if let Some(finding) = same {
            if !finding.inputs.iter().any(|i| i == input) {
                finding.inputs.push(input.to_string());
            }
            return;
        }
        let mut answer = answer.record();
        if let Some(evidence) = evidence {
            answer.body = evidence;
        }
        self.findings.push(Finding {
            probe: self.name.to_string(),
            severity,
            endpoint,
            inputs: vec![input.to_string()],
            request: call.record(),
            answer,
            meaning: meaning.to_string(),
        });
    }

    /// A flaw of `severity` was seen in `first`; `again` is the same request's answer on
    /// a fresh connection. Reported only when `again` shows the same flaw.
    pub fn confirm(
        &mut self,
        call: &Call,
        what: &str,
        first: &ProbeReply,
        again: &ProbeReply,
        severity: Severity,
        judge: impl Fn(&ProbeReply) -> Ruling,
    ) -> Settled {
        match judge(again) {
            Ruling::Flaw {
                severity: seen,
                meaning,
                evidence,
            } if seen == severity => {
                self.add_finding(severity, call, again, &meaning, what, evidence);
                Settled::Found
            }
            _ => {
                self.note(format!(
                    "{what}: answered {} once, then {} on a fresh connection: not confirmed, not reported",
                    first.describe(),
                    again.describe()
                ));
                Settled::Unconfirmed
            }
        }
    }
}
