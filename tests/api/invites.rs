//! Group invites: creation, preview, use, listing, deletion, limits.

use std::time::Duration;

use osmium_chat::model::clock::now_ms;
use osmium_chat::proto::{auth, chats};
use tonic::Code;

use crate::helpers::{assert_code, both_engines, dm, group, saved, TestApp, TestUser};

async fn invite(
    user: &mut TestUser,
    id: u64,
    expires_at: Option<u64>,
    max_uses: Option<u32>,
) -> String {
    user.client
        .create_chat_invite(chats::CreateChatInvite {
            chat_ref: group(id),
            expires_at,
            max_uses,
        })
        .await
        .expect("invite created")
        .into_inner()
        .code
}

fn use_code(code: &str) -> auth::UseInvite {
    auth::UseInvite { code: code.into() }
}

async fn an_invite_shows_its_group_and_joins_whoever_uses_it(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("Club", &[bob.id]).await;
    let code = invite(&mut ann, id, None, None).await;
    assert!(
        code.len() >= 8
            && code
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "{code}"
    );

    let preview = cat
        .client
        .lookup_invite(auth::LookupInvite { code: code.clone() })
        .await
        .expect("preview")
        .into_inner();
    assert_eq!((preview.creator_id, preview.target_id), (ann.id, id));
    assert_eq!(preview.target_type, auth::InviteType::Group as i32);
    assert_eq!(preview.creator.map(|u| u.name), Some("Ann".to_owned()));
    let Some(auth::invite_preview::TargetInfo::Chat(shown)) = preview.target_info else {
        panic!("the preview shows the group");
    };
    assert_eq!(
        (shown.name.as_str(), shown.participant_ids.len()),
        ("Club", 2)
    );

    cat.client
        .use_invite(use_code(&code))
        .await
        .expect("joined");
    let chat = cat
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(id),
        })
        .await
        .expect("a member now")
        .into_inner();
    assert_eq!(
        chat.group.expect("group").participant_ids,
        vec![ann.id, bob.id, cat.id]
    );
    assert_code(
        cat.client.use_invite(use_code(&code)).await,
        Code::AlreadyExists,
        "already",
    );
}

async fn invites_are_for_groups_and_checked(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let id = ann.create_group("g", &[]).await;
    let create = |chat_ref, expires_at, max_uses| chats::CreateChatInvite {
        chat_ref,
        expires_at,
        max_uses,
    };
    assert_code(
        ann.client
            .create_chat_invite(create(dm(bob.id), None, None))
            .await,
        Code::InvalidArgument,
        "groups",
    );
    assert_code(
        ann.client
            .create_chat_invite(create(saved(), None, None))
            .await,
        Code::InvalidArgument,
        "groups",
    );
    assert_code(
        ann.client
            .create_chat_invite(create(group(id), None, Some(0)))
            .await,
        Code::InvalidArgument,
        "max_uses",
    );
    assert_code(
        ann.client
            .create_chat_invite(create(group(id), Some(now_ms() - 1000), None))
            .await,
        Code::InvalidArgument,
        "expires_at",
    );
    assert_code(
        ann.client.use_invite(use_code("")).await,
        Code::InvalidArgument,
        "code",
    );
    assert_code(
        ann.client.use_invite(use_code("no-such-code")).await,
        Code::NotFound,
        "invite",
    );
    let listed = ann
        .client
        .list_chat_invites(chats::ListChatInvites {
            chat_ref: group(id),
        })
        .await
        .expect("lists");
    assert!(
        listed.into_inner().invites.is_empty(),
        "refused creations stored nothing"
    );
}

