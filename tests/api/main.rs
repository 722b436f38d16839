//! The integration suite: every scenario runs against a real server over
//! gRPC, once on the embedded engine and once on a real Postgres.

// Test and bench code: a panic is how a failed expectation is reported.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

mod helpers;
mod support;

mod access_matrix;
mod auth;
mod backend_tls;
mod bounds;
mod chats;
mod dashboards;
mod direct_chats;
mod faults;
mod groups;
mod invite_bounds;
mod invites;
mod keepalive;
mod keys;
mod leases;
mod lifecycle;
mod messages;
mod observability;
mod rate_limits;
mod read_state;
mod read_turns;
mod replicas;
mod safety_net;
mod startup;
mod tls;
mod typing;
mod updates;
mod write_path;
