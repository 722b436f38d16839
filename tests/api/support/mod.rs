//! Shared helpers for the API integration tests.
pub mod metrics;
pub mod pki;
pub mod postgres;
pub mod proxy;
pub mod redis;
pub mod tokens;
