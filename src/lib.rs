//! lva-loadtest: load tests for the Learning Voice Agent API, on Goose.
//!
//! The run flows one way: options → plan → attack → measurements → verdict → outputs.

pub mod api;
pub mod app;
pub mod cli;
pub mod distributed;
pub mod flows;
pub mod measure;
pub mod plan;
pub mod presets;
pub mod probes;
pub mod report;
pub mod run;
pub mod target;
pub mod validate;
