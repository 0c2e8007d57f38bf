//! lva-loadtest: load tests for the Learning Voice Agent API, on Goose.
//!
//! The run flows one way: options → plan → attack → measurements → verdict → outputs.

pub mod api;
pub mod flows;
pub mod measure;
pub mod presets;
pub mod report;
pub mod target;
pub mod validate;
