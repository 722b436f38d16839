//! A group holds a bounded number of live invites: past the cap creating
//! one fails with FAILED_PRECONDITION naming it; expired and used-up ones
//! make room and are not listed; a listing names the group without
//! carrying it.

use std::time::Duration;

use osmium_chat::model::clock::now_ms;
use osmium_chat::proto::{auth, chats};
use tonic::Code;

use crate::helpers::{assert_code, both_engines_custom, group, Engine, TestApp, TestUser};

fn new_invite(id: u64, expires_at: Option<u64>, max_uses: Option<u32>) -> chats::CreateChatInvite {
    chats::CreateChatInvite {
        chat_ref: group(id),
        expires_at,
        max_uses,
    }
}

async fn invite(user: &mut TestUser, request: chats::CreateChatInvite) -> String {
    user.client
        .create_chat_invite(request)
        .await
        .expect("invite created")
        .into_inner()
        .code
}

/// The codes the caller sees listed, sorted (invites made in the same
/// millisecond have no order of their own).
async fn listed(user: &mut TestUser, id: u64) -> Vec<String> {
    let list = user
        .client
        .list_chat_invites(chats::ListChatInvites {
            chat_ref: group(id),
        })
        .await
        .expect("listed")
        .into_inner();
    for preview in &list.invites {
        assert_eq!(preview.target_id, id);
        assert_eq!(preview.target_type, auth::InviteType::Group as i32);
        assert!(
            preview.target_info.is_none(),
            "members have the group already"
        );
    }
    let mut codes: Vec<String> = list.invites.into_iter().map(|p| p.code).collect();
    codes.sort();
    codes
}

fn sorted(codes: &[&str]) -> Vec<String> {
    let mut codes: Vec<String> = codes.iter().map(|c| (*c).to_owned()).collect();
    codes.sort();
    codes
}

async fn a_group_holds_a_bounded_number_of_live_invites(engine: Engine) {
    let app = TestApp::spawn_tuned(engine, |s| s.limits.max_invites_per_group = 3).await;
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let cat = app.user("Cat").await;
    let id = ann.create_group("Club", &[bob.id]).await;

    let expires = now_ms() + 500;
    let once = invite(&mut ann, new_invite(id, None, Some(1))).await;
    let soon = invite(&mut ann, new_invite(id, Some(expires), None)).await;
    let bobs = invite(&mut bob, new_invite(id, None, None)).await;
    assert_code(
        bob.client
            .create_chat_invite(new_invite(id, None, None))
            .await,
        Code::FailedPrecondition,
        "the group has 3 live invites, at most 3 allowed",
    );
    assert_eq!(
        listed(&mut ann, id).await,
        sorted(&[once.as_str(), soon.as_str(), bobs.as_str()])
    );
    assert_eq!(
        listed(&mut bob, id).await,
        sorted(&[bobs.as_str()]),
        "a member sees their own"
    );

    // A used-up invite makes room, and is no longer listed.
    let mut cat_client = cat.client;
    cat_client
        .use_invite(auth::UseInvite { code: once.clone() })
        .await
        .expect("joined");
    assert_eq!(
        listed(&mut ann, id).await,
        sorted(&[soon.as_str(), bobs.as_str()])
    );
    let fourth = invite(&mut ann, new_invite(id, None, None)).await;
    assert_code(
        ann.client
            .create_chat_invite(new_invite(id, None, None))
            .await,
        Code::FailedPrecondition,
        "at most 3 allowed",
    );

    // So does an expired one: wait for its expiry on the wall clock.
    let left = expires.saturating_sub(now_ms()) + 20;
    tokio::time::sleep(Duration::from_millis(left)).await;
    assert_eq!(
        listed(&mut ann, id).await,
        sorted(&[bobs.as_str(), fourth.as_str()])
    );
    let fifth = invite(&mut ann, new_invite(id, None, None)).await;
    assert_eq!(
        listed(&mut ann, id).await,
        sorted(&[bobs.as_str(), fourth.as_str(), fifth.as_str()])
    );

    // Deleting one makes room too.
    bob.client
        .delete_chat_invite(chats::DeleteChatInvite { code: bobs })
        .await
        .expect("deleted");
    invite(&mut bob, new_invite(id, None, None)).await;
}

both_engines_custom!(a_group_holds_a_bounded_number_of_live_invites);
