//! osmium-chat: the chats of the Osmium Chat Protocol as a gRPC service.
//!
//! Layout, outermost first:
//! - [`startup`] wires everything from [`config`]; [`shutdown`] stops it.
//! - [`api`] is the gRPC transport: parse, call the domain, convert back;
//!   [`auth`] verifies the bearer token before any handler runs, as a
//!   [`step`] in front of the services.
//! - [`domain`] holds the rules and use-cases; [`error`] its error and the
//!   one mapping to gRPC status codes.
//! - [`store`] persists (Postgres, or the embedded memory engine);
//!   [`bus`] fans new updates out to open streams; [`ephemeral`] keeps
//!   typing and rate-limit state (per replica, or in Redis), and
//!   [`redis_conn`] is the Redis command connection the two share;
//!   [`tls`] is the client TLS that Postgres and Redis connections speak.
//! - [`model`] is the bottom layer of plain nouns (ids, chats, members,
//!   messages, invites, logged changes, the clock) that store, bus and
//!   domain share; it imports nothing of theirs.
//! - [`proto`] is the generated protocol code.

pub mod api;
pub mod auth;
pub mod bus;
pub mod config;
pub mod domain;
pub mod ephemeral;
pub mod error;
pub mod model;
pub mod proto;
pub mod redis_conn;
pub mod shutdown;
pub mod startup;
pub mod step;
pub mod store;
pub mod telemetry;
pub mod tls;
