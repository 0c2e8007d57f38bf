//! The server's own metrics beside the run (`--server-metrics-url URL`): its Prometheus
//! endpoint, scraped on a task of its own every `--server-metrics-interval` while the run
//! goes, the chosen series kept in the ledger on the run's time axis (see
//! [`crate::measure::ServerMetrics`]).
//!
//! A server without such an endpoint costs the run nothing but a note: a refused
//! connection, an error status or a text that is not Prometheus's is said once on the
//! console and kept for the report, and the run goes on.

pub mod text;

use crate::measure::{Ledger, ServerMetrics, ServerPoint, ServerSeries};
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// The series scraped when the user names none beside them: CPU, memory, requests in
/// flight and the database pool (the reference server's names; others are noted absent).
pub const DEFAULT_SERIES: [(&str, &str); 5] = [
    ("process_cpu_seconds_total", "CPU"),
    (MEMORY, "Memory (RSS)"),
    ("lva_http_requests_in_flight", "Requests in flight"),
    ("lva_db_pool_in_use", "DB pool in use"),
    ("lva_db_pool_waiting", "DB pool waiting"),
];

/// The series the memory-stability check can read.
pub const MEMORY: &str = "process_resident_memory_bytes";

/// Where the endpoint is: a URL, or the built-in server's `/metrics` (known once started).
#[derive(Debug, Clone, PartialEq)]
pub enum Endpoint {
    Url(Url),
    Builtin,
}

/// A series asked for: its name and the labels a sample must have (all samples that match
/// are added up).
#[derive(Debug, Clone, PartialEq)]
pub struct Selector {
    pub name: String,
    pub labels: Vec<(String, String)>,
    /// As written, for the outputs.
    pub text: String,
    pub title: String,
}

impl Selector {
    /// `NAME` or `NAME{label="value",...}`.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let text = text.trim();
        let bad = || {
            format!(
                "--server-metric {text:?}: give a series name, optionally with exact label \
                 matchers, e.g. process_open_fds or http_requests_total{{code=\"500\"}}"
            )
        };
        let (name, labels) = match text.split_once('{') {
            Some((name, rest)) => {
                let (labels, after) = text::label_set(rest).ok_or_else(bad)?;
                if !after.trim().is_empty() {
                    return Err(bad());
                }
                (name, labels)
            }
            None => (text, Vec::new()),
        };
        let valid_name = name.chars().enumerate().all(|(i, c)| {
            c.is_ascii_alphabetic() || c == '_' || c == ':' || (i > 0 && c.is_ascii_digit())
        });
        if name.is_empty() || !valid_name {
            return Err(bad());
        }
        Ok(Selector {
            name: name.to_string(),
            labels,
            text: text.to_string(),
            title: text.to_string(),
        })
    }

    fn matches(&self, sample: &text::Sample) -> bool {
        sample.name == self.name
            && self
                .labels
                .iter()
                .all(|want| sample.labels.iter().any(|have| have == want))
    }
}

/// What the plan says about the server's metrics.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerMetricsPlan {
    pub endpoint: Endpoint,
    pub interval: Duration,
    pub series: Vec<Selector>,
}

