//! Bounds on what a request may ask for.

/// Longest message text or draft, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest group name, in characters after trimming.
pub const MAX_GROUP_NAME_CHARS: usize = 128;
/// Most entities, media or ids in one request.
pub const MAX_LIST_ITEMS: usize = 100;
/// Page sizes: the default when none is given, and the cap applied to larger ones.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;
/// Most users in one UpsertUsers call.
pub const MAX_UPSERT_USERS: usize = 1000;

/// A requested page size: absent or 0 takes the default, larger ones the cap.
pub fn page_size(requested: Option<u32>) -> usize {
    match requested {
        None | Some(0) => DEFAULT_PAGE,
        Some(n) => (n as usize).min(MAX_PAGE),
    }
}

/// Limits that deployments may set.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_group_members: usize,
    /// Updates buffered for one Subscribe stream before it is ended as too slow.
    pub stream_buffer: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_group_members: 250,
            stream_buffer: 1024,
        }
    }
}
