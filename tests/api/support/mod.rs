//! Shared helpers for the API integration tests.
pub mod postgres;
pub mod redis;
pub mod tokens;
