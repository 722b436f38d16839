//! Read pointers, unread counts and unread mentions.

use osmium_chat::proto::{chats, messages, types};
use tonic::Code;

use crate::helpers::{assert_code, both_engines, dm, saved, TestApp};

fn mark(chat: Option<osmium_chat::proto::refs::ChatRef>, message_id: u64) -> chats::MarkChatRead {
    chats::MarkChatRead {
        chat_ref: chat,
        message_id,
        read_amount: None,
    }
}

async fn unread_counts_follow_sends_and_reads(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let m1 = ann.send(dm(bob.id), "1").await;
    let m2 = ann.send(dm(bob.id), "2").await;
    let m3 = ann.send(dm(bob.id), "3").await;
    let conversation = bob.conversation(dm(ann.id)).await;
    assert_eq!(
        (conversation.unread_count, conversation.last_read_message_id),
        (3, 0)
    );
    assert_eq!(
        ann.conversation(dm(bob.id)).await.unread_count,
        0,
        "own messages are never unread"
    );
    assert_eq!(
        ann.conversation(dm(bob.id)).await.last_read_message_id,
        m3,
        "sending marks read"
    );

    bob.client
        .mark_chat_read(mark(dm(ann.id), m2))
        .await
        .expect("marked");
    let conversation = bob.conversation(dm(ann.id)).await;
    assert_eq!(
        (conversation.unread_count, conversation.last_read_message_id),
        (1, m2)
    );

    // Never backwards.
    bob.client
        .mark_chat_read(mark(dm(ann.id), m1))
        .await
        .expect("accepted");
    let conversation = bob.conversation(dm(ann.id)).await;
    assert_eq!(
        (conversation.unread_count, conversation.last_read_message_id),
        (1, m2)
    );

    // Bob's reply reads everything before it and makes Ann's count one.
    let reply = bob.send(dm(ann.id), "ok").await;
    let conversation = bob.conversation(dm(ann.id)).await;
    assert_eq!(
        (conversation.unread_count, conversation.last_read_message_id),
        (0, reply)
    );
    assert_eq!(ann.conversation(dm(bob.id)).await.unread_count, 1);
    ann.client
        .mark_chat_read(mark(dm(bob.id), reply))
        .await
        .expect("marked");
    assert_eq!(ann.conversation(dm(bob.id)).await.unread_count, 0);
}

async fn marking_read_needs_a_message_of_that_chat(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let in_dm = ann.send(dm(bob.id), "hi").await;
    let elsewhere = bob.send(saved(), "mine").await;
    assert_code(
        bob.client.mark_chat_read(mark(dm(ann.id), elsewhere)).await,
        Code::InvalidArgument,
        "message_id",
    );
    assert_code(
        bob.client.mark_chat_read(mark(dm(ann.id), 0)).await,
        Code::InvalidArgument,
        "message_id",
    );
    assert_code(
        bob.client.mark_chat_read(mark(dm(ann.id), in_dm + 1)).await,
        Code::InvalidArgument,
        "message_id",
    );
    assert_eq!(
        bob.conversation(dm(ann.id)).await.unread_count,
        1,
        "refused reads change nothing"
    );
}

async fn deleted_unread_messages_stop_counting(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    ann.send(dm(bob.id), "1").await;
    let oops = ann.send(dm(bob.id), "2").await;
    assert_eq!(bob.conversation(dm(ann.id)).await.unread_count, 2);
    ann.client
        .delete_message(messages::DeleteMessage {
            chat_ref: dm(bob.id),
            message_ids: vec![oops],
        })
        .await
        .expect("deleted");
    assert_eq!(bob.conversation(dm(ann.id)).await.unread_count, 1);
}

fn mention_by_id(text: &str, start: u32, length: u32) -> messages::SendMessage {
    messages::SendMessage {
        message: text.into(),
        entities: vec![types::MessageEntity {
            start_index: start,
            length,
            entity: Some(types::message_entity::Entity::UserMention(
                types::message_entity::UserMentionEntity {},
            )),
        }],
        ..Default::default()
    }
}

async fn mentions_of_the_reader_are_counted_until_read(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user_with("Bob", Some("bob")).await;
    let text = format!("hey @{}", bob.id);
    let length = text.len() as u32 - 4;
    let by_id = ann
        .client
        .send_message(messages::SendMessage {
            chat_ref: dm(bob.id),
            ..mention_by_id(&text, 4, length)
        })
        .await
        .expect("sent")
        .into_inner()
        .message_id;
    ann.client
        .send_message(messages::SendMessage {
            chat_ref: dm(bob.id),
            message: "ping @bob".into(),
            entities: vec![types::MessageEntity {
                start_index: 5,
                length: 4,
                entity: Some(types::message_entity::Entity::Username(true)),
            }],
            ..Default::default()
        })
        .await
        .expect("sent");
    ann.send(dm(bob.id), "no mention").await;
    let conversation = bob.conversation(dm(ann.id)).await;
    assert_eq!(
        (
            conversation.unread_count,
            conversation.unread_mentions_count
        ),
        (3, 2)
    );

    bob.client
        .mark_chat_read(mark(dm(ann.id), by_id))
        .await
        .expect("marked");
    let conversation = bob.conversation(dm(ann.id)).await;
    assert_eq!(
        (
            conversation.unread_count,
            conversation.unread_mentions_count
        ),
        (2, 1)
    );

    // An edit that drops the mention drops it from the count too.
    let history = bob.history(dm(ann.id), Some(2), None).await;
    ann.client
        .edit_message(messages::EditMessage {
            chat_ref: dm(bob.id),
            message_id: history[1],
            message: Some("ping nobody".into()),
            ..Default::default()
        })
        .await
        .expect("edited");
    assert_eq!(bob.conversation(dm(ann.id)).await.unread_mentions_count, 0);
}

both_engines!(
    unread_counts_follow_sends_and_reads,
    marking_read_needs_a_message_of_that_chat,
    deleted_unread_messages_stop_counting,
    mentions_of_the_reader_are_counted_until_read,
);
