//! Compiles the protocol files with a pure-Rust compiler (no system `protoc`),
//! generates the tonic services, and keeps the descriptor set for reflection.

use std::{env, error::Error, fs, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "osmium/client/refs.proto",
    "osmium/client/media.proto",
    "osmium/client/types.proto",
    "osmium/client/chats.proto",
    "osmium/client/auth.proto",
    "osmium/client/messages.proto",
    "osmium/client/settings.proto",
    "osmium/client/updates.proto",
    "osmium/chat/v1/chat.proto",
];

fn main() -> Result<(), Box<dyn Error>> {
    println!("cargo:rerun-if-changed=proto");
    // refinery embeds migrations/ through a macro that cargo does not watch:
    // a new or changed migration must rebuild the crate all the same.
    println!("cargo:rerun-if-changed=migrations");
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    let fds = protox::compile(PROTOS, ["proto"])?;
    fs::write(out_dir.join("descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        .include_file("osmium.rs")
        // Encoded by hand, wire for wire: a page's users go out as the
        // bytes the replica's cache keeps (src/proto/replies.rs).
        .extern_path(".osmium.client.chats.Chats", "crate::proto::replies::Chats")
        .compile_fds(fds)?;
    Ok(())
}
