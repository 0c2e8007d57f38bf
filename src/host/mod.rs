//! The server under test: the one `--host` names, or the built-in reference server started
//! as a child process; the pre-flight check before any traffic; and where its memory is
//! read during the run.

mod builtin;
mod preflight;

pub use builtin::BuiltinServer;
pub use preflight::preflight;

use crate::measure::MemorySource;
use crate::plan::Plan;
use url::Url;

/// Why the server under test is not ready. Every one is a configuration error (exit code 2),
/// found before any traffic.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("the built-in reference server did not start: {0}")]
    Builtin(String),
    #[error("{0}")]
    Preflight(String),
}

/// The server a run tests, ready for traffic.
pub struct Host {
    pub url: Url,
    /// The built-in server, when the run started one (stopped with [`Host::release`]).
    pub builtin: Option<BuiltinServer>,
    /// Where its memory is read during the run, when anywhere.
    pub memory: Option<MemorySource>,
}

impl Host {
    /// Starts the built-in server when the plan names no host, runs the pre-flight check
    /// (unless skipped) and picks the memory source: `--server-pid`, else `--memory-url`,
    /// else the built-in server's process, else the scrapes of `--server-metrics-url`.
    pub async fn prepare(plan: &Plan) -> Result<Host, HostError> {
        let (url, builtin) = match &plan.host {
            Some(host) => (host.clone(), None),
            None => {
                let server = BuiltinServer::start(&plan.builtin_args).await?;
                outln!(
                    "No --host given: testing the built-in reference server at {} (pid {}).",
                    server.url,
                    server.pid
                );
                (server.url.clone(), Some(server))
            }
        };
        let host = Host {
            // Read where it is read most often: a local process, a memory URL named for
            // it, else each scrape of the server's metrics.
            memory: match (plan.server_pid, &plan.memory_url, &builtin) {
                (Some(pid), _, _) => Some(MemorySource::Pid(pid)),
                (None, Some(url), _) => Some(MemorySource::Metrics(url.clone())),
                (None, None, Some(server)) => Some(MemorySource::Pid(server.pid)),
                (None, None, None) if plan.server_metrics.is_some() => Some(MemorySource::Scraped),
                (None, None, None) => None,
            },
            url,
            builtin,
        };
        if !plan.skip_preflight
            && let Err(e) = preflight(&host.url, &plan.flow_options.tls).await
        {
            host.release().await;
            return Err(e);
        }
        Ok(host)
    }

    /// The built-in server's process id, when the run started one.
    pub fn builtin_pid(&self) -> Option<u32> {
        self.builtin.as_ref().map(|b| b.pid)
    }

    /// Stops the built-in server, if the run started one, and removes its database.
    pub async fn release(self) {
        if let Some(server) = self.builtin {
            server.stop().await;
        }
    }
}
