//! Generated protocol code (see `build.rs`) and the encoded descriptor set
//! that server reflection serves.

#![allow(clippy::all, clippy::pedantic, missing_docs)]

include!(concat!(env!("OUT_DIR"), "/osmium.rs"));

/// Every file of `proto/` with its imports, for `grpc.reflection`.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/descriptor.bin"));

pub use osmium::chat::v1 as service;
pub use osmium::client::{auth, chats, media, messages, refs, settings, types, updates};