async fn the_owner_lists_and_deletes_all_members_their_own(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("g", &[bob.id, cat.id]).await;
    let owners = invite(&mut ann, id, None, None).await;
    let bobs = invite(&mut bob, id, None, Some(5)).await;
    let cats = invite(&mut cat, id, None, None).await;
    let list = |user: &mut TestUser| {
        let mut client = user.client.clone();
        async move {
            let mut codes: Vec<String> = client
                .list_chat_invites(chats::ListChatInvites {
                    chat_ref: group(id),
                })
                .await
                .expect("lists")
                .into_inner()
                .invites
                .into_iter()
                .map(|i| i.code)
                .collect();
            codes.sort();
            codes
        }
    };
    let mut all = vec![owners.clone(), bobs.clone(), cats.clone()];
    all.sort();
    assert_eq!(list(&mut ann).await, all);
    assert_eq!(list(&mut bob).await, vec![bobs.clone()]);

    let delete = |code: &str| chats::DeleteChatInvite { code: code.into() };
    assert_code(
        bob.client.delete_chat_invite(delete(&cats)).await,
        Code::PermissionDenied,
        "creator",
    );
    bob.client
        .delete_chat_invite(delete(&bobs))
        .await
        .expect("the creator deletes");
    ann.client
        .delete_chat_invite(delete(&cats))
        .await
        .expect("the owner deletes any");
    assert_code(
        ann.client.delete_chat_invite(delete(&cats)).await,
        Code::NotFound,
        "invite",
    );
    assert_eq!(list(&mut ann).await, vec![owners]);
    let dan = app.user("Dan").await;
    let mut dan = dan;
    assert_code(
        dan.client.use_invite(use_code(&bobs)).await,
        Code::NotFound,
        "invite",
    );
}

async fn expired_and_used_up_invites_are_gone(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("g", &[]).await;
    let once = invite(&mut ann, id, None, Some(1)).await;
    bob.client
        .use_invite(use_code(&once))
        .await
        .expect("the one use");
    assert_code(
        cat.client.use_invite(use_code(&once)).await,
        Code::NotFound,
        "invite",
    );
    assert_code(
        cat.client
            .lookup_invite(auth::LookupInvite { code: once })
            .await,
        Code::NotFound,
        "invite",
    );

    let expires_at = now_ms() + 1500;
    let brief = invite(&mut ann, id, Some(expires_at), None).await;
    let preview = cat
        .client
        .lookup_invite(auth::LookupInvite {
            code: brief.clone(),
        })
        .await
        .expect("still valid");
    assert_eq!(preview.into_inner().expires_at, Some(expires_at));
    // Let the wall clock pass the expiry: time itself is what is under test.
    tokio::time::sleep(Duration::from_millis(
        expires_at.saturating_sub(now_ms()) + 50,
    ))
    .await;
    assert_code(
        cat.client.use_invite(use_code(&brief)).await,
        Code::NotFound,
        "invite",
    );
}

async fn concurrent_uses_admit_exactly_max_uses(app: TestApp) {
    const N: u32 = 3;
    let mut ann = app.user("Ann").await;
    let id = ann.create_group("g", &[]).await;
    let code = invite(&mut ann, id, None, Some(N)).await;
    let mut calls = Vec::new();
    for i in 0..3 * N {
        let user = app.user(&format!("U{i}")).await;
        let mut client = user.client;
        let code = code.clone();
        calls.push(tokio::spawn(async move {
            client.use_invite(use_code(&code)).await
        }));
    }
    let mut joined = 0;
    for call in calls {
        match call.await.expect("joined") {
            Ok(_) => joined += 1,
            Err(status) => assert_eq!(status.code(), Code::NotFound, "{status:?}"),
        }
    }
    assert_eq!(joined, N);
    let chat = ann
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(id),
        })
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(
        chat.group.expect("group").participant_ids.len(),
        1 + N as usize
    );
}

async fn the_last_member_leaving_deletes_the_invites(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let id = ann.create_group("g", &[]).await;
    let code = invite(&mut ann, id, None, None).await;
    ann.client
        .remove_chat_member(chats::RemoveChatMember {
            chat_ref: group(id),
            user_id: ann.id,
        })
        .await
        .expect("left");
    assert_code(
        bob.client.lookup_invite(auth::LookupInvite { code }).await,
        Code::NotFound,
        "invite",
    );
}

both_engines!(
    an_invite_shows_its_group_and_joins_whoever_uses_it,
    invites_are_for_groups_and_checked,
    the_owner_lists_and_deletes_all_members_their_own,
    expired_and_used_up_invites_are_gone,
    concurrent_uses_admit_exactly_max_uses,
    the_last_member_leaving_deletes_the_invites,
);
