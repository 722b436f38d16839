//! Size bounds on nested fields: just over a bound is refused with
//! INVALID_ARGUMENT naming the field and stores nothing; at the bound the
//! request goes through.

use osmium_chat::domain::limits::{
    MAX_CLOAK_NAME_CHARS, MAX_LIST_ITEMS, MAX_MEDIA_ITEMS, MAX_MESSAGE_BYTES, MAX_NAME_BYTES,
    MAX_PREVIEW_BYTES, MAX_PRE_LANGUAGE_BYTES, MAX_TEXT_CHARS, MAX_URL_BYTES,
};
use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::types::message_entity::{Entity, PreEntity, TextUrlEntity};
use osmium_chat::proto::{chats, media, messages, refs, types};
use prost::Message as _;
use tonic::Code;

use crate::helpers::{
    assert_code, both_engines, dm, group, next_user_id, saved, TestApp, TestUser,
};

fn link(start: u32, length: u32, url: String) -> types::MessageEntity {
    types::MessageEntity {
        start_index: start,
        length,
        entity: Some(Entity::TextUrl(TextUrlEntity { url })),
    }
}

fn pre(start: u32, length: u32, language: String) -> types::MessageEntity {
    types::MessageEntity {
        start_index: start,
        length,
        entity: Some(Entity::Pre(PreEntity {
            language: Some(language),
        })),
    }
}

fn bold(start: u32, length: u32) -> types::MessageEntity {
    types::MessageEntity {
        start_index: start,
        length,
        entity: Some(Entity::Bold(true)),
    }
}

fn url(bytes: usize) -> String {
    let head = "https://example.org/";
    format!("{head}{}", "a".repeat(bytes - head.len()))
}

fn embed(url: &str) -> media::MediaRef {
    media::MediaRef {
        r#ref: Some(media::media_ref::Ref::Embed(media::MediaRefEmbed {
            url: url.into(),
        })),
    }
}

fn image(file_id: u64, preview: usize) -> media::MediaRef {
    media::MediaRef {
        r#ref: Some(media::media_ref::Ref::Uploaded(
            media::MediaRefUploadedFile {
                file: Some(media::UploadedFileRef {
                    id: file_id,
                    name: "photo.jpg".into(),
                    part_count: 1,
                }),
                filename: None,
                mimetype: "image/jpeg".into(),
                metadata: Some(media::FileMetadata {
                    metadata: Some(media::file_metadata::Metadata::Image(
                        media::file_metadata::MetadataImage {
                            width: 640,
                            height: 480,
                            preview: Some(vec![7; preview]),
                            animated: false,
                        },
                    )),
                }),
            },
        )),
    }
}

fn send(to: Option<refs::ChatRef>, text: &str) -> messages::SendMessage {
    messages::SendMessage {
        chat_ref: to,
        message: text.into(),
        ..Default::default()
    }
}

/// The whole-message measure the service documents: the message as stored
/// and sent out, with ids, chat ref and edit time at their largest.
fn encoded_as_stored(text: &str, entities: &[types::MessageEntity]) -> usize {
    types::Message {
        chat_ref: group(u64::MAX),
        message_id: u64::MAX,
        author_id: u64::MAX,
        message: text.into(),
        entities: entities.to_vec(),
        edited_at: Some(u64::MAX),
        ..Default::default()
    }
    .encoded_len()
}

async fn messages_in(user: &mut TestUser, chat: Option<refs::ChatRef>) -> Vec<types::Message> {
    user.client
        .get_history(messages::GetHistory {
            chat_ref: chat,
            limit: None,
            offset: None,
        })
        .await
        .expect("history")
        .into_inner()
        .messages
}

