//! Sending, history pages, edits and deletions.

use osmium_chat::proto::messages::get_history::Offset;
use osmium_chat::proto::{media, messages, types};
use tonic::Code;

use crate::helpers::{assert_code, both_engines, dm, saved, TestApp};

fn bold(start: u32, length: u32) -> types::MessageEntity {
    types::MessageEntity {
        start_index: start,
        length,
        entity: Some(types::message_entity::Entity::Bold(true)),
    }
}

async fn a_message_reaches_both_sides_of_a_direct_chat(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let id = ann
        .client
        .send_message(messages::SendMessage {
            chat_ref: dm(bob.id),
            message: "hi 😀 bob".into(),
            entities: vec![bold(0, 2), bold(3, 2)],
            media: vec![media::MediaRef {
                r#ref: Some(media::media_ref::Ref::Embed(media::MediaRefEmbed {
                    url: "https://example.org".into(),
                })),
            }],
            ..Default::default()
        })
        .await
        .expect("sent")
        .into_inner()
        .message_id;

    let seen_by_bob = bob
        .client
        .get_history(messages::GetHistory {
            chat_ref: dm(ann.id),
            limit: None,
            offset: None,
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(seen_by_bob.messages.len(), 1);
    let message = &seen_by_bob.messages[0];
    assert_eq!(message.message_id, id);
    assert_eq!(message.author_id, ann.id);
    assert_eq!(
        message.chat_ref,
        dm(ann.id),
        "bob sees the chat as his DM with ann"
    );
    assert_eq!(message.message, "hi 😀 bob");
    assert_eq!(message.entities.len(), 2);
    assert!(matches!(
        &message.media[0].media,
        Some(media::message_media::Media::Embed(e)) if e.url == "https://example.org"
    ));
    assert_eq!(
        seen_by_bob.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![ann.id]
    );

    let seen_by_ann = ann.history(dm(bob.id), None, None).await;
    assert_eq!(seen_by_ann, vec![id]);
}

async fn a_retried_send_with_the_same_client_id_stores_nothing_new(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let send = messages::SendMessage {
        chat_ref: dm(bob.id),
        message: "once".into(),
        client_id: Some(77),
        ..Default::default()
    };
    let first = ann
        .client
        .send_message(send.clone())
        .await
        .expect("sent")
        .into_inner()
        .message_id;
    let again = ann
        .client
        .send_message(send.clone())
        .await
        .expect("sent")
        .into_inner()
        .message_id;
    assert_eq!(first, again);
    assert_eq!(ann.history(dm(bob.id), None, None).await, vec![first]);

    // Concurrent retries also agree on one message.
    let mut calls = Vec::new();
    for _ in 0..8 {
        let mut client = ann.client.clone();
        let send = messages::SendMessage {
            client_id: Some(78),
            ..send.clone()
        };
        calls.push(tokio::spawn(async move {
            client
                .send_message(send)
                .await
                .map(|r| r.into_inner().message_id)
        }));
    }
    let mut ids = Vec::new();
    for call in calls {
        ids.push(call.await.expect("joined").expect("sent"));
    }
    ids.dedup();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(ann.history(dm(bob.id), None, None).await.len(), 2);
}

async fn history_pages_before_since_and_around_an_anchor(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(ann.send(saved(), &format!("m{i}")).await);
    }
    let newest_first =
        |range: std::ops::Range<usize>| ids[range].iter().rev().copied().collect::<Vec<_>>();

    assert_eq!(
        ann.history(saved(), Some(3), None).await,
        newest_first(6..9)
    );
    assert_eq!(
        ann.history(saved(), Some(3), Some(Offset::Before(ids[6])))
            .await,
        newest_first(3..6)
    );
    assert_eq!(
        ann.history(saved(), Some(3), Some(Offset::Before(ids[2])))
            .await,
        newest_first(0..2)
    );
    assert_eq!(
        ann.history(saved(), Some(3), Some(Offset::Before(ids[0])))
            .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        ann.history(saved(), Some(3), Some(Offset::Since(ids[2])))
            .await,
        newest_first(3..6)
    );
    assert_eq!(
        ann.history(saved(), Some(3), Some(Offset::Since(ids[8])))
            .await,
        Vec::<u64>::new()
    );
    assert_eq!(
        ann.history(saved(), Some(3), Some(Offset::Since(0))).await,
        newest_first(0..3)
    );
    assert_eq!(
        ann.history(saved(), Some(4), Some(Offset::Around(ids[4])))
            .await,
        newest_first(3..7)
    );
    assert_eq!(
        ann.history(saved(), Some(5), Some(Offset::Around(ids[0])))
            .await,
        newest_first(0..3)
    );
    assert_eq!(
        ann.history(saved(), Some(1000), None).await.len(),
        9,
        "a large limit is capped, not refused"
    );
}

