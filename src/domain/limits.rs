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

/// Most media attached to one message (SendMessage and EditMessage `media`).
pub const MAX_MEDIA_ITEMS: usize = 10;
/// Longest URL, in bytes: a `textUrl` entity's `url` and an embed's `url`.
pub const MAX_URL_BYTES: usize = 2048;
/// Longest file name or MIME type of an uploaded file, in bytes.
pub const MAX_NAME_BYTES: usize = 255;
/// Longest `pre` entity language tag, in bytes.
pub const MAX_PRE_LANGUAGE_BYTES: usize = 64;
/// Largest inline preview, in bytes: an image's `metadata.image.preview` and a
/// user's `photo.preview`. Clients send tiny blurred thumbnails of 1 to 4 KiB.
pub const MAX_PREVIEW_BYTES: usize = 8 * 1024;
/// Longest name of a bot's message cloak, in characters after trimming.
pub const MAX_CLOAK_NAME_CHARS: usize = 128;
/// Longest user name (UpsertUsers), in characters after trimming.
pub const MAX_USER_NAME_CHARS: usize = 128;
/// Longest username (UpsertUsers), in bytes.
pub const MAX_USERNAME_BYTES: usize = 64;
/// Largest message as a whole: the protobuf-encoded `types::Message` as it is
/// stored and sent out (text, entities, media, reply quote, cloak, with every
/// id and the edit time counted at their largest). Each field's own bound
/// alone would allow more (100 `textUrl` entities of 2 KiB urls are about
/// 200 KiB); this is what stops such combinations. A page of 100 messages at
/// this bound is 6.25 MiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;

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
    /// How long a replica may serve a user's profile from its cache after
    /// reading it: the bound on staleness when a change's word was missed.
    pub user_cache_ttl: std::time::Duration,
    /// Most user profiles cached per replica; 0 turns the cache off.
    pub user_cache_size: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_group_members: 250,
            stream_buffer: 1024,
            user_cache_ttl: std::time::Duration::from_secs(30),
            user_cache_size: 100_000,
        }
    }
}