async fn entity_urls_and_languages_are_bounded(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let text = "see the link and the code";
    let with = |entities| messages::SendMessage {
        entities,
        ..send(dm(bob.id), text)
    };

    // The reported request: 100 links of 9,000 characters (about 900 KB).
    let huge = (0..100).map(|_| link(0, 3, url(9000))).collect();
    assert_code(
        ann.client.send_message(with(huge)).await,
        Code::InvalidArgument,
        "entities[0].textUrl.url",
    );
    assert_code(
        ann.client
            .send_message(with(vec![bold(0, 3), link(4, 3, url(MAX_URL_BYTES + 1))]))
            .await,
        Code::InvalidArgument,
        "entities[1].textUrl.url: 2049 bytes, at most 2048 allowed",
    );
    assert_code(
        ann.client
            .send_message(with(vec![pre(
                0,
                3,
                "r".repeat(MAX_PRE_LANGUAGE_BYTES + 1),
            )]))
            .await,
        Code::InvalidArgument,
        "entities[0].pre.language",
    );
    assert!(
        messages_in(&mut ann, dm(bob.id)).await.is_empty(),
        "refused sends store nothing"
    );

    let id = ann
        .client
        .send_message(with(vec![
            link(4, 3, url(MAX_URL_BYTES)),
            pre(0, 3, "r".repeat(MAX_PRE_LANGUAGE_BYTES)),
        ]))
        .await
        .expect("at the bounds")
        .into_inner()
        .message_id;

    // Edits are held to the same bounds.
    let edit = |entities| messages::EditMessage {
        chat_ref: dm(bob.id),
        message_id: id,
        message: Some("edited text here".into()),
        entities,
        ..Default::default()
    };
    assert_code(
        ann.client
            .edit_message(edit(vec![link(0, 6, url(MAX_URL_BYTES + 1))]))
            .await,
        Code::InvalidArgument,
        "entities[0].textUrl.url",
    );
    assert_code(
        ann.client
            .edit_message(edit(vec![pre(
                0,
                6,
                "r".repeat(MAX_PRE_LANGUAGE_BYTES + 1),
            )]))
            .await,
        Code::InvalidArgument,
        "entities[0].pre.language",
    );
    let stored = messages_in(&mut ann, dm(bob.id)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message, text, "refused edits change nothing");
    assert_eq!(stored[0].edited_at, None);

    ann.client
        .edit_message(edit(vec![link(0, 6, url(MAX_URL_BYTES))]))
        .await
        .expect("at the bound");
    let stored = messages_in(&mut ann, dm(bob.id)).await;
    assert_eq!(stored[0].message, "edited text here");
}

async fn media_count_names_and_previews_are_bounded(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let with = |media| messages::SendMessage {
        media,
        ..send(dm(bob.id), "pictures")
    };
    let embeds = |n: usize| (0..n).map(|_| embed("https://example.org")).collect();

    assert_code(
        ann.client
            .send_message(with(embeds(MAX_MEDIA_ITEMS + 1)))
            .await,
        Code::InvalidArgument,
        "media: 11 items, at most 10 allowed",
    );
    assert_code(
        ann.client
            .send_message(with(vec![image(1, 10), image(2, MAX_PREVIEW_BYTES + 1)]))
            .await,
        Code::InvalidArgument,
        "media[1].uploaded.metadata.image.preview: 8193 bytes, at most 8192 allowed",
    );
    let mut long_name = image(3, 10);
    if let Some(media::media_ref::Ref::Uploaded(up)) = &mut long_name.r#ref {
        up.filename = Some("f".repeat(MAX_NAME_BYTES + 1));
    }
    assert_code(
        ann.client.send_message(with(vec![long_name])).await,
        Code::InvalidArgument,
        "media[0].uploaded.filename",
    );
    assert_code(
        ann.client
            .send_message(with(vec![embed(&url(MAX_URL_BYTES + 1))]))
            .await,
        Code::InvalidArgument,
        "media[0].embed.url",
    );
    assert!(messages_in(&mut ann, dm(bob.id)).await.is_empty());

    let id = ann
        .client
        .send_message(with(vec![image(4, MAX_PREVIEW_BYTES)]))
        .await
        .expect("a preview at the bound")
        .into_inner()
        .message_id;
    ann.client
        .send_message(with(embeds(MAX_MEDIA_ITEMS)))
        .await
        .expect("as many media as allowed");

    let edit = |media| messages::EditMessage {
        chat_ref: dm(bob.id),
        message_id: id,
        media,
        ..Default::default()
    };
    assert_code(
        ann.client
            .edit_message(edit(embeds(MAX_MEDIA_ITEMS + 1)))
            .await,
        Code::InvalidArgument,
        "media",
    );
    assert_code(
        ann.client
            .edit_message(edit(vec![image(5, MAX_PREVIEW_BYTES + 1)]))
            .await,
        Code::InvalidArgument,
        "media[0].uploaded.metadata.image.preview",
    );
    let stored = messages_in(&mut ann, dm(bob.id)).await;
    assert_eq!(stored.len(), 2);
    let first = stored.iter().find(|m| m.message_id == id).expect("stored");
    assert_eq!(first.media.len(), 1, "refused edits change nothing");
    assert_eq!(first.edited_at, None);
}

