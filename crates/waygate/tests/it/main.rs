//! Black-box tests against the real `waygate` binary, in one test executable (one link of
//! the release build instead of one per file). `store_down` stays apart: it pauses the
//! shared PostgreSQL server, which the tests here must not see.

mod common;

mod admin_api;
mod audit;
mod auth;
mod authz;
mod bad_input;
mod catalog;
mod cli_remote;
mod compat;
mod config_and_store;
mod containment;
mod doctor;
mod fleet;
mod forwarding;
mod guards;
mod hostile;
mod hostile_upstream;
mod http_eras;
mod import;
mod isolation;
mod jwt;
mod layout;
mod lifecycle;
mod limits;
mod logs;
mod namespacing;
mod openapi;
mod ops;
mod otel;
mod redis_limits;
mod relay;
mod relay_ends;
mod relay_tasks;
mod runtime_upstreams;
mod secrets;
mod stdio;
mod tls;
mod ui;
mod upstream_kinds;
mod upstream_tls;
mod upstreams;
mod validation;
mod wasm;
