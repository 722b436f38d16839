//! Conversations: opening, listing and paging, drafts, notification preferences.

use std::collections::HashSet;

use osmium_chat::proto::service::SetDraft;
use osmium_chat::proto::{chats, refs, settings, types};
use tonic::Code;

use crate::helpers::{assert_code, both_engines, dm, saved, TestApp};

async fn saved_messages_are_the_callers_own_chat(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let id = ann.send(saved(), "note to self").await;
    let conversation = ann.conversation(saved()).await;
    assert_eq!(conversation.chat_ref, saved());
    assert_eq!(conversation.last_message_id, id);
    assert_eq!(conversation.unread_count, 0);
    assert_eq!(ann.history(saved(), None, None).await, vec![id]);
}

async fn get_chats_lists_newest_activity_first_with_last_messages_and_users(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let cat = app.user("Cat").await;
    let first = ann.send(dm(bob.id), "to bob").await;
    let second = ann.send(dm(cat.id), "to cat").await;
    let third = bob.send(dm(ann.id), "bob answers").await;

    let page = ann
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists")
        .into_inner();
    let order: Vec<_> = page
        .chats
        .iter()
        .map(|c| (c.chat_ref, c.last_message_id))
        .collect();
    assert_eq!(order, vec![(dm(bob.id), third), (dm(cat.id), second)]);
    assert!(first < third);
    let mut last: Vec<_> = page
        .messages
        .iter()
        .map(|m| (m.message_id, m.chat_ref))
        .collect();
    last.sort_by_key(|(id, _)| *id);
    assert_eq!(last, vec![(second, dm(cat.id)), (third, dm(bob.id))]);
    let users: HashSet<u64> = page.users.iter().map(|u| u.id).collect();
    assert_eq!(
        users,
        HashSet::from([bob.id, cat.id, ann.id]),
        "peers and last authors"
    );
}

async fn get_chats_pages_without_repeats_or_gaps(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut expected = Vec::new();
    for i in 0..7 {
        let peer = app.user(&format!("Peer {i}")).await;
        expected.push(ann.send(dm(peer.id), "hello").await);
    }
    expected.reverse();

    let mut seen = Vec::new();
    let mut max_id = None;
    loop {
        let page = ann
            .client
            .get_chats(chats::GetChats {
                limit: Some(3),
                max_id,
                min_id: None,
            })
            .await
            .expect("lists")
            .into_inner();
        if page.chats.is_empty() {
            break;
        }
        assert!(page.chats.len() <= 3);
        seen.extend(page.chats.iter().map(|c| c.last_message_id));
        max_id = page.chats.last().map(|c| c.last_message_id);
    }
    assert_eq!(seen, expected, "three pages, newest first, each chat once");

    // min_id keeps only newer activity.
    let newer = ann
        .client
        .get_chats(chats::GetChats {
            limit: None,
            max_id: None,
            min_id: Some(expected[2]),
        })
        .await
        .expect("lists")
        .into_inner();
    let ids: Vec<u64> = newer.chats.iter().map(|c| c.last_message_id).collect();
    assert_eq!(ids, expected[..2].to_vec());
}

async fn get_chats_caps_the_page_at_one_hundred(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut users = Vec::new();
    for i in 0..105 {
        users.push(types::User {
            id: 50_000 + i,
            name: format!("P{i}"),
            ..Default::default()
        });
    }
    app.directory()
        .await
        .upsert_users(osmium_chat::proto::service::UpsertUsers {
            users: users.clone(),
        })
        .await
        .expect("upserted");
    for user in &users {
        ann.send(dm(user.id), "hi").await;
    }
    let all = ann
        .client
        .get_chats(chats::GetChats {
            limit: Some(1000),
            ..Default::default()
        })
        .await
        .expect("lists");
    assert_eq!(all.into_inner().chats.len(), 100);
    let default = ann
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists");
    assert_eq!(default.into_inner().chats.len(), 50);
}

