//! The reference server's integration tests, one binary: each test starts its own server on
//! an ephemeral port and talks to it over real HTTP and WebSocket on 127.0.0.1.

mod support;

mod api;