async fn history_caps_the_page_at_one_hundred(app: TestApp) {
    let mut ann = app.user("Ann").await;
    for i in 0..101 {
        ann.send(saved(), &format!("m{i}")).await;
    }
    assert_eq!(ann.history(saved(), Some(500), None).await.len(), 100);
    assert_eq!(ann.history(saved(), None, None).await.len(), 50);
}

async fn replies_must_point_into_the_same_chat(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let elsewhere = ann.send(saved(), "private").await;
    let here = ann.send(dm(bob.id), "question").await;
    let reply = |to: u64| messages::SendMessage {
        chat_ref: dm(bob.id),
        message: "answer".into(),
        reply_to: Some(messages::send_message::ReplyTo {
            message_id: to,
            quote: None,
        }),
        ..Default::default()
    };
    assert_code(
        ann.client.send_message(reply(elsewhere)).await,
        Code::InvalidArgument,
        "reply_to.message_id",
    );
    let id = ann
        .client
        .send_message(reply(here))
        .await
        .expect("sent")
        .into_inner()
        .message_id;
    let history = ann
        .client
        .get_history(messages::GetHistory {
            chat_ref: dm(bob.id),
            limit: Some(1),
            offset: None,
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(history.messages[0].message_id, id);
    assert_eq!(
        history.messages[0]
            .reply
            .as_ref()
            .and_then(|r| r.message_id),
        Some(here)
    );
}

async fn bad_messages_are_refused_and_store_nothing(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let send = |text: String, entities: Vec<types::MessageEntity>| messages::SendMessage {
        chat_ref: dm(bob.id),
        message: text,
        entities,
        ..Default::default()
    };
    assert_code(
        ann.client
            .send_message(send("x".repeat(4001), vec![]))
            .await,
        Code::InvalidArgument,
        "message",
    );
    assert_code(
        ann.client
            .send_message(send("😀".into(), vec![bold(0, 3)]))
            .await,
        Code::InvalidArgument,
        "entities[0]",
    );
    assert_code(
        ann.client.send_message(send("".into(), vec![])).await,
        Code::InvalidArgument,
        "message",
    );
    assert_code(
        ann.client
            .send_message(messages::SendMessage {
                media: vec![media::MediaRef { r#ref: None }],
                ..send("with bad media".into(), vec![])
            })
            .await,
        Code::InvalidArgument,
        "media[0]",
    );
    assert_code(
        ann.client
            .send_message(messages::SendMessage {
                bot_info: Some(messages::send_message::BotInfo {
                    cloak: Some(messages::send_message::bot_info::MessageCloak {
                        name: "Impostor".into(),
                        photo_id: None,
                    }),
                }),
                ..send("cloaked".into(), vec![])
            })
            .await,
        Code::PermissionDenied,
        "bot",
    );
    ann.send(dm(bob.id), &"y".repeat(4000)).await;
    assert_eq!(
        ann.history(dm(bob.id), None, None).await.len(),
        1,
        "only the valid message is stored"
    );
}

async fn only_the_author_edits_and_edits_reach_both_sides(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let id = ann.send(dm(bob.id), "typo").await;
    let edit = |chat, text: &str| messages::EditMessage {
        chat_ref: chat,
        message_id: id,
        message: Some(text.into()),
        ..Default::default()
    };
    assert_code(
        bob.client.edit_message(edit(dm(ann.id), "hijack")).await,
        Code::PermissionDenied,
        "author",
    );
    ann.client
        .edit_message(edit(dm(bob.id), "fixed"))
        .await
        .expect("edited");
    let seen = bob
        .client
        .get_history(messages::GetHistory {
            chat_ref: dm(ann.id),
            limit: None,
            offset: None,
        })
        .await
        .expect("history")
        .into_inner();
    assert_eq!(seen.messages[0].message, "fixed");
    assert!(seen.messages[0].edited_at.is_some());

    assert_code(
        ann.client
            .edit_message(messages::EditMessage {
                entities: vec![bold(0, 99)],
                ..edit(dm(bob.id), "short")
            })
            .await,
        Code::InvalidArgument,
        "entities",
    );
    assert_code(
        ann.client
            .edit_message(messages::EditMessage {
                message: None,
                ..edit(dm(bob.id), "")
            })
            .await,
        Code::InvalidArgument,
        "nothing to change",
    );
}

async fn only_the_author_deletes_and_foreign_ids_are_refused(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mine = ann.send(dm(bob.id), "one").await;
    let theirs = bob.send(dm(ann.id), "two").await;
    let elsewhere = ann.send(saved(), "three").await;
    let delete = |ids: Vec<u64>| messages::DeleteMessage {
        chat_ref: dm(bob.id),
        message_ids: ids,
    };

    assert_code(
        ann.client.delete_message(delete(vec![theirs])).await,
        Code::PermissionDenied,
        "author",
    );
    assert_code(
        ann.client
            .delete_message(delete(vec![mine, elsewhere]))
            .await,
        Code::InvalidArgument,
        "message_ids",
    );
    assert_code(
        ann.client.delete_message(delete(vec![])).await,
        Code::InvalidArgument,
        "message_ids",
    );
    assert_eq!(
        ann.history(dm(bob.id), None, None).await,
        vec![theirs, mine],
        "refused deletes change nothing"
    );

    ann.client
        .delete_message(delete(vec![mine, mine]))
        .await
        .expect("deleted");
    assert_eq!(bob.history(dm(ann.id), None, None).await, vec![theirs]);
}

async fn deleting_the_last_message_shows_the_one_before(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let carol = app.user("Carol").await;
    let first = ann.send(dm(bob.id), "one").await;
    let with_carol = ann.send(dm(carol.id), "between").await;
    let second = ann.send(dm(bob.id), "two").await;
    assert_eq!(
        ann.chat_list().await,
        vec![(second, Some(second)), (with_carol, Some(with_carol))]
    );

    ann.client
        .delete_message(messages::DeleteMessage {
            chat_ref: dm(bob.id),
            message_ids: vec![second],
        })
        .await
        .expect("deleted");
    let chat = ann
        .client
        .get_chat(osmium_chat::proto::chats::GetChat {
            chat_ref: dm(bob.id),
        })
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(chat.message.map(|m| m.message_id), Some(first));
    assert_eq!(chat.chat.map(|c| c.last_message_id), Some(first));
    // The conversation moves back to where its last message now puts it,
    // for both of its members.
    assert_eq!(
        ann.chat_list().await,
        vec![(with_carol, Some(with_carol)), (first, Some(first))]
    );
    assert_eq!(bob.chat_list().await, vec![(first, Some(first))]);

    ann.client
        .delete_message(messages::DeleteMessage {
            chat_ref: dm(bob.id),
            message_ids: vec![first],
        })
        .await
        .expect("deleted");
    // No message left: the conversation sorts by the chat's id, from
    // before any of its messages.
    let [(_, shown), (empty, none)] = <[_; 2]>::try_from(ann.chat_list().await).expect("two");
    assert_eq!((shown, none), (Some(with_carol), None));
    assert!(empty < first, "{empty} sorts before the messages it had");
    assert_eq!(bob.chat_list().await, vec![(empty, None)]);
    assert_eq!(ann.conversation(dm(bob.id)).await.last_message_id, empty);
}

async fn an_oversized_request_is_refused_by_the_decode_limit(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let huge = messages::SendMessage {
        chat_ref: saved(),
        message: "x".repeat(2 << 20),
        ..Default::default()
    };
    let status = ann.client.send_message(huge).await.expect_err("refused");
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert!(ann.history(saved(), None, None).await.is_empty());
}

both_engines!(
    an_oversized_request_is_refused_by_the_decode_limit,
    a_message_reaches_both_sides_of_a_direct_chat,
    a_retried_send_with_the_same_client_id_stores_nothing_new,
    history_pages_before_since_and_around_an_anchor,
    history_caps_the_page_at_one_hundred,
    replies_must_point_into_the_same_chat,
    bad_messages_are_refused_and_store_nothing,
    only_the_author_edits_and_edits_reach_both_sides,
    only_the_author_deletes_and_foreign_ids_are_refused,
    deleting_the_last_message_shows_the_one_before,
);
