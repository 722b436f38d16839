//! Per-user rate limits: past its rate a call is refused with
//! RESOURCE_EXHAUSTED, a message naming the limit and `google.rpc.RetryInfo`
//! saying how long to wait; each refusal is counted by limit. Limits are set
//! low here (one period of a minute, so no refill happens during a test).

use std::time::Duration;

use osmium_chat::domain::limits::Rate;
use osmium_chat::proto::service::SetDraft;
use osmium_chat::proto::{auth, chats, messages};
use tonic::{Code, Status};
use tonic_types::StatusExt as _;

use crate::helpers::{both_engines_custom, dm, group, scrape, Engine, TestApp};

const MINUTE: Duration = Duration::from_secs(60);

/// The wait a refusal carries, after checking it is a rate limit's.
fn retry_after<T: std::fmt::Debug>(result: Result<T, Status>, limit: &str) -> Duration {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status
            .message()
            .starts_with(&format!("too many {limit} calls: at most ")),
        "{status:?}"
    );
    status
        .get_details_retry_info()
        .and_then(|info| info.retry_delay)
        .expect("RetryInfo in the status details")
}

fn text(to: u64, text: &str) -> messages::SendMessage {
    messages::SendMessage {
        chat_ref: dm(to),
        message: text.into(),
        ..Default::default()
    }
}

async fn sends_past_the_rate_are_refused_with_how_long_to_wait(engine: Engine) {
    let app = TestApp::spawn_tuned(engine, |s| s.limits.rate_send = Rate::new(3, MINUTE)).await;
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    for i in 0..3 {
        ann.send(dm(bob.id), &format!("m{i}")).await;
    }
    let refused = ann.client.send_message(text(bob.id, "one too many")).await;
    // One call of a burst of 3 per minute refills in 20 s, less the time
    // the three sends took.
    let wait = retry_after(refused, "send");
    assert!(
        wait > Duration::from_secs(10) && wait <= Duration::from_secs(20),
        "{wait:?}"
    );

    // Others keep their own budget; the refused send stored nothing.
    bob.send(dm(ann.id), "bob's own").await;
    assert_eq!(ann.history(dm(bob.id), None, None).await.len(), 4);

    let metrics = scrape(app.metrics_port).await;
    assert!(
        metrics.contains(r#"osmium_rate_limited_total{limit="send"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains(r#"osmium_rate_limited_total{limit="create_chat"} 0"#));
}

async fn each_limited_call_is_refused_past_its_own_rate(engine: Engine) {
    let once = Rate::new(1, MINUTE);
    let app = TestApp::spawn_tuned(engine, |s| {
        s.limits.rate_create_chat = once;
        s.limits.rate_add_member = once;
        s.limits.rate_create_invite = once;
        s.limits.rate_use_invite = once;
        s.limits.rate_typing = once;
    })
    .await;
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let cat = app.user("Cat").await;
    let mut dan = app.user("Dan").await;

    let id = ann.create_group("first", &[]).await;
    let create = chats::CreateChat {
        users: vec![],
        name: "second".into(),
    };
    retry_after(ann.client.create_chat(create).await, "create_chat");
    // A draft that would open a direct chat opens a chat too; one in a chat
    // the caller has already is no creation.
    let draft = |chat_ref| SetDraft {
        chat_ref,
        draft: Some("later".into()),
    };
    retry_after(ann.client.set_draft(draft(dm(cat.id))).await, "create_chat");
    ann.client.set_draft(draft(group(id))).await.expect("set");

    let add = |user_id| chats::AddChatMember {
        chat_ref: group(id),
        user_id,
    };
    ann.client
        .add_chat_member(add(bob.id))
        .await
        .expect("added");
    retry_after(ann.client.add_chat_member(add(cat.id)).await, "add_member");

    let new_invite = chats::CreateChatInvite {
        chat_ref: group(id),
        expires_at: None,
        max_uses: None,
    };
    let code = ann
        .client
        .create_chat_invite(new_invite)
        .await
        .expect("created")
        .into_inner()
        .code;
    retry_after(
        ann.client.create_chat_invite(new_invite).await,
        "create_invite",
    );
    // Bob's budget is his own.
    let other = bob
        .client
        .create_chat_invite(new_invite)
        .await
        .expect("created")
        .into_inner()
        .code;

    dan.client
        .use_invite(auth::UseInvite { code })
        .await
        .expect("joined");
    dan.client
        .remove_chat_member(chats::RemoveChatMember {
            chat_ref: group(id),
            user_id: dan.id,
        })
        .await
        .expect("left");
    retry_after(
        dan.client.use_invite(auth::UseInvite { code: other }).await,
        "use_invite",
    );

    let typing = chats::SetTyping {
        chat_ref: group(id),
        typing: true,
        action: None,
    };
    ann.client.set_typing(typing).await.expect("typing");
    let wait = retry_after(ann.client.set_typing(typing).await, "typing");
    assert!(wait <= MINUTE, "{wait:?}");

    let metrics = scrape(app.metrics_port).await;
    for (limit, refused) in [
        ("create_chat", 2),
        ("add_member", 1),
        ("create_invite", 1),
        ("use_invite", 1),
        ("typing", 1),
    ] {
        assert!(
            metrics.contains(&format!(
                r#"osmium_rate_limited_total{{limit="{limit}"}} {refused}"#
            )),
            "{limit}: {metrics}"
        );
    }
    assert!(metrics.contains(r#"osmium_rate_limited_total{limit="send"} 0"#));
}

both_engines_custom!(
    sends_past_the_rate_are_refused_with_how_long_to_wait,
    each_limited_call_is_refused_past_its_own_rate,
);
