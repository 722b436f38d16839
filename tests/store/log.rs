//! The update log: per user, seqs 1, 2, 3, ... with no gap, whatever
//! appends them (several changes at once, several appends in a
//! transaction, one rolled back, transactions racing), and pages of it
//! read back in order with their payloads intact.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use futures_util::future::join_all;
use osmium_chat::model::{Change, ChatId, LoggedUpdate, NewChange, Personal, Scope, UserId};
use osmium_chat::proto::{types, updates};
use osmium_chat::store::{Store, Tx};
use updates::update::Update as U;

use crate::fixtures::{assert_continues, begin, fresh, users, Gate, NO_BUDGET};

/// A message-created change in `scope`, with a text of `size` bytes.
fn change(scope: Option<Scope>, author: UserId, size: usize) -> Arc<Change> {
    let id = fresh();
    Arc::new(Change::new(
        id,
        updates::Update {
            update: Some(U::MessageCreated(updates::UpdateMessageCreated {
                message: Some(types::Message {
                    message_id: id,
                    author_id: author.get(),
                    message: "x".repeat(size),
                    ..Default::default()
                }),
                ..Default::default()
            })),
        },
        scope,
        Some((author, fresh())),
    ))
}

fn to(change: &Arc<Change>, recipients: &[(UserId, Option<u32>)]) -> NewChange {
    NewChange {
        change: change.clone(),
        recipients: recipients
            .iter()
            .map(|(u, unread)| (*u, Personal { unread: *unread }))
            .collect(),
    }
}

/// Each user's log read back whole equals the entries expected of it, in
/// seq order from 1, with payloads that render as the originals do.
async fn assert_logs(store: &dyn Store, expected: &BTreeMap<UserId, Vec<LoggedUpdate>>) {
    let mut tx = begin(store).await;
    for (user, entries) in expected {
        let seqs: Vec<u64> = entries.iter().map(|e| e.seq).collect();
        let gap_free: Vec<u64> = (1..=entries.len() as u64).collect();
        assert_eq!(seqs, gap_free, "expected seqs of user {user}");
        let head = tx.update_head(*user).await.expect("head");
        assert_eq!(head, entries.len() as u64, "head of user {user}");
        let heads = tx
            .update_heads(&[*user, UserId(u64::MAX)])
            .await
            .expect("heads");
        let together = heads
            .iter()
            .find(|(u, _)| u == user)
            .map_or(0, |(_, seq)| *seq);
        assert_eq!(together, head, "heads read together, of user {user}");
        assert!(
            heads.iter().all(|(u, _)| u == user),
            "only the users asked for"
        );
        let oldest = tx.oldest_update(*user).await.expect("oldest");
        assert_eq!(
            oldest,
            (!entries.is_empty()).then_some(1),
            "oldest of {user}"
        );
        let read = tx
            .updates_after(*user, 0, 1000, NO_BUDGET)
            .await
            .expect("log");
        assert_eq!(&read, entries, "log of user {user}");
        for entry in &read {
            assert_eq!(
                entry.render(),
                entry.change.render(*user, entry.personal),
                "rendering {user}/{}",
                entry.seq
            );
        }
    }
    tx.commit().await.expect("commit");
}

