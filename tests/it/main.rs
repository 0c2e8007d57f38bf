//! The tool's integration tests, one binary: each module runs the real `lva-loadtest` (and
//! the reference server, Locust, Chromium, Prometheus where a test needs them) on 127.0.0.1
//! with ephemeral ports. `support` holds what they share.

mod support;

// The documented example's user class, checked by the adoption and docs tests.
#[path = "../../examples/custom_user.rs"]
#[allow(dead_code)]
mod custom_user;

mod adoption;
mod architecture;
mod capacity;
mod dashboard;
mod deploy;
mod distributed;
mod docs_check;
mod lifecycle;
mod loadtest;
mod locust;
mod metrics_export;
mod open_model;
mod outputs;
mod probes;
mod report;
mod server_metrics;
mod websocket;
