//! Proptest strategies for the request messages: every field drawn from
//! values that hit its rules (0 ids, the caller's own id, texts and lists
//! just under, at and over their bounds, kinds left unset) as often as from
//! anything at all.

use proptest::collection::vec;
use proptest::option;
use proptest::prelude::*;

use crate::domain::limits::{
    MAX_CLOAK_NAME_CHARS, MAX_GROUP_NAME_CHARS, MAX_LIST_ITEMS, MAX_MEDIA_ITEMS, MAX_NAME_BYTES,
    MAX_PREVIEW_BYTES, MAX_PRE_LANGUAGE_BYTES, MAX_TEXT_CHARS, MAX_URL_BYTES, MAX_USERNAME_BYTES,
};
use crate::model::UserId;
use crate::proto::service::{SetDraft, UpsertUsers};
use crate::proto::types::message_entity::{
    CustomEmojiEntity, Entity, PreEntity, SpoilerEntity, TextUrlEntity, UserMentionEntity,
};
use crate::proto::{auth, chats, media, messages, refs, settings, types};

/// Ids the rules care about (0, the callers', the largest) and any other.
pub fn id() -> BoxedStrategy<u64> {
    prop_oneof![Just(0), Just(1), Just(2), Just(u64::MAX), any::<u64>()].boxed()
}

/// Callers 1 and 2, so that refs naming the caller come up often.
pub fn caller() -> BoxedStrategy<UserId> {
    (1u64..=2).prop_map(UserId).boxed()
}

/// Any text, empty or blank, or one just under, at or over `max` (in
/// characters, and in bytes for one-byte characters).
pub fn text(max: usize) -> BoxedStrategy<String> {
    prop_oneof![
        6 => any::<String>(),
        1 => Just(String::new()),
        1 => Just(" \t ".to_owned()),
        2 => (any::<char>(), 0..3usize)
            .prop_map(move |(c, extra)| c.to_string().repeat(max.saturating_sub(1) + extra)),
    ]
    .boxed()
}

pub fn chat_ref() -> BoxedStrategy<Option<refs::ChatRef>> {
    use refs::chat_ref::Ref;
    let variant = prop_oneof![
        Just(None),
        Just(Some(Ref::Self_(refs::RefSelf {}))),
        id().prop_map(|user_id| Some(Ref::User(refs::UserRef { user_id }))),
        id().prop_map(|group_id| Some(Ref::Group(refs::GroupRef { group_id }))),
        (id(), id()).prop_map(
            |(community_id, channel_id)| Some(Ref::Channel(refs::ChannelRef {
                community_id,
                channel_id
            }))
        ),
    ];
    option::of(variant.prop_map(|r#ref| refs::ChatRef { r#ref })).boxed()
}

fn entity_kind() -> BoxedStrategy<Option<Entity>> {
    prop_oneof![
        Just(None),
        any::<bool>().prop_map(|b| Some(Entity::Bold(b))),
        any::<bool>().prop_map(|b| Some(Entity::Username(b))),
        Just(Some(Entity::Spoiler(SpoilerEntity {}))),
        Just(Some(Entity::UserMention(UserMentionEntity {}))),
        id().prop_map(|emoji_id| Some(Entity::CustomEmoji(CustomEmojiEntity { emoji_id }))),
        text(MAX_URL_BYTES).prop_map(|url| Some(Entity::TextUrl(TextUrlEntity { url }))),
        option::of(text(MAX_PRE_LANGUAGE_BYTES))
            .prop_map(|language| Some(Entity::Pre(PreEntity { language }))),
    ]
    .boxed()
}

pub fn entities() -> BoxedStrategy<Vec<types::MessageEntity>> {
    let entity = (0u32..24, 0u32..24, entity_kind()).prop_map(|(start_index, length, entity)| {
        types::MessageEntity {
            start_index,
            length,
            entity,
        }
    });
    prop_oneof![
        9 => vec(entity.clone(), 0..4),
        1 => vec(entity, MAX_LIST_ITEMS - 1..=MAX_LIST_ITEMS + 1),
    ]
    .boxed()
}

fn bytes(max: usize) -> BoxedStrategy<Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..8),
        (0..3usize).prop_map(move |extra| vec![7; max - 1 + extra]),
    ]
    .boxed()
}