async fn reply_quotes_are_bounded(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let original = ann.send(dm(bob.id), "the original").await;
    let reply = |message: String, entities| messages::SendMessage {
        reply_to: Some(messages::send_message::ReplyTo {
            message_id: original,
            quote: Some(messages::send_message::reply_to::Quote {
                message,
                entities,
                offset: Some(0),
            }),
        }),
        ..send(dm(bob.id), "a reply")
    };

    assert_code(
        ann.client
            .send_message(reply("q".repeat(MAX_TEXT_CHARS + 1), vec![]))
            .await,
        Code::InvalidArgument,
        "reply_to.quote.message: 4001 characters",
    );
    assert_code(
        ann.client
            .send_message(reply(
                "q".repeat(200),
                (0..=MAX_LIST_ITEMS as u32).map(|i| bold(i, 1)).collect(),
            ))
            .await,
        Code::InvalidArgument,
        "reply_to.quote.entities: 101 entities",
    );
    assert_code(
        ann.client
            .send_message(reply("quoted".into(), vec![bold(0, 7)]))
            .await,
        Code::InvalidArgument,
        "reply_to.quote.entities[0]",
    );
    assert_code(
        ann.client
            .send_message(reply(
                "quoted".into(),
                vec![link(0, 6, url(MAX_URL_BYTES + 1))],
            ))
            .await,
        Code::InvalidArgument,
        "reply_to.quote.entities[0].textUrl.url",
    );
    assert_eq!(
        messages_in(&mut ann, dm(bob.id)).await.len(),
        1,
        "refused replies store nothing"
    );

    let mut entities: Vec<_> = (0..MAX_LIST_ITEMS as u32 - 1).map(|i| bold(i, 1)).collect();
    entities.push(link(100, 10, url(MAX_URL_BYTES)));
    let id = ann
        .client
        .send_message(reply("q".repeat(MAX_TEXT_CHARS), entities))
        .await
        .expect("a quote at the bounds")
        .into_inner()
        .message_id;
    let stored = messages_in(&mut ann, dm(bob.id)).await;
    let quote = stored
        .iter()
        .find(|m| m.message_id == id)
        .and_then(|m| m.reply.as_ref())
        .and_then(|r| r.quote.as_ref())
        .expect("the quote is stored");
    assert_eq!(quote.message.chars().count(), MAX_TEXT_CHARS);
    assert_eq!(quote.entities.len(), MAX_LIST_ITEMS);
}

async fn cloak_names_are_bounded(app: TestApp) {
    let id = next_user_id();
    app.directory()
        .await
        .upsert_users(UpsertUsers {
            users: vec![types::User {
                id,
                name: "Helper".into(),
                bot: true,
                ..Default::default()
            }],
        })
        .await
        .expect("the bot is upserted");
    let mut bot = TestUser {
        id,
        client: app.client(id).await,
    };
    let cloaked = |name: String| messages::SendMessage {
        bot_info: Some(messages::send_message::BotInfo {
            cloak: Some(messages::send_message::bot_info::MessageCloak {
                name,
                photo_id: None,
            }),
        }),
        ..send(saved(), "cloaked")
    };

    // Characters, not bytes: "é" is two bytes.
    assert_code(
        bot.client
            .send_message(cloaked("é".repeat(MAX_CLOAK_NAME_CHARS + 1)))
            .await,
        Code::InvalidArgument,
        "bot_info.cloak.name: must be 1 to 128 characters after trimming, got 129",
    );
    assert_code(
        bot.client.send_message(cloaked("   ".into())).await,
        Code::InvalidArgument,
        "bot_info.cloak.name",
    );
    assert!(messages_in(&mut bot, saved()).await.is_empty());

    let name = "é".repeat(MAX_CLOAK_NAME_CHARS);
    bot.client
        .send_message(cloaked(format!("  {name} ")))
        .await
        .expect("a name at the bound");
    let stored = messages_in(&mut bot, saved()).await;
    let cloak = stored[0]
        .bot_info
        .as_ref()
        .and_then(|b| b.cloak.as_ref())
        .expect("the cloak is stored");
    assert_eq!(cloak.name, name);
}

