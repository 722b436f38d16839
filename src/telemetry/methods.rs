//! The gRPC methods this server serves, by path, so that metrics label only
//! those: a label taken from whatever path a caller sends would let anyone
//! create series without bound.

use std::collections::HashSet;
use std::sync::LazyLock;

use prost::Message as _;

/// What a path that is not one of ours is counted as.
pub const UNKNOWN: &str = "unknown";

/// Health and reflection: served from crates whose descriptors are not ours.
const OTHERS: [&str; 5] = [
    "grpc.health.v1.Health/Check",
    "grpc.health.v1.Health/Watch",
    "grpc.health.v1.Health/List",
    "grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
];

/// `package.Service/Method` of every method of our own services (read from
/// the descriptor set reflection serves, so a new RPC is known at once) and
/// of health and reflection.
static KNOWN: LazyLock<HashSet<String>> = LazyLock::new(|| {
    let mut known: HashSet<String> = OTHERS.iter().map(|m| (*m).to_owned()).collect();
    let files = prost_types::FileDescriptorSet::decode(crate::proto::FILE_DESCRIPTOR_SET)
        .map(|set| set.file)
        .unwrap_or_default();
    for file in files {
        let package = file.package.unwrap_or_default();
        for service in file.service {
            let service_name = service.name.unwrap_or_default();
            for method in service.method {
                known.insert(format!(
                    "{package}.{service_name}/{}",
                    method.name.unwrap_or_default()
                ));
            }
        }
    }
    known
});

/// The method a request path names (`/package.Service/Method`), when it is
/// one this server serves; [`UNKNOWN`] otherwise.
pub fn label(path: &str) -> &'static str {
    KNOWN
        .get(path.trim_start_matches('/'))
        .map_or(UNKNOWN, String::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_are_labelled() {
        assert_eq!(
            label("/osmium.chat.v1.ChatService/SendMessage"),
            "osmium.chat.v1.ChatService/SendMessage"
        );
        assert_eq!(
            label("/osmium.chat.v1.UserDirectory/UpsertUsers"),
            "osmium.chat.v1.UserDirectory/UpsertUsers"
        );
        assert_eq!(
            label("/grpc.health.v1.Health/Check"),
            "grpc.health.v1.Health/Check"
        );
        assert_eq!(label("/osmium.chat.v1.ChatService/Bogus"), UNKNOWN);
        assert_eq!(label("/wp-admin/setup.php"), UNKNOWN);
        assert_eq!(label(""), UNKNOWN);
    }
}