async fn drafts_are_kept_per_chat_and_cleared_by_empty_or_sending(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    ann.client
        .set_draft(SetDraft {
            chat_ref: dm(bob.id),
            draft: Some("half a thought".into()),
        })
        .await
        .expect("draft set");
    assert_eq!(
        ann.conversation(dm(bob.id)).await.draft.as_deref(),
        Some("half a thought")
    );

    ann.client
        .set_draft(SetDraft {
            chat_ref: dm(bob.id),
            draft: Some(String::new()),
        })
        .await
        .expect("cleared");
    assert_eq!(ann.conversation(dm(bob.id)).await.draft, None);

    ann.client
        .set_draft(SetDraft {
            chat_ref: dm(bob.id),
            draft: Some("again".into()),
        })
        .await
        .expect("draft set");
    ann.send(dm(bob.id), "sent").await;
    assert_eq!(
        ann.conversation(dm(bob.id)).await.draft,
        None,
        "sending clears the draft"
    );

    let too_long = "x".repeat(4001);
    assert_code(
        ann.client
            .set_draft(SetDraft {
                chat_ref: dm(bob.id),
                draft: Some(too_long),
            })
            .await,
        Code::InvalidArgument,
        "draft",
    );
}

async fn notification_preferences_apply_to_one_chat(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let cat = app.user("Cat").await;
    ann.client
        .change_notification_preferences(settings::ChangeNotificationPreferences {
            prefs: types::NotifPrefs::Mentions as i32,
            scope: Some(settings::change_notification_preferences::Scope::ChatRef(
                dm(bob.id).expect("ref"),
            )),
        })
        .await
        .expect("changed");
    assert_eq!(
        ann.conversation(dm(bob.id)).await.notif_prefs,
        types::NotifPrefs::Mentions as i32
    );
    assert_eq!(
        ann.conversation(dm(cat.id)).await.notif_prefs,
        types::NotifPrefs::All as i32
    );

    assert_code(
        ann.client
            .change_notification_preferences(settings::ChangeNotificationPreferences {
                prefs: types::NotifPrefs::None as i32,
                scope: Some(settings::change_notification_preferences::Scope::CommunityId(9)),
            })
            .await,
        Code::InvalidArgument,
        "communities service",
    );
    assert_code(
        ann.client
            .change_notification_preferences(settings::ChangeNotificationPreferences {
                prefs: 42,
                scope: dm(bob.id).map(settings::change_notification_preferences::Scope::ChatRef),
            })
            .await,
        Code::InvalidArgument,
        "prefs",
    );
}

async fn bad_chat_refs_are_refused_naming_the_problem(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let cases = [
        (None, "chat_ref: required"),
        (Some(refs::ChatRef { r#ref: None }), "no chat variant"),
        (dm(ann.id), "use `self`"),
        (dm(0), "must not be 0"),
        (
            Some(refs::ChatRef {
                r#ref: Some(refs::chat_ref::Ref::Channel(refs::ChannelRef {
                    community_id: 1,
                    channel_id: 2,
                })),
            }),
            "communities service",
        ),
    ];
    for (chat_ref, mentions) in cases {
        assert_code(
            ann.client.get_chat(chats::GetChat { chat_ref }).await,
            Code::InvalidArgument,
            mentions,
        );
    }
    assert_code(
        ann.client
            .get_chat(chats::GetChat {
                chat_ref: dm(999_999_999),
            })
            .await,
        Code::NotFound,
        "999999999",
    );
    // Nothing was created by the refused calls.
    let page = ann
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists")
        .into_inner();
    assert!(page.chats.is_empty());
}

both_engines!(
    saved_messages_are_the_callers_own_chat,
    get_chats_lists_newest_activity_first_with_last_messages_and_users,
    get_chats_pages_without_repeats_or_gaps,
    get_chats_caps_the_page_at_one_hundred,
    drafts_are_kept_per_chat_and_cleared_by_empty_or_sending,
    notification_preferences_apply_to_one_chat,
    bad_chat_refs_are_refused_naming_the_problem,
);
