//! The server's own metrics through the run (`--server-metrics-url`): each chosen series'
//! values at every scrape, on the run's time axis, and what kept any of it from being read.

use serde::{Deserialize, Serialize};

/// What the scrapes of the server's Prometheus endpoint gave.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerMetrics {
    /// The endpoint scraped.
    pub url: String,
    /// Seconds between two scrapes.
    pub interval_secs: f64,
    /// Scrapes that answered Prometheus text...
    pub scrapes: u64,
    /// ... and the ones that did not (no answer, an error status, another format).
    pub failed_scrapes: u64,
    /// Why scrapes failed, each reason once, in words.
    pub notes: Vec<String>,
    /// One per series asked for, in the order asked.
    pub series: Vec<ServerSeries>,
}

/// One series of the server, as asked for.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ServerSeries {
    /// The selector asked for: a series name with optional label matchers, e.g.
    /// `lva_http_requests_total{status="429"}`.
    pub selector: String,
    /// What the report calls it, e.g. `CPU`.
    pub title: String,
    /// A counter, shown as its rate per second between two scrapes (CPU seconds per second:
    /// cores busy); otherwise the value as scraped.
    pub rate: bool,
    /// Scrapes whose text had a sample matching the selector.
    pub found: u64,
    /// The values (all matching samples added up; a rate from the second scrape on), at
    /// seconds into the measured run.
    pub points: Vec<ServerPoint>,
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ServerPoint {
    pub t_secs: f64,
    pub value: f64,
}

impl ServerMetrics {
    /// The note a report shows about what is missing, when anything is: no scrape worked, or
    /// series the server does not expose.
    pub fn missing(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.scrapes == 0 {
            parts.push(format!(
                "no scrape of {} worked ({}); the run went on without the server's metrics",
                self.url,
                if self.notes.is_empty() {
                    "the run ended before the first".to_string()
                } else {
                    self.notes.join("; ")
                }
            ));
        } else {
            if self.failed_scrapes > 0 {
                parts.push(format!(
                    "{} of {} scrapes failed ({})",
                    self.failed_scrapes,
                    self.scrapes + self.failed_scrapes,
                    self.notes.join("; ")
                ));
            }
            let absent: Vec<&str> = self
                .series
                .iter()
                .filter(|s| s.found == 0)
                .map(|s| s.selector.as_str())
                .collect();
            if !absent.is_empty() {
                parts.push(format!("not exposed by the server: {}", absent.join(", ")));
            }
        }
        (!parts.is_empty()).then(|| parts.join(". "))
    }
}
