//! Subscribe: live updates rendered per recipient, and gap-free resume.

use osmium_chat::proto::service::{SetDraft, SubscribeRequest};
use osmium_chat::proto::updates::update::Update as U;
use osmium_chat::proto::{chats, messages};
use tonic::Code;

use crate::helpers::{assert_code, both_engines, dm, next, TestApp};

async fn a_message_is_rendered_for_each_recipient(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut ann_stream = ann.subscribe(None).await;
    let mut bob_stream = bob.subscribe(None).await;
    let id = ann
        .client
        .send_message(messages::SendMessage {
            chat_ref: dm(bob.id),
            message: "hello".into(),
            client_id: Some(5),
            ..Default::default()
        })
        .await
        .expect("sent")
        .into_inner()
        .message_id;

    let to_bob = next(&mut bob_stream).await;
    assert_eq!(to_bob.seq, 1);
    let Some(U::MessageCreated(created)) = to_bob.update.and_then(|u| u.update) else {
        panic!("bob gets the new message");
    };
    let message = created.message.expect("message");
    assert_eq!((message.message_id, message.chat_ref), (id, dm(ann.id)));
    assert_eq!(created.channel_unread_count, 1);
    assert_eq!(created.author.map(|a| a.name), Some("Ann".to_owned()));
    assert_eq!(
        created.client_id, None,
        "the client id is the author's business"
    );

    let to_ann = next(&mut ann_stream).await;
    let Some(U::MessageCreated(created)) = to_ann.update.and_then(|u| u.update) else {
        panic!("ann's other sessions get it too");
    };
    assert_eq!(created.message.and_then(|m| m.chat_ref), dm(bob.id));
    assert_eq!(created.client_id, Some(5));

    // Edits and deletions reach both, again rendered for each.
    ann.client
        .edit_message(messages::EditMessage {
            chat_ref: dm(bob.id),
            message_id: id,
            message: Some("hi".into()),
            ..Default::default()
        })
        .await
        .expect("edited");
    let Some(U::Message(edited)) = next(&mut bob_stream).await.update.and_then(|u| u.update) else {
        panic!("bob gets the edit");
    };
    assert_eq!(
        edited.message.map(|m| (m.message, m.chat_ref)),
        Some(("hi".to_owned(), dm(ann.id)))
    );
    ann.client
        .delete_message(messages::DeleteMessage {
            chat_ref: dm(bob.id),
            message_ids: vec![id],
        })
        .await
        .expect("deleted");
    let deleted = next(&mut bob_stream).await;
    assert_eq!(deleted.seq, 3);
    let Some(U::MessageDeleted(gone)) = deleted.update.and_then(|u| u.update) else {
        panic!("bob gets the deletion");
    };
    assert_eq!((gone.chat_ref, gone.message_ids), (dm(ann.id), vec![id]));
}

async fn own_sessions_hear_about_reads_drafts_and_preferences(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let first = ann.send(dm(bob.id), "one").await;
    ann.send(dm(bob.id), "two").await;
    let mut stream = bob.subscribe(None).await;

    bob.client
        .mark_chat_read(chats::MarkChatRead {
            chat_ref: dm(ann.id),
            message_id: first,
            read_amount: None,
        })
        .await
        .expect("marked");
    let Some(U::ConversationLastRead(read)) = next(&mut stream).await.update.and_then(|u| u.update)
    else {
        panic!("the read reaches bob's other sessions");
    };
    assert_eq!(
        (read.chat_ref, read.last_read_message_id, read.unread_count),
        (dm(ann.id), first, Some(1))
    );

    bob.client
        .set_draft(SetDraft {
            chat_ref: dm(ann.id),
            draft: Some("thinking".into()),
        })
        .await
        .expect("draft");
    let Some(U::Chat(chat)) = next(&mut stream).await.update.and_then(|u| u.update) else {
        panic!("the draft reaches bob's other sessions");
    };
    let conversation = chat.chat.and_then(|c| c.chat).expect("conversation");
    assert_eq!(
        (conversation.chat_ref, conversation.draft),
        (dm(ann.id), Some("thinking".to_owned()))
    );
}

async fn resuming_from_a_seq_replays_every_missed_update_once(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut stream = bob.subscribe(None).await;
    ann.send(dm(bob.id), "1").await;
    let first = next(&mut stream).await;
    assert_eq!(first.seq, 1);
    drop(stream);

    let mut sent = Vec::new();
    for i in 2..=6 {
        sent.push(ann.send(dm(bob.id), &i.to_string()).await);
    }
    let mut resumed = bob.subscribe(Some(first.seq)).await;
    let mut got = Vec::new();
    for expected_seq in 2..=6 {
        let envelope = next(&mut resumed).await;
        assert_eq!(envelope.seq, expected_seq);
        let Some(U::MessageCreated(created)) = envelope.update.and_then(|u| u.update) else {
            panic!("a message update");
        };
        got.push(created.message.expect("message").message_id);
    }
    assert_eq!(got, sent);

    // The seam: what comes next is live, with the next seq and no repeat.
    let live = ann.send(dm(bob.id), "7").await;
    let envelope = next(&mut resumed).await;
    assert_eq!(envelope.seq, 7);
    let Some(U::MessageCreated(created)) = envelope.update.and_then(|u| u.update) else {
        panic!("a message update");
    };
    assert_eq!(created.message.map(|m| m.message_id), Some(live));

    // Replaying everything from the start also works.
    let mut from_start = bob.subscribe(Some(0)).await;
    for expected_seq in 1..=7 {
        assert_eq!(next(&mut from_start).await.seq, expected_seq);
    }
}

async fn a_since_seq_ahead_of_the_log_is_out_of_range(app: TestApp) {
    let mut bob = app.user("Bob").await;
    let result = bob
        .client
        .subscribe(SubscribeRequest {
            since_seq: Some(10),
        })
        .await;
    assert_code(result.map(|_| ()), Code::OutOfRange, "resync");
}

async fn a_replay_longer_than_one_batch_arrives_whole_and_in_order(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    for i in 0..300 {
        ann.send(dm(bob.id), &i.to_string()).await;
    }
    let mut stream = bob.subscribe(Some(0)).await;
    for expected_seq in 1..=300 {
        assert_eq!(next(&mut stream).await.seq, expected_seq);
    }
}

both_engines!(
    a_message_is_rendered_for_each_recipient,
    own_sessions_hear_about_reads_drafts_and_preferences,
    resuming_from_a_seq_replays_every_missed_update_once,
    a_since_seq_ahead_of_the_log_is_out_of_range,
    a_replay_longer_than_one_batch_arrives_whole_and_in_order,
);