async fn user_photo_previews_are_bounded(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let bob_as = |name: &str, preview: usize| types::User {
        id: bob.id,
        name: name.into(),
        photo: Some(types::ChatPhoto {
            file_id: 9,
            preview: vec![1; preview],
        }),
        ..Default::default()
    };
    let mut directory = app.directory().await;
    let seen_bob = |chat: chats::Chat| {
        chat.users
            .into_iter()
            .find(|u| u.id == bob.id)
            .expect("bob is listed")
    };

    assert_code(
        directory
            .upsert_users(UpsertUsers {
                users: vec![
                    bob_as("Robert", 10),
                    types::User {
                        id: next_user_id(),
                        name: "Cat".into(),
                        photo: Some(types::ChatPhoto {
                            file_id: 10,
                            preview: vec![1; MAX_PREVIEW_BYTES + 1],
                        }),
                        ..Default::default()
                    },
                ],
            })
            .await,
        Code::InvalidArgument,
        "users[1].photo.preview: 8193 bytes, at most 8192 allowed",
    );
    let chat = ann
        .client
        .get_chat(chats::GetChat {
            chat_ref: dm(bob.id),
        })
        .await
        .expect("opens")
        .into_inner();
    let unchanged = seen_bob(chat);
    assert_eq!(unchanged.name, "Bob", "a refused upsert changes nobody");
    assert_eq!(unchanged.photo, None);

    directory
        .upsert_users(UpsertUsers {
            users: vec![bob_as("Robert", MAX_PREVIEW_BYTES)],
        })
        .await
        .expect("a preview at the bound");
    let chat = ann
        .client
        .get_chat(chats::GetChat {
            chat_ref: dm(bob.id),
        })
        .await
        .expect("opens")
        .into_inner();
    let changed = seen_bob(chat);
    assert_eq!(changed.name, "Robert");
    assert_eq!(
        changed.photo.map(|p| p.preview.len()),
        Some(MAX_PREVIEW_BYTES)
    );
}

async fn group_photo_names_are_bounded(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let id = ann.create_group("Photos", &[bob.id]).await;
    let set_photo = |name: String| chats::EditChat {
        chat_ref: group(id),
        photo: Some(chats::edit_chat::Photo {
            file: Some(media::UploadedFileRef {
                id: 42,
                name,
                part_count: 1,
            }),
        }),
        ..Default::default()
    };

    assert_code(
        ann.client
            .edit_chat(set_photo("n".repeat(MAX_NAME_BYTES + 1)))
            .await,
        Code::InvalidArgument,
        "photo.file.name: 256 bytes, at most 255 allowed",
    );
    let chat = ann
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(id),
        })
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(
        chat.group.expect("a group").photo,
        None,
        "a refused edit changes nothing"
    );

    let edited = ann
        .client
        .edit_chat(set_photo("n".repeat(MAX_NAME_BYTES)))
        .await
        .expect("a name at the bound")
        .into_inner();
    assert_eq!(
        edited.group.and_then(|g| g.photo).map(|p| p.file_id),
        Some(42)
    );
}

/// Text and `textUrl` entities (each url within its own bound) whose whole
/// message encodes to exactly `target` bytes.
fn message_of(target: usize) -> (String, Vec<types::MessageEntity>) {
    let per_link =
        encoded_as_stored("", &[link(0, 1, url(MAX_URL_BYTES))]) - encoded_as_stored("", &[]);
    let full = target / per_link;
    for text_len in 100..110 {
        let text = "x".repeat(text_len);
        let build = |last: usize| {
            let mut entities: Vec<_> = (0..full as u32)
                .map(|i| link(i, 1, url(MAX_URL_BYTES)))
                .collect();
            entities.push(link(0, 1, url(last)));
            entities
        };
        // The size grows with the last url's length: find the length that hits the target.
        let (mut low, mut high) = (40, MAX_URL_BYTES);
        while low < high {
            let mid = (low + high) / 2;
            if encoded_as_stored(&text, &build(mid)) < target {
                low = mid + 1;
            } else {
                high = mid;
            }
        }
        let entities = build(low);
        if encoded_as_stored(&text, &entities) == target {
            return (text, entities);
        }
    }
    panic!("no message of exactly {target} bytes");
}

