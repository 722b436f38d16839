//! Generated protocol code (see `build.rs`) and the encoded descriptor set
//! that server reflection serves.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/osmium.rs"));

/// Every file of `proto/` with its imports, for `grpc.reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

pub mod replies;

pub use osmium::chat::v1 as service;
pub use osmium::client::{auth, media, messages, refs, settings, types, updates};

/// `osmium.client.chats`, its page of conversations encoded by hand
/// ([`replies::Chats`]).
pub mod chats {
    pub use super::osmium::client::chats::*;
    pub use super::replies::Chats;
}
