//! A group's invites: only usable ones are listed (a creator's alone when
//! asked, oldest first, up to a limit), and pruning deletes exactly the
//! expired and used-up ones of that group.

use std::sync::Arc;

use osmium_chat::model::{ChatId, InviteRow, UserId};
use osmium_chat::store::Store;

use crate::fixtures::{begin, fresh, group, users};

const NOW: u64 = 1_700_000_000_000;

fn invite(chat: ChatId, creator: UserId, age: u64) -> InviteRow {
    InviteRow {
        code: format!("code-{}", fresh()),
        chat_id: chat,
        creator,
        created_at: NOW - 10_000 + age,
        expires_at: None,
        max_uses: None,
        uses: 0,
    }
}

pub async fn dead_invites_are_pruned_and_never_listed(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 2).await;
    let (ann, bob) = (people[0], people[1]);
    let chat = group(store, &[ann, bob]).await.id;
    let other = group(store, &[ann]).await.id;
    let live = invite(chat, ann, 1);
    let bobs = InviteRow {
        expires_at: Some(NOW + 1),
        ..invite(chat, bob, 2)
    };
    let unused = InviteRow {
        max_uses: Some(2),
        uses: 1,
        ..invite(chat, ann, 3)
    };
    let expired = InviteRow {
        expires_at: Some(NOW),
        ..invite(chat, ann, 4)
    };
    let used_up = InviteRow {
        max_uses: Some(1),
        uses: 1,
        ..invite(chat, bob, 5)
    };
    let elsewhere = InviteRow {
        expires_at: Some(NOW - 1),
        ..invite(other, ann, 6)
    };
    let mut tx = begin(store).await;
    for row in [&live, &bobs, &unused, &expired, &used_up, &elsewhere] {
        tx.insert_invite(row).await.expect("invite");
    }
    tx.commit().await.expect("commit");

    let mut tx = begin(store).await;
    let codes = |rows: Vec<InviteRow>| rows.into_iter().map(|r| r.code).collect::<Vec<_>>();
    assert_eq!(
        codes(tx.invites(chat, None, NOW, 10).await.expect("listed")),
        [live.code.as_str(), &bobs.code, &unused.code],
        "usable ones, oldest first"
    );
    assert_eq!(
        codes(tx.invites(chat, None, NOW, 2).await.expect("listed")),
        [live.code.as_str(), &bobs.code]
    );
    assert_eq!(
        codes(tx.invites(chat, Some(bob), NOW, 10).await.expect("listed")),
        [bobs.code.as_str()]
    );
    assert_eq!(tx.count_invites(chat).await.expect("counted"), 5);
    assert_eq!(tx.prune_invites(chat, NOW).await.expect("pruned"), 2);
    assert_eq!(tx.count_invites(chat).await.expect("counted"), 3);
    assert_eq!(
        tx.count_invites(other).await.expect("counted"),
        1,
        "another group's stay"
    );
    tx.commit().await.expect("commit");
    let mut tx = begin(store).await;
    assert_eq!(tx.invite(&expired.code, false).await.expect("read"), None);
    assert_eq!(tx.invite(&used_up.code, false).await.expect("read"), None);
    assert_eq!(
        tx.invite(&live.code, false).await.expect("read"),
        Some(live)
    );
    tx.commit().await.expect("commit");
}

pub async fn the_periodic_prune_deletes_dead_invites_of_every_group(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 1).await;
    let ann = people[0];
    let quiet = group(store, &[ann]).await.id;
    let other = group(store, &[ann]).await.id;
    let live = InviteRow {
        expires_at: Some(NOW + 1),
        ..invite(quiet, ann, 1)
    };
    let dead: Vec<InviteRow> = (0..5)
        .map(|i| InviteRow {
            expires_at: Some(NOW - i),
            ..invite(if i % 2 == 0 { quiet } else { other }, ann, 2 + i)
        })
        .chain([InviteRow {
            max_uses: Some(1),
            uses: 1,
            ..invite(other, ann, 9)
        }])
        .collect();
    let mut tx = begin(store).await;
    for row in dead.iter().chain([&live]) {
        tx.insert_invite(row).await.expect("invite");
    }
    tx.commit().await.expect("commit");

    // A batch smaller than what is dead: the prune goes on until it is all gone.
    let pruned = store.prune_dead_invites(NOW, 2).await.expect("pruned");
    assert_eq!(pruned, dead.len() as u64);
    let mut tx = begin(store).await;
    for row in &dead {
        assert_eq!(tx.invite(&row.code, false).await.expect("read"), None);
    }
    assert_eq!(
        tx.invite(&live.code, false).await.expect("read"),
        Some(live)
    );
    assert_eq!(tx.count_invites(other).await.expect("counted"), 0);
    tx.commit().await.expect("commit");
    assert_eq!(store.prune_dead_invites(NOW, 2).await.expect("pruned"), 0);
}
