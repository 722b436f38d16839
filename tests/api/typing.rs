//! Typing indicators: ephemeral updates with seq 0, to the others only.

use osmium_chat::proto::chats::{self, TypingAction};
use osmium_chat::proto::service::UpdateEnvelope;
use osmium_chat::proto::updates::update::Update as U;
use osmium_chat::proto::updates::UpdateChatTyping;
use tonic::Code;

use crate::helpers::{
    assert_code, assert_hidden, both_engines, dm, group, next, saved, TestApp, TestUser,
};

fn typing(
    chat_ref: Option<osmium_chat::proto::refs::ChatRef>,
    on: bool,
    action: Option<TypingAction>,
) -> chats::SetTyping {
    chats::SetTyping {
        chat_ref,
        typing: on,
        action: action.map(|a| a as i32),
    }
}

fn as_typing(envelope: UpdateEnvelope) -> UpdateChatTyping {
    assert_eq!(envelope.seq, 0, "typing is never logged");
    match envelope.update.and_then(|u| u.update) {
        Some(U::ChatTyping(update)) => update,
        other => panic!("expected typing, got {other:?}"),
    }
}

fn as_created(envelope: UpdateEnvelope) -> u64 {
    match envelope.update.and_then(|u| u.update) {
        Some(U::MessageCreated(created)) => created.message.map_or(0, |m| m.message_id),
        other => panic!("expected a message, got {other:?}"),
    }
}

async fn set(user: &mut TestUser, request: chats::SetTyping) {
    user.client
        .set_typing(request)
        .await
        .expect("typing accepted");
}

async fn typing_reaches_the_peer_once_and_ends_on_false_or_send(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut bob_stream = bob.subscribe(None).await;
    let mut ann_stream = ann.subscribe(None).await;

    set(
        &mut ann,
        typing(dm(bob.id), true, Some(TypingAction::UploadImage)),
    )
    .await;
    let started = as_typing(next(&mut bob_stream).await);
    assert_eq!(
        started.chat_ref,
        dm(ann.id),
        "bob sees it in his chat with ann"
    );
    assert_eq!((started.user_id, started.typing), (ann.id, true));
    assert_eq!(started.action, Some(TypingAction::UploadImage as i32));

    // The same again inside the TTL is not news; stopping is.
    set(
        &mut ann,
        typing(dm(bob.id), true, Some(TypingAction::UploadImage)),
    )
    .await;
    set(&mut ann, typing(dm(bob.id), false, None)).await;
    let stopped = as_typing(next(&mut bob_stream).await);
    assert!(!stopped.typing);

    // Sending ends typing at once, after the message itself.
    set(&mut ann, typing(dm(bob.id), true, None)).await;
    assert!(as_typing(next(&mut bob_stream).await).typing);
    let sent = ann.send(dm(bob.id), "done").await;
    assert_eq!(as_created(next(&mut bob_stream).await), sent);
    assert!(!as_typing(next(&mut bob_stream).await).typing);

    // A late `typing = true` racing the send does not light it again.
    set(&mut ann, typing(dm(bob.id), true, None)).await;
    let sentinel = ann.send(dm(bob.id), "sentinel").await;
    assert_eq!(as_created(next(&mut bob_stream).await), sentinel);

    // The typist's own sessions hear nothing of it: only her messages.
    assert_eq!(as_created(next(&mut ann_stream).await), sent);
    assert_eq!(as_created(next(&mut ann_stream).await), sentinel);
}

async fn typing_in_a_group_reaches_every_other_member(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("g", &[bob.id, cat.id]).await;
    let mut bob_stream = bob.subscribe(None).await;
    let mut cat_stream = cat.subscribe(None).await;
    set(
        &mut ann,
        typing(group(id), true, Some(TypingAction::RecordingAudio)),
    )
    .await;
    for stream in [&mut bob_stream, &mut cat_stream] {
        let update = as_typing(next(stream).await);
        assert_eq!((update.chat_ref, update.user_id), (group(id), ann.id));
        assert_eq!(update.action, Some(TypingAction::RecordingAudio as i32));
    }
}

async fn typing_is_checked_and_rate_limited(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let mut eve = app.user("Eve").await;
    let id = ann.create_group("g", &[]).await;
    assert_hidden(eve.client.set_typing(typing(group(id), true, None)).await);
    assert_code(
        ann.client.set_typing(typing(dm(424_242), true, None)).await,
        Code::NotFound,
        "424242",
    );
    assert_code(
        ann.client
            .set_typing(chats::SetTyping {
                chat_ref: dm(bob.id),
                typing: true,
                action: Some(99),
            })
            .await,
        Code::InvalidArgument,
        "action",
    );
    set(&mut ann, typing(saved(), true, None)).await;
    // Five calls at once, then one every 200 ms: sixteen quick calls all go
    // through only if they take over 2.2 seconds, so one is refused.
    let mut refused = 0;
    for i in 0..16 {
        let on = i % 2 == 0;
        match eve.client.set_typing(typing(dm(ann.id), on, None)).await {
            Ok(_) => {}
            Err(status) => {
                assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 1);
}

both_engines!(
    typing_reaches_the_peer_once_and_ends_on_false_or_send,
    typing_in_a_group_reaches_every_other_member,
    typing_is_checked_and_rate_limited,
);
