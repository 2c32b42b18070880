//! The `/api/v1` resources, one module each.

pub mod audit;
pub mod catalog;
pub mod config;
pub mod keys;
pub mod ops;
pub mod plugins;
pub mod policies;
pub mod tools;
pub mod upstreams;