fn media_ref() -> BoxedStrategy<media::MediaRef> {
    use media::media_ref::Ref;
    let file = option::of((id(), text(MAX_NAME_BYTES), any::<u32>()).prop_map(
        |(id, name, part_count)| media::UploadedFileRef {
            id,
            name,
            part_count,
        },
    ));
    let metadata = option::of(option::of(prop_oneof![
        option::of(bytes(MAX_PREVIEW_BYTES)).prop_map(|preview| {
            media::file_metadata::Metadata::Image(media::file_metadata::MetadataImage {
                width: 1,
                height: 1,
                preview,
                animated: false,
            })
        }),
        Just(media::file_metadata::Metadata::File(
            media::file_metadata::MetadataFile {}
        )),
    ]))
    .prop_map(|m| m.map(|metadata| media::FileMetadata { metadata }));
    let uploaded = (
        file,
        option::of(text(MAX_NAME_BYTES)),
        text(MAX_NAME_BYTES),
        metadata,
    )
        .prop_map(|(file, filename, mimetype, metadata)| {
            Some(Ref::Uploaded(media::MediaRefUploadedFile {
                file,
                filename,
                mimetype,
                metadata,
            }))
        });
    let embed = text(MAX_URL_BYTES).prop_map(|url| Some(Ref::Embed(media::MediaRefEmbed { url })));
    prop_oneof![Just(None), uploaded, embed]
        .prop_map(|r#ref| media::MediaRef { r#ref })
        .boxed()
}

fn media_refs() -> BoxedStrategy<Vec<media::MediaRef>> {
    prop_oneof![
        8 => vec(media_ref(), 0..3),
        1 => vec(media_ref(), MAX_MEDIA_ITEMS..=MAX_MEDIA_ITEMS + 1),
    ]
    .boxed()
}

// `reply_to_old` is deprecated but still on the wire.
#[allow(deprecated)]
pub fn send_message() -> BoxedStrategy<messages::SendMessage> {
    use messages::send_message::{bot_info, reply_to, BotInfo, ReplyTo};
    let quote = option::of(
        (text(MAX_TEXT_CHARS), entities(), option::of(any::<u64>())).prop_map(
            |(message, entities, offset)| reply_to::Quote {
                message,
                entities,
                offset,
            },
        ),
    );
    let reply_to =
        option::of((id(), quote).prop_map(|(message_id, quote)| ReplyTo { message_id, quote }));
    let cloak = option::of(option::of(
        (text(MAX_CLOAK_NAME_CHARS), option::of(id()))
            .prop_map(|(name, photo_id)| bot_info::MessageCloak { name, photo_id }),
    ))
    .prop_map(|c| c.map(|cloak| BotInfo { cloak }));
    (
        chat_ref(),
        text(MAX_TEXT_CHARS),
        option::of(id()),
        media_refs(),
        entities(),
        any::<bool>(),
        reply_to,
        cloak,
        option::of(id()),
    )
        .prop_map(
            |(
                chat_ref,
                message,
                reply_to_old,
                media,
                entities,
                suppress_embeds,
                reply_to,
                bot_info,
                client_id,
            )| {
                messages::SendMessage {
                    chat_ref,
                    message,
                    reply_to_old,
                    media,
                    entities,
                    suppress_embeds,
                    reply_to,
                    bot_info,
                    client_id,
                }
            },
        )
        .boxed()
}

pub fn edit_message() -> BoxedStrategy<messages::EditMessage> {
    (
        chat_ref(),
        id(),
        option::of(text(MAX_TEXT_CHARS)),
        any::<bool>(),
        media_refs(),
        entities(),
    )
        .prop_map(
            |(chat_ref, message_id, message, remove_media, media, entities)| {
                messages::EditMessage {
                    chat_ref,
                    message_id,
                    message,
                    remove_media,
                    media,
                    entities,
                    suppress_embeds: false,
                }
            },
        )
        .boxed()
}

pub fn get_history() -> BoxedStrategy<messages::GetHistory> {
    use messages::get_history::Offset;
    let offset = option::of(prop_oneof![
        id().prop_map(Offset::Since),
        id().prop_map(Offset::Before),
        id().prop_map(Offset::Around),
    ]);
    (chat_ref(), option::of(any::<u32>()), offset)
        .prop_map(|(chat_ref, limit, offset)| messages::GetHistory {
            chat_ref,
            limit,
            offset,
        })
        .boxed()
}

pub fn delete_message() -> BoxedStrategy<messages::DeleteMessage> {
    let ids = prop_oneof![
        9 => vec(id(), 0..4),
        1 => vec(id(), MAX_LIST_ITEMS..=MAX_LIST_ITEMS + 1),
    ];
    (chat_ref(), ids)
        .prop_map(|(chat_ref, message_ids)| messages::DeleteMessage {
            chat_ref,
            message_ids,
        })
        .boxed()
}

pub fn create_chat() -> BoxedStrategy<chats::CreateChat> {
    let users = vec(id().prop_map(|user_id| refs::UserRef { user_id }), 0..4);
    (users, text(MAX_GROUP_NAME_CHARS))
        .prop_map(|(users, name)| chats::CreateChat { users, name })
        .boxed()
}

pub fn edit_chat() -> BoxedStrategy<chats::EditChat> {
    use chats::edit_chat::{HighlightedMessage, Photo};
    let file = (id(), text(MAX_NAME_BYTES)).prop_map(|(id, name)| media::UploadedFileRef {
        id,
        name,
        part_count: 1,
    });
    (
        chat_ref(),
        option::of(text(MAX_GROUP_NAME_CHARS)),
        option::of(
            option::of(id())
                .prop_map(|highlighted_msg_id| HighlightedMessage { highlighted_msg_id }),
        ),
        option::of(option::of(file).prop_map(|file| Photo { file })),
    )
        .prop_map(
            |(chat_ref, name, highlighted_msg_id, photo)| chats::EditChat {
                chat_ref,
                name,
                highlighted_msg_id,
                photo,
            },
        )
        .boxed()
}

pub fn member_change() -> BoxedStrategy<(Option<refs::ChatRef>, u64)> {
    (chat_ref(), id()).boxed()
}

pub fn create_chat_invite() -> BoxedStrategy<chats::CreateChatInvite> {
    (chat_ref(), option::of(id()), option::of(0u32..3))
        .prop_map(|(chat_ref, expires_at, max_uses)| chats::CreateChatInvite {
            chat_ref,
            expires_at,
            max_uses,
        })
        .boxed()
}

pub fn code() -> BoxedStrategy<String> {
    text(64)
}

pub fn mark_chat_read() -> BoxedStrategy<chats::MarkChatRead> {
    (chat_ref(), id(), option::of(any::<u32>()))
        .prop_map(|(chat_ref, message_id, read_amount)| chats::MarkChatRead {
            chat_ref,
            message_id,
            read_amount,
        })
        .boxed()
}

pub fn set_typing() -> BoxedStrategy<chats::SetTyping> {
    (chat_ref(), any::<bool>(), option::of(-2i32..8))
        .prop_map(|(chat_ref, typing, action)| chats::SetTyping {
            chat_ref,
            typing,
            action,
        })
        .boxed()
}

pub fn set_draft() -> BoxedStrategy<SetDraft> {
    (chat_ref(), option::of(text(MAX_TEXT_CHARS)))
        .prop_map(|(chat_ref, draft)| SetDraft { chat_ref, draft })
        .boxed()
}

pub fn change_notification_preferences() -> BoxedStrategy<settings::ChangeNotificationPreferences> {
    use settings::change_notification_preferences::Scope;
    let scope = option::of(prop_oneof![
        chat_ref().prop_map(|r| Scope::ChatRef(r.unwrap_or_default())),
        id().prop_map(Scope::CommunityId),
    ]);
    (-1i32..5, scope)
        .prop_map(|(prefs, scope)| settings::ChangeNotificationPreferences { prefs, scope })
        .boxed()
}

pub fn upsert_users() -> BoxedStrategy<UpsertUsers> {
    let photo = option::of(
        (id(), bytes(MAX_PREVIEW_BYTES))
            .prop_map(|(file_id, preview)| types::ChatPhoto { file_id, preview }),
    );
    let user = (
        id(),
        text(MAX_GROUP_NAME_CHARS),
        option::of(prop_oneof![
            text(MAX_USERNAME_BYTES),
            Just("@ann".to_owned())
        ]),
        photo,
        any::<bool>(),
    )
        .prop_map(|(id, name, username, photo, bot)| types::User {
            id,
            name,
            username,
            photo,
            bot,
            icon: None,
            color: None,
        });
    vec(user, 0..4)
        .prop_map(|users| UpsertUsers { users })
        .boxed()
}

pub fn lookup_invite() -> BoxedStrategy<auth::LookupInvite> {
    code().prop_map(|code| auth::LookupInvite { code }).boxed()
}