pub async fn log_seqs_run_from_one_without_gaps_across_appends_and_users(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 4).await;
    let [u1, u2, u3, u4] = [people[0], people[1], people[2], people[3]];
    let group = Some(Scope::Group {
        id: ChatId(fresh()),
        owner: Some(u2),
    });
    let direct = Some(Scope::Direct {
        low: u1.min(u3),
        high: u1.max(u3),
    });
    let mut heads: HashMap<UserId, u64> = people.iter().map(|u| (*u, 0)).collect();
    let mut expected: BTreeMap<UserId, Vec<LoggedUpdate>> = BTreeMap::new();
    let mut record =
        |heads: &mut HashMap<UserId, u64>, changes: &[NewChange], logged: Vec<LoggedUpdate>| {
            assert_continues(heads, changes, &logged);
            for entry in logged {
                heads.insert(entry.user, entry.seq);
                expected.entry(entry.user).or_default().push(entry);
            }
        };
    assert_logs(store, &people.iter().map(|u| (*u, Vec::new())).collect()).await;

    // Two changes in one append, overlapping in one user.
    let first = vec![
        to(&change(group, u1, 10), &[(u1, Some(0)), (u2, Some(1))]),
        to(&change(direct, u3, 10), &[(u2, None), (u3, Some(7))]),
    ];
    let mut tx = begin(store).await;
    let logged = tx.append_changes(first.clone()).await.expect("append");
    tx.commit().await.expect("commit");
    record(&mut heads, &first, logged);

    // Two appends in one transaction, the second committing with it.
    let second = vec![to(
        &change(group, u2, 10),
        &[(u4, None), (u3, Some(2)), (u2, None), (u1, Some(3))],
    )];
    let third = vec![to(&change(None, u4, 10), &[(u4, None)])];
    let mut tx = begin(store).await;
    let logged = tx.append_changes(second.clone()).await.expect("append");
    record(&mut heads, &second, logged);
    let logged = tx
        .commit_changes(third.clone())
        .await
        .expect("append and commit");
    record(&mut heads, &third, logged);

    // A rolled-back append takes no seq.
    let dropped = vec![to(&change(group, u1, 10), &[(u1, None), (u3, None)])];
    let mut tx = begin(store).await;
    let logged = tx.append_changes(dropped.clone()).await.expect("append");
    assert_continues(&heads, &dropped, &logged);
    drop(tx);

    // A change reaching one user twice over (two changes), committed together.
    let fourth = vec![
        to(&change(direct, u1, 10), &[(u3, Some(1)), (u1, Some(0))]),
        to(&change(direct, u3, 10), &[(u1, Some(1)), (u3, Some(0))]),
    ];
    let tx = begin(store).await;
    let logged = tx
        .commit_changes(fourth.clone())
        .await
        .expect("append and commit");
    record(&mut heads, &fourth, logged);

    assert_logs(store, &expected).await;
}

/// A page's seqs, once it is checked to be a run of the whole log `all`
/// from just after `after`.
async fn page(
    tx: &mut dyn Tx,
    all: &[LoggedUpdate],
    user: UserId,
    after: u64,
    limit: usize,
    max_bytes: usize,
) -> Vec<u64> {
    let got = tx
        .updates_after(user, after, limit, max_bytes)
        .await
        .expect("a page of the log");
    let run = &all[(after as usize).min(all.len())..];
    assert!(
        got.len() <= run.len(),
        "{} entries after {after}",
        got.len()
    );
    assert_eq!(
        got.as_slice(),
        &run[..got.len()],
        "page after {after}, limit {limit}, {max_bytes} bytes"
    );
    got.iter().map(|e| e.seq).collect()
}

