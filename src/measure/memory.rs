//! The memory of the server under test, read from outside through the run: `VmRSS` of a
//! local process, or `process_resident_memory_bytes` from a Prometheus endpoint.

use super::Ledger;
use std::sync::Arc;
use std::time::Duration;
use url::Url;

/// How often the server's memory is read.
const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// Where the server's memory is read during the run.
#[derive(Debug, Clone)]
pub enum MemorySource {
    Pid(u32),
    Metrics(Url),
    /// Each scrape of the server's metrics (`--server-metrics-url`) brings a sample: the
    /// scraper records them, nothing is read here.
    Scraped,
}

impl MemorySource {
    /// Where the samples come from, in words (the metrics JSON keeps it).
    pub fn describe(&self) -> String {
        match self {
            MemorySource::Pid(pid) => format!("pid {pid} (VmRSS of /proc/{pid}/status)"),
            MemorySource::Metrics(url) => format!("{url} (process_resident_memory_bytes)"),
            MemorySource::Scraped => "the scrapes of --server-metrics-url".into(),
        }
    }

    /// One reading; `None` when the process or the endpoint did not answer.
    pub async fn read(&self, client: &reqwest::Client) -> Option<u64> {
        match self {
            MemorySource::Pid(pid) => {
                let status = tokio::fs::read_to_string(format!("/proc/{pid}/status"))
                    .await
                    .ok()?;
                parse_vm_rss(&status)
            }
            MemorySource::Metrics(url) => {
                let text = client
                    .get(url.as_str())
                    .send()
                    .await
                    .ok()?
                    .text()
                    .await
                    .ok()?;
                parse_prometheus_rss(&text)
            }
            MemorySource::Scraped => None,
        }
    }

    /// Records a sample into `ledger` every two seconds (the first at once) until the
    /// returned task is aborted; `None` for [`MemorySource::Scraped`], which the scraper
    /// feeds.
    pub fn sample_into(self, ledger: Arc<Ledger>) -> Option<tokio::task::JoinHandle<()>> {
        if matches!(self, MemorySource::Scraped) {
            return None;
        }
        ledger.set_memory_source(self.describe());
        Some(tokio::spawn(async move {
            let client = reqwest::Client::new();
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            loop {
                tick.tick().await;
                if let Some(rss) = self.read(&client).await {
                    ledger.sample_memory(rss);
                }
            }
        }))
    }
}

/// The resident memory in a `/proc/PID/status` text, in bytes.
pub fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// `process_resident_memory_bytes` in a Prometheus text, in bytes.
pub fn parse_prometheus_rss(text: &str) -> Option<u64> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find(|l| {
            l.split(|c: char| c.is_whitespace() || c == '{')
                .next()
                .is_some_and(|name| name == "process_resident_memory_bytes")
        })
        .and_then(|l| l.split_whitespace().last())
        .and_then(|v| v.parse::<f64>().ok())
        .map(|v| v as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_readings_parse() {
        let status = "Name:\tx\nVmRSS:\t  12345 kB\nThreads: 4\n";
        assert_eq!(parse_vm_rss(status), Some(12345 * 1024));
        let metrics = "# HELP x\nprocess_resident_memory_bytes 2.5e+07\nother 1\n";
        assert_eq!(parse_prometheus_rss(metrics), Some(25_000_000));
        assert_eq!(
            parse_prometheus_rss("process_resident_memory_bytes_total 5\n"),
            None
        );
    }
}
