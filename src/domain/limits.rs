//! Bounds on what a request may ask for, and how often a user may ask.

use std::time::Duration;

/// Longest message text or draft, in characters.
pub const MAX_TEXT_CHARS: usize = 4000;
/// Longest group name, in characters after trimming.
pub const MAX_GROUP_NAME_CHARS: usize = 128;
/// Most entities, media or ids in one request.
pub const MAX_LIST_ITEMS: usize = 100;
/// Page sizes: the default when none is given, and the cap applied to larger
/// ones ([`super::values::Page`]).
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

/// Limits that deployments may set.
#[derive(Clone, Debug)]
pub struct Limits {
    pub max_group_members: usize,
    /// Live updates buffered for one Subscribe stream before it is ended as
    /// too slow, and the bytes they may hold.
    pub stream_buffer: usize,
    pub stream_buffer_bytes: usize,
    /// Subscribe streams one user may hold open on one replica.
    pub max_streams_per_user: usize,
    /// Live (unexpired, not used up) invites a group may have at once.
    pub max_invites_per_group: usize,
    /// Each user's rate of the calls that write or fan out.
    pub rates: Rates,
    /// How long a replica may serve a user's profile from its cache after
    /// reading it: the bound on staleness when a change's word was missed.
    pub user_cache_ttl: std::time::Duration,
    /// Most user profiles cached per replica; 0 turns the cache off.
    pub user_cache_size: usize,
    /// Most bytes of profiles cached per replica, as encoded.
    pub user_cache_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_group_members: 250,
            stream_buffer: 1024,
            stream_buffer_bytes: 8 << 20,
            max_streams_per_user: 32,
            max_invites_per_group: 100,
            rates: Rates::default(),
            user_cache_ttl: std::time::Duration::from_secs(30),
            user_cache_size: 100_000,
            user_cache_bytes: 64 << 20,
        }
    }
}

/// A per-user rate: a burst of up to `calls`, refilled evenly over `per`
/// (one more call every `per / calls`), so that a user who pauses may burst
/// again but none can keep up more than `calls` per `per`. `calls == 0`
/// means no limit (`off`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    pub calls: u32,
    pub per: Duration,
}

impl Rate {
    pub const OFF: Rate = Rate {
        calls: 0,
        per: Duration::ZERO,
    };

    pub const fn new(calls: u32, per: Duration) -> Self {
        Self { calls, per }
    }

    pub fn is_off(&self) -> bool {
        self.calls == 0 || self.per.is_zero()
    }

    /// The period, in microseconds: the unit both rate engines count in.
    pub fn period_us(&self) -> u64 {
        u64::try_from(self.per.as_micros()).unwrap_or(u64::MAX)
    }

    /// The time one call uses up of the burst, in microseconds (at least 1).
    pub fn interval_us(&self) -> u64 {
        (self.period_us() / u64::from(self.calls.max(1))).max(1)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_off() {
            return f.write_str("off");
        }
        let ms = self.per.as_millis();
        let (size, unit) = [
            (86_400_000, "d"),
            (3_600_000, "h"),
            (60_000, "m"),
            (1_000, "s"),
        ]
        .into_iter()
        .find(|(size, _)| ms.is_multiple_of(*size))
        .unwrap_or((1, "ms"));
        write!(f, "{}/{}{unit}", self.calls, ms / size)
    }
}

/// The calls each user may make only so often, each with its own [`Rate`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RateLimit {
    Send,
    CreateChat,
    AddMember,
    CreateInvite,
    UseInvite,
    Typing,
}

impl RateLimit {
    pub const ALL: [RateLimit; 6] = [
        RateLimit::Send,
        RateLimit::CreateChat,
        RateLimit::AddMember,
        RateLimit::CreateInvite,
        RateLimit::UseInvite,
        RateLimit::Typing,
    ];

    /// Its name in metrics (`limit` label), Redis keys and error messages.
    pub fn label(self) -> &'static str {
        match self {
            RateLimit::Send => "send",
            RateLimit::CreateChat => "create_chat",
            RateLimit::AddMember => "add_member",
            RateLimit::CreateInvite => "create_invite",
            RateLimit::UseInvite => "use_invite",
            RateLimit::Typing => "typing",
        }
    }

    /// Its place in [`RateLimit::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }
}

/// Every [`RateLimit`]'s rate. The defaults sit well above what a person or
/// a well-behaved bot does, and above what the test suite and the load
/// benchmark's setup need.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rates {
    /// SendMessage: 50 a second kept up, bursts of 500.
    pub send: Rate,
    /// CreateChat, and a direct chat's first SetDraft or notification
    /// preference (which creates it before any message).
    pub create_chat: Rate,
    pub add_member: Rate,
    pub create_invite: Rate,
    pub use_invite: Rate,
    pub typing: Rate,
}

impl Default for Rates {
    fn default() -> Self {
        const SECOND: Duration = Duration::from_secs(1);
        const MINUTE: Duration = Duration::from_secs(60);
        Self {
            send: Rate::new(500, Duration::from_secs(10)),
            create_chat: Rate::new(30, MINUTE),
            add_member: Rate::new(100, MINUTE),
            create_invite: Rate::new(30, MINUTE),
            use_invite: Rate::new(30, MINUTE),
            typing: Rate::new(5, SECOND),
        }
    }
}

impl Rates {
    pub fn of(&self, limit: RateLimit) -> Rate {
        match limit {
            RateLimit::Send => self.send,
            RateLimit::CreateChat => self.create_chat,
            RateLimit::AddMember => self.add_member,
            RateLimit::CreateInvite => self.create_invite,
            RateLimit::UseInvite => self.use_invite,
            RateLimit::Typing => self.typing,
        }
    }
}