pub async fn a_page_of_the_log_keeps_to_its_limit_and_byte_budget(store: Arc<dyn Store>) {
    let store = &*store;
    let user = users(store, 1).await[0];
    let scope = Some(Scope::Group {
        id: ChatId(fresh()),
        owner: None,
    });
    let changes: Vec<NewChange> = (0..5)
        .map(|_| to(&change(scope, user, 1000), &[(user, Some(1))]))
        .collect();
    let mut tx = begin(store).await;
    tx.append_changes(changes).await.expect("append");
    tx.commit().await.expect("commit");

    let mut tx = begin(store).await;
    let all = tx
        .updates_after(user, 0, 100, NO_BUDGET)
        .await
        .expect("log");
    assert_eq!(all.len(), 5);
    assert_eq!(
        page(tx.as_mut(), &all, user, 0, 3, NO_BUDGET).await,
        [1, 2, 3],
        "limit"
    );
    assert_eq!(
        page(tx.as_mut(), &all, user, 2, 2, NO_BUDGET).await,
        [3, 4],
        "after and limit"
    );
    assert_eq!(
        page(tx.as_mut(), &all, user, 3, 100, NO_BUDGET).await,
        [4, 5],
        "the rest"
    );
    assert_eq!(
        page(tx.as_mut(), &all, user, 5, 100, NO_BUDGET).await,
        [0u64; 0],
        "past the head"
    );
    assert_eq!(
        page(tx.as_mut(), &all, user, 0, 100, 1).await,
        [1],
        "a tiny budget still gives one"
    );
    assert_eq!(
        page(tx.as_mut(), &all, user, 3, 100, 1).await,
        [4],
        "a tiny budget still gives one"
    );
    assert_eq!(
        page(tx.as_mut(), &all, user, 0, 100, 0).await,
        [1],
        "no budget at all still gives one"
    );
    assert_eq!(
        page(tx.as_mut(), &all, user, 0, 100, usize::MAX).await,
        [1, 2, 3, 4, 5],
        "the largest budget is no budget"
    );
    // About two and a half payloads: fewer than the limit, at least one,
    // and always the first ones in order.
    let some = page(tx.as_mut(), &all, user, 0, 100, 2500).await;
    assert!(
        !some.is_empty() && some.len() < 5,
        "a budget of 2500 bytes for 1000-byte payloads gave {some:?}"
    );
    tx.commit().await.expect("commit");
}

pub async fn racing_appends_to_overlapping_users_stay_gap_free_and_unique(store: Arc<dyn Store>) {
    let store = &*store;
    const RACERS: usize = 6;
    const CHANGES: usize = 3;
    let people = users(store, 5).await;
    let gate = Gate::new(store, RACERS);
    let racer = |n: usize| {
        let (gate, people) = (&gate, &people);
        async move {
            let mut changes = Vec::new();
            for j in 0..CHANGES {
                let mut recipients: Vec<(UserId, Option<u32>)> = Vec::new();
                for k in [n + j, n + j + 1, n + 2 * j + 3] {
                    let user = people[k % people.len()];
                    if !recipients.iter().any(|(u, _)| *u == user) {
                        recipients.push((user, Some(n as u32)));
                    }
                }
                if !n.is_multiple_of(2) {
                    recipients.reverse();
                }
                changes.push(to(&change(None, people[n % people.len()], 50), &recipients));
            }
            let mut tx = begin(store).await;
            // Opens the transaction before the others write.
            tx.update_head(people[0]).await.expect("head");
            gate.pass().await;
            let logged = if n.is_multiple_of(2) {
                let logged = tx.append_changes(changes).await.expect("append");
                tx.commit().await.expect("commit");
                logged
            } else {
                tx.commit_changes(changes).await.expect("append and commit")
            };
            logged
        }
    };
    let results = join_all((0..RACERS).map(racer)).await;

    // Each user's entries over all racers: seqs 1..=n exactly once each.
    let mut taken: BTreeMap<UserId, BTreeMap<u64, u64>> = BTreeMap::new();
    for entry in results.iter().flatten() {
        let previous = taken
            .entry(entry.user)
            .or_default()
            .insert(entry.seq, entry.change.id);
        assert_eq!(
            previous, None,
            "seq {} of {} given twice",
            entry.seq, entry.user
        );
    }
    let mut tx = begin(store).await;
    for (user, seqs) in &taken {
        let numbers: Vec<u64> = seqs.keys().copied().collect();
        let gap_free: Vec<u64> = (1..=seqs.len() as u64).collect();
        assert_eq!(numbers, gap_free, "seqs of user {user}");
        assert_eq!(
            tx.update_head(*user).await.expect("head"),
            seqs.len() as u64
        );
        let stored: BTreeMap<u64, u64> = tx
            .updates_after(*user, 0, 1000, NO_BUDGET)
            .await
            .expect("log")
            .iter()
            .map(|e| (e.seq, e.change.id))
            .collect();
        assert_eq!(&stored, seqs, "the log of {user} as its appends were told");
    }
    tx.commit().await.expect("commit");
}