impl ServerMetricsPlan {
    /// From the options: `url` (`builtin` for the built-in server's own), the interval, and
    /// the series named beside the defaults. `has_host`: a `--host` was given.
    pub fn from_options(
        url: &str,
        interval: &str,
        named: &[String],
        has_host: bool,
    ) -> Result<ServerMetricsPlan, String> {
        let endpoint = if url == "builtin" {
            if has_host {
                return Err(
                    "--server-metrics-url builtin names the built-in server's /metrics, and \
                     --host tests another server: give that server's metrics URL instead"
                        .into(),
                );
            }
            Endpoint::Builtin
        } else {
            let parsed = Url::parse(url).map_err(|e| {
                format!(
                    "--server-metrics-url {url:?}: {e} (give http://HOST:PORT/metrics, or \
                     builtin for the built-in server's)"
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                return Err(format!(
                    "--server-metrics-url {url:?}: only http:// and https:// are scraped"
                ));
            }
            Endpoint::Url(parsed)
        };
        let interval = crate::duration::parse_duration(interval)
            .map_err(|e| format!("--server-metrics-interval: {e}"))?;
        if interval < Duration::from_millis(100) {
            return Err(format!(
                "--server-metrics-interval {}: scrape at most ten times a second (give 100ms or \
                 more; 5s is usual)",
                crate::duration::HumanDuration(interval)
            ));
        }
        let mut series: Vec<Selector> = DEFAULT_SERIES
            .iter()
            .map(|(name, title)| Selector {
                name: name.to_string(),
                labels: Vec::new(),
                text: name.to_string(),
                title: title.to_string(),
            })
            .collect();
        for text in named {
            let selector = Selector::parse(text)?;
            if !series.iter().any(|s| s.text == selector.text) {
                series.push(selector);
            }
        }
        Ok(ServerMetricsPlan {
            endpoint,
            interval,
            series,
        })
    }

    /// The URL scraped, for a run against `host`.
    pub fn url(&self, host: &Url) -> Url {
        match &self.endpoint {
            Endpoint::Url(url) => url.clone(),
            Endpoint::Builtin => host.join("/metrics").unwrap_or_else(|_| host.clone()),
        }
    }

    /// Scrapes into `ledger` (the first scrape at once) until the returned task is aborted;
    /// with `memory`, each scrape's resident memory is the run's memory sample too.
    pub fn start(
        &self,
        host: &Url,
        ledger: Arc<Ledger>,
        memory: bool,
    ) -> tokio::task::JoinHandle<()> {
        let url = self.url(host);
        ledger.set_server_metrics(ServerMetrics {
            url: url.to_string(),
            interval_secs: self.interval.as_secs_f64(),
            series: self
                .series
                .iter()
                .map(|s| ServerSeries {
                    selector: s.text.clone(),
                    title: s.title.clone(),
                    ..ServerSeries::default()
                })
                .collect(),
            ..ServerMetrics::default()
        });
        if memory {
            ledger.set_memory_source(memory_source(&url, self.interval));
        }
        outln!(
            "Server metrics: scraping {url} every {}{}",
            crate::duration::HumanDuration(self.interval),
            if memory {
                " (its memory is the memory check's)"
            } else {
                ""
            }
        );
        let scraper = Scraper {
            url,
            series: self.series.clone(),
            last: vec![None; self.series.len()],
            memory,
            client: reqwest::Client::builder()
                .timeout(
                    self.interval
                        .clamp(Duration::from_secs(1), Duration::from_secs(10)),
                )
                .build()
                .unwrap_or_default(),
        };
        let interval = self.interval;
        tokio::spawn(scraper.run(ledger, interval))
    }
}

/// The memory check's source when it reads the scraped memory.
pub fn memory_source(url: &Url, interval: Duration) -> String {
    format!(
        "{url} ({MEMORY}, scraped every {} by --server-metrics-url)",
        crate::duration::HumanDuration(interval)
    )
}

struct Scraper {
    url: Url,
    series: Vec<Selector>,
    /// Each counter's last value and when, for its rate.
    last: Vec<Option<(f64, f64)>>,
    memory: bool,
    client: reqwest::Client,
}

impl Scraper {
    async fn run(mut self, ledger: Arc<Ledger>, interval: Duration) {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            match self.fetch().await {
                Ok(exposition) => self.record(&ledger, &exposition),
                Err(why) => {
                    let mut first = false;
                    ledger.update_server_metrics(|m, _| {
                        m.failed_scrapes += 1;
                        if !m.notes.contains(&why) {
                            m.notes.push(why.clone());
                            first = true;
                        }
                    });
                    // Each reason once: a server without the endpoint is not an error.
                    if first {
                        crate::console::leave_line();
                        outln!(
                            "Note: the server's metrics at {} could not be read: {why}; the run \
                             goes on without them",
                            self.url
                        );
                    }
                }
            }
        }
    }

    /// One scrape: the exposition, or why there is none, in words.
    async fn fetch(&self) -> Result<text::Exposition, String> {
        let answer = self
            .client
            .get(self.url.as_str())
            .send()
            .await
            .map_err(|e| describe_send_error(&e))?;
        let status = answer.status();
        if !status.is_success() {
            return Err(format!("it answered {status}, not Prometheus text"));
        }
        let body = answer
            .text()
            .await
            .map_err(|e| format!("its answer could not be read ({e})"))?;
        text::parse(&body).map_err(|e| format!("its answer is not Prometheus text ({e})"))
    }

    fn record(&mut self, ledger: &Ledger, exposition: &text::Exposition) {
        let values: Vec<Option<f64>> = self
            .series
            .iter()
            .map(|s| {
                let mut found = exposition
                    .samples
                    .iter()
                    .filter(|x| s.matches(x))
                    .peekable();
                found.peek()?;
                Some(found.map(|x| x.value).sum())
            })
            .collect();
        let mut rss = None;
        ledger.update_server_metrics(|m, t_secs| {
            m.scrapes += 1;
            for (i, (selector, value)) in self.series.iter().zip(&values).enumerate() {
                let (Some(value), Some(series)) = (value, m.series.get_mut(i)) else {
                    continue;
                };
                series.found += 1;
                if exposition.is_counter(&selector.name) {
                    series.rate = true;
                    let previous = self.last[i].replace((t_secs, *value));
                    // A counter that went down was reset: its next rate starts here.
                    if let Some((then, before)) = previous
                        && t_secs > then
                        && *value >= before
                    {
                        series.points.push(ServerPoint {
                            t_secs,
                            value: (value - before) / (t_secs - then),
                        });
                    }
                } else {
                    series.points.push(ServerPoint {
                        t_secs,
                        value: *value,
                    });
                    if selector.text == MEMORY {
                        rss = Some(*value);
                    }
                }
            }
        });
        if self.memory
            && let Some(bytes) = rss.filter(|b| b.is_finite() && *b >= 0.0)
        {
            ledger.sample_memory(bytes as u64);
        }
    }
}

/// A failed request, said plainly: refused, timed out, or what the client said.
fn describe_send_error(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "it did not answer in time".into()
    } else if e.is_connect() {
        let mut source: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(inner) = source {
            if let Some(io) = inner.downcast_ref::<std::io::Error>()
                && io.kind() == std::io::ErrorKind::ConnectionRefused
            {
                return "the connection was refused (nothing listens there)".into();
            }
            source = inner.source();
        }
        format!("it could not be reached ({e})")
    } else {
        format!("the request failed ({e})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_and_options_are_checked() {
        let s = Selector::parse("lva_http_requests_total{status=\"429\"}").expect("selector");
        assert_eq!(s.name, "lva_http_requests_total");
        assert_eq!(s.labels, vec![("status".to_string(), "429".to_string())]);
        for bad in ["", "9lives", "a{b=c}", "a{b=\"c\"} x", "a b"] {
            assert!(Selector::parse(bad).is_err(), "{bad:?}");
        }
        let plan = ServerMetricsPlan::from_options(
            "builtin",
            "2s",
            &["process_open_fds".into(), MEMORY.into()],
            false,
        )
        .expect("plan");
        assert_eq!(plan.endpoint, Endpoint::Builtin);
        // The defaults, then the one named that is not among them.
        assert_eq!(plan.series.len(), DEFAULT_SERIES.len() + 1);
        let host = Url::parse("http://127.0.0.1:8000/").expect("url");
        assert_eq!(plan.url(&host).as_str(), "http://127.0.0.1:8000/metrics");
        assert!(ServerMetricsPlan::from_options("builtin", "5s", &[], true).is_err());
        assert!(ServerMetricsPlan::from_options("ftp://x/metrics", "5s", &[], true).is_err());
        assert!(ServerMetricsPlan::from_options("http://x/metrics", "10ms", &[], true).is_err());
    }

    #[test]
    fn counters_become_rates_and_gauges_stay_values() {
        let plan = ServerMetricsPlan::from_options("builtin", "1s", &[], false).expect("plan");
        let ledger = Arc::new(Ledger::new(Duration::from_secs(10)));
        let host = Url::parse("http://127.0.0.1:1/").expect("url");
        ledger.set_server_metrics(ServerMetrics {
            series: plan
                .series
                .iter()
                .map(|s| ServerSeries {
                    selector: s.text.clone(),
                    ..ServerSeries::default()
                })
                .collect(),
            ..ServerMetrics::default()
        });
        ledger.set_memory_source("scraped".into());
        let mut scraper = Scraper {
            url: plan.url(&host),
            series: plan.series.clone(),
            last: vec![None; plan.series.len()],
            memory: true,
            client: reqwest::Client::new(),
        };
        for (cpu, rss) in [(1.0, 1000.0), (3.0, 2000.0)] {
            let text = format!(
                "# TYPE process_cpu_seconds_total counter\nprocess_cpu_seconds_total {cpu}\n\
                 {MEMORY} {rss}\n"
            );
            scraper.record(&ledger, &text::parse(&text).expect("text"));
            std::thread::sleep(Duration::from_millis(50));
        }
        let run = ledger.snapshot("smoke", false);
        let m = run.server_metrics.expect("server metrics");
        assert_eq!(m.scrapes, 2);
        let cpu = &m.series[0];
        assert!(cpu.rate && cpu.found == 2 && cpu.points.len() == 1);
        // 2 CPU seconds over about 50 ms.
        assert!(cpu.points[0].value > 2.0, "{:?}", cpu.points);
        assert_eq!(m.series[1].points.len(), 2);
        assert_eq!(
            m.missing().as_deref(),
            Some(
                "not exposed by the server: lva_http_requests_in_flight, lva_db_pool_in_use, \
                 lva_db_pool_waiting"
            )
        );
        let memory = run.memory.expect("memory");
        assert_eq!(
            memory
                .samples
                .iter()
                .map(|s| s.rss_bytes)
                .collect::<Vec<_>>(),
            vec![1000, 2000]
        );
    }
}