async fn the_whole_message_is_bounded(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let with = |text: String, entities| messages::SendMessage {
        entities,
        ..send(dm(bob.id), &text)
    };

    // 100 links, each within its own bound, are still far too much together.
    let many = (0..MAX_LIST_ITEMS as u32)
        .map(|i| link(i, 1, url(MAX_URL_BYTES)))
        .collect();
    assert_code(
        ann.client
            .send_message(with("x".repeat(MAX_LIST_ITEMS), many))
            .await,
        Code::InvalidArgument,
        "message: encoded message is",
    );
    let (text, entities) = message_of(MAX_MESSAGE_BYTES);
    assert_code(
        ann.client
            .send_message(with(format!("{text}x"), entities.clone()))
            .await,
        Code::InvalidArgument,
        "message: encoded message is 65537 bytes, at most 65536 allowed",
    );
    assert!(messages_in(&mut ann, dm(bob.id)).await.is_empty());

    let id = ann
        .client
        .send_message(with(text.clone(), entities.clone()))
        .await
        .expect("a message of exactly the bound")
        .into_inner()
        .message_id;
    let stored = messages_in(&mut ann, dm(bob.id)).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].message_id, id);
    assert_eq!(stored[0].entities, entities);

    // An edit is measured with what it keeps: the same entities on a longer
    // text are over the bound, on the same text they are not.
    let edit = |text: String| messages::EditMessage {
        chat_ref: dm(bob.id),
        message_id: id,
        message: Some(text),
        entities: entities.clone(),
        ..Default::default()
    };
    assert_code(
        ann.client.edit_message(edit(format!("{text}y"))).await,
        Code::InvalidArgument,
        "message: encoded message is 65537 bytes",
    );
    assert_eq!(messages_in(&mut ann, dm(bob.id)).await[0].edited_at, None);
    ann.client
        .edit_message(edit(text.replace('x', "z")))
        .await
        .expect("an edit of exactly the bound");
}

async fn an_edit_is_measured_with_the_media_it_keeps(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    // Ten images with 6,000-byte previews: about 61 KB, within the bound.
    let id = ann
        .client
        .send_message(messages::SendMessage {
            media: (1..=MAX_MEDIA_ITEMS as u64)
                .map(|i| image(i, 6000))
                .collect(),
            ..send(dm(bob.id), "album")
        })
        .await
        .expect("sent")
        .into_inner()
        .message_id;
    let links: Vec<_> = (0..4).map(|i| link(i, 1, url(MAX_URL_BYTES))).collect();
    let edit = |remove_media| messages::EditMessage {
        chat_ref: dm(bob.id),
        message_id: id,
        message: Some("album with links".into()),
        entities: links.clone(),
        remove_media,
        ..Default::default()
    };

    assert_code(
        ann.client.edit_message(edit(false)).await,
        Code::InvalidArgument,
        "message: encoded message is",
    );
    let stored = messages_in(&mut ann, dm(bob.id)).await;
    assert_eq!(stored[0].message, "album", "a refused edit changes nothing");
    assert_eq!(stored[0].media.len(), MAX_MEDIA_ITEMS);

    ann.client
        .edit_message(edit(true))
        .await
        .expect("without the media it fits");
    let stored = messages_in(&mut ann, dm(bob.id)).await;
    assert_eq!(stored[0].message, "album with links");
    assert!(stored[0].media.is_empty());
}

both_engines!(
    entity_urls_and_languages_are_bounded,
    media_count_names_and_previews_are_bounded,
    reply_quotes_are_bounded,
    cloak_names_are_bounded,
    user_photo_previews_are_bounded,
    group_photo_names_are_bounded,
    the_whole_message_is_bounded,
    an_edit_is_measured_with_the_media_it_keeps,
);
