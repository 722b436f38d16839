//! Direct chats (and saved messages) come into being with their first
//! message: reads see them empty and store nothing, refused writes leave
//! nothing behind, and only a draft or preference worth keeping opens one
//! early, for its writer alone.

use osmium_chat::proto::service::SetDraft;
use osmium_chat::proto::{chats, messages, refs, settings, types};
use tonic::Code;

use crate::helpers::{assert_code, both_engines, dm, saved, TestApp, TestUser};

async fn opening_a_direct_chat_shows_the_peer_and_stores_nothing(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let chat = ann
        .client
        .get_chat(chats::GetChat {
            chat_ref: dm(bob.id),
        })
        .await
        .expect("opens")
        .into_inner();
    let conversation = chat.chat.expect("conversation");
    assert_eq!(conversation.chat_ref, dm(bob.id));
    assert_eq!(conversation.unread_count, 0);
    assert_eq!(
        conversation.last_message_id, 0,
        "a chat nobody wrote to has no id yet"
    );
    assert!(chat.message.is_none());
    assert_eq!(
        chat.users.iter().map(|u| u.id).collect::<Vec<_>>(),
        vec![bob.id]
    );
    assert_eq!(chat.users[0].name, "Bob");
    for user in [&mut ann, &mut bob] {
        assert!(
            chats_of(user).await.is_empty(),
            "reading a direct chat creates nothing"
        );
    }

    // The first message creates it, for both sides.
    let id = ann.send(dm(bob.id), "hello").await;
    assert_eq!(ann.conversation(dm(bob.id)).await.last_message_id, id);
    assert_eq!(chats_of(&mut ann).await, vec![(dm(bob.id), id)]);
    assert_eq!(chats_of(&mut bob).await, vec![(dm(ann.id), id)]);
}

/// The caller's conversations: each chat and its last activity.
async fn chats_of(user: &mut TestUser) -> Vec<(Option<refs::ChatRef>, u64)> {
    user.client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists")
        .into_inner()
        .chats
        .into_iter()
        .map(|c| (c.chat_ref, c.last_message_id))
        .collect()
}

async fn reads_and_refused_writes_of_a_direct_chat_create_nothing(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    assert!(ann.history(dm(bob.id), None, None).await.is_empty());
    assert!(ann.history(saved(), None, None).await.is_empty());
    assert_eq!(ann.conversation(saved()).await.last_message_id, 0);
    assert_code(
        ann.client
            .mark_chat_read(chats::MarkChatRead {
                chat_ref: dm(bob.id),
                message_id: 42,
                read_amount: None,
            })
            .await,
        Code::InvalidArgument,
        "message_id: no message 42 in this chat",
    );
    assert_code(
        ann.client
            .edit_message(messages::EditMessage {
                chat_ref: dm(bob.id),
                message_id: 42,
                message: Some("edited".into()),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "message_id: no message 42",
    );
    assert_code(
        ann.client
            .delete_message(messages::DeleteMessage {
                chat_ref: dm(bob.id),
                message_ids: vec![42],
            })
            .await,
        Code::InvalidArgument,
        "message_ids: no message 42",
    );
    // A first message refused for what it says stores no chat either.
    assert_code(
        ann.client
            .send_message(messages::SendMessage {
                chat_ref: dm(bob.id),
                message: "a reply to nothing".into(),
                reply_to: Some(messages::send_message::ReplyTo {
                    message_id: 42,
                    quote: None,
                }),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "reply_to.message_id",
    );
    // Clearing what is not there, or choosing the default, changes nothing.
    ann.client
        .set_draft(SetDraft {
            chat_ref: dm(bob.id),
            draft: None,
        })
        .await
        .expect("nothing to clear");
    ann.client
        .change_notification_preferences(settings::ChangeNotificationPreferences {
            prefs: types::NotifPrefs::All as i32,
            scope: dm(bob.id).map(settings::change_notification_preferences::Scope::ChatRef),
        })
        .await
        .expect("already the default");
    for user in [&mut ann, &mut bob] {
        assert!(chats_of(user).await.is_empty(), "nothing was created");
    }

    // A draft is worth keeping: it opens the chat for its writer only.
    ann.client
        .set_draft(SetDraft {
            chat_ref: dm(bob.id),
            draft: Some("hi".into()),
        })
        .await
        .expect("draft set");
    let listed = chats_of(&mut ann).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].0, dm(bob.id));
    assert!(chats_of(&mut bob).await.is_empty());
}

async fn both_sides_writing_first_at_once_get_the_same_chat(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut calls = Vec::new();
    for i in 0..8 {
        let (mut client, peer) = if i % 2 == 0 {
            (ann.client.clone(), bob.id)
        } else {
            (bob.client.clone(), ann.id)
        };
        calls.push(tokio::spawn(async move {
            client
                .send_message(messages::SendMessage {
                    chat_ref: dm(peer),
                    message: format!("first {i}"),
                    ..Default::default()
                })
                .await
                .map(|r| r.into_inner().message_id)
        }));
    }
    let mut sent = Vec::new();
    for call in calls {
        sent.push(call.await.expect("joined").expect("sent"));
    }
    sent.sort_unstable();
    let mut seen = ann.history(dm(bob.id), None, None).await;
    seen.sort_unstable();
    assert_eq!(seen, sent, "one chat for the pair holds every message");
    let mut seen = bob.history(dm(ann.id), None, None).await;
    seen.sort_unstable();
    assert_eq!(seen, sent);
}

both_engines!(
    opening_a_direct_chat_shows_the_peer_and_stores_nothing,
    reads_and_refused_writes_of_a_direct_chat_create_nothing,
    both_sides_writing_first_at_once_get_the_same_chat,
);
