//! Unique keys: one direct chat per pair, one message per (author, client
//! id). A second writer gets `StoreError::Duplicate`, also when it raced
//! the first, and a batch that fails on one leaves nothing behind.

use std::sync::Arc;

use futures_util::future::join_all;
use osmium_chat::model::{ChatId, ChatRow, MessageId};
use osmium_chat::store::{Store, StoreError};

use crate::fixtures::{
    begin, composed, direct_row, fresh, group, outcome, post, snapshot, users, Commit, Gate,
    Outcome, Post,
};

pub async fn a_second_direct_chat_of_a_pair_is_a_duplicate(store: Arc<dyn Store>) {
    let store = &*store;
    let ab = users(store, 3).await;
    let (a, b, c) = (ab[0], ab[1], ab[2]);
    let first = direct_row(a, b);
    let saved = direct_row(a, a);
    let mut tx = begin(store).await;
    assert_eq!(outcome(tx.insert_chat(&first).await), Outcome::Done);
    assert_eq!(outcome(tx.insert_chat(&saved).await), Outcome::Done);
    tx.commit().await.expect("commit");

    let mut tx = begin(store).await;
    // The pair in either order is the same pair.
    assert_eq!(
        outcome(tx.insert_chat(&direct_row(b, a)).await),
        Outcome::Duplicate,
        "a second direct chat of a pair"
    );
    assert_eq!(
        outcome(tx.insert_chat(&direct_row(a, a)).await),
        Outcome::Duplicate,
        "a second saved-messages chat"
    );
    assert_eq!(
        outcome(tx.insert_chat(&direct_row(a, c)).await),
        Outcome::Done,
        "another pair with one user in common"
    );
    tx.commit().await.expect("commit");

    let mut tx = begin(store).await;
    let (low, high) = (a.min(b), a.max(b));
    assert_eq!(
        tx.direct_chat(low, high, false).await.expect("read"),
        Some(first)
    );
    assert_eq!(
        tx.direct_chat(a, a, false).await.expect("read"),
        Some(saved)
    );
    tx.commit().await.expect("commit");
}

pub async fn racing_creators_of_a_direct_chat_make_one_chat_and_a_duplicate(store: Arc<dyn Store>) {
    let store = &*store;
    let pair = users(store, 2).await;
    let (low, high) = (pair[0].min(pair[1]), pair[0].max(pair[1]));
    let gate = Gate::new(store, 2);
    let racer = |chat: ChatRow| {
        let gate = &gate;
        async move {
            let mut tx = begin(store).await;
            // Both look first, as the domain does, and find nothing when they overlap.
            tx.direct_chat(low, high, true).await.expect("read");
            gate.pass().await;
            let result = outcome(tx.insert_chat(&chat).await);
            if result == Outcome::Done {
                tx.commit().await.expect("commit");
            }
            (chat.id, result)
        }
    };
    let results = join_all([racer(direct_row(low, high)), racer(direct_row(high, low))]).await;
    let winners: Vec<ChatId> = results
        .iter()
        .filter(|(_, r)| *r == Outcome::Done)
        .map(|(id, _)| *id)
        .collect();
    let duplicates = results
        .iter()
        .filter(|(_, r)| *r == Outcome::Duplicate)
        .count();
    assert_eq!((winners.len(), duplicates), (1, 1), "{results:?}");
    let mut tx = begin(store).await;
    let chat = tx.direct_chat(low, high, false).await.expect("read");
    assert_eq!(chat.map(|c| c.id), Some(winners[0]));
    for (id, _) in &results {
        let exists = tx.chat(*id, false).await.expect("read").is_some();
        assert_eq!(exists, *id == winners[0], "chat {id}");
    }
    tx.commit().await.expect("commit");
}

pub async fn a_taken_client_id_is_a_duplicate_and_its_batch_leaves_nothing(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 2).await;
    let (a, b) = (people[0], people[1]);
    let chat = group(store, &people).await;
    let taken = fresh();
    let sent = post(
        store,
        chat.id,
        &[Post::by(a).with_client_id(taken)],
        Commit::AfterWrites,
    )
    .await;
    let before = snapshot(store, chat.id, &people).await;

    // One message at a time, each in a batch of its own, rolled back.
    let alone = |post: Post| async move {
        let (mut tx, batch) = composed(store, chat.id, &[post]).await;
        outcome(tx.write_posts(&batch.writes, batch.changes.clone()).await)
    };
    assert_eq!(
        alone(Post::by(a).with_client_id(taken)).await,
        Outcome::Duplicate,
        "the author's client id is taken"
    );
    assert_eq!(
        alone(Post::by(b).with_client_id(taken)).await,
        Outcome::Done,
        "client ids are per author"
    );
    assert_eq!(
        alone(Post::by(a)).await,
        Outcome::Done,
        "another client id of the same author"
    );

    // A batch with a taken client id after a good message: neither the
    // batch nor its log entries remain, however it is committed.
    for commit in [
        Commit::AfterWrites,
        Commit::WithWrites {
            unlock_early: false,
        },
        Commit::WithWrites { unlock_early: true },
    ] {
        let (mut tx, batch) = composed(
            store,
            chat.id,
            &[
                Post::by(b).mentioning(&[a]),
                Post::by(a).with_client_id(taken),
            ],
        )
        .await;
        let result = match commit {
            Commit::AfterWrites => {
                let result = outcome(tx.write_posts(&batch.writes, batch.changes.clone()).await);
                drop(tx);
                result
            }
            Commit::WithWrites { unlock_early } => outcome(
                tx.commit_posts(&batch.writes, batch.changes.clone(), unlock_early)
                    .await
                    .map(|_| ()),
            ),
        };
        assert_eq!(result, Outcome::Duplicate, "{commit:?}");
        let after = snapshot(store, chat.id, &people).await;
        assert_eq!(after, before, "after a failed batch ({commit:?})");
        let mut tx = begin(store).await;
        assert!(
            tx.messages_by_id(&batch.ids())
                .await
                .expect("read")
                .is_empty(),
            "{commit:?}"
        );
        let found = tx.message_by_client_id(a, taken).await.expect("read");
        assert_eq!(found.map(|m| m.id), Some(sent.ids()[0]));
        tx.commit().await.expect("commit");
    }

    // One client id twice within a batch is a duplicate too.
    let twice = fresh();
    let (mut tx, batch) = composed(
        store,
        chat.id,
        &[
            Post::by(b).with_client_id(twice),
            Post::by(b).with_client_id(twice),
        ],
    )
    .await;
    assert_eq!(
        outcome(tx.write_posts(&batch.writes, batch.changes.clone()).await),
        Outcome::Duplicate,
        "a client id twice in one batch"
    );
    drop(tx);
    assert_eq!(snapshot(store, chat.id, &people).await, before);
}

pub async fn racing_sends_with_one_client_id_make_one_message_and_a_duplicate(
    store: Arc<dyn Store>,
) {
    let store = &*store;
    let people = users(store, 2).await;
    let (a, b) = (people[0], people[1]);
    // Two chats, so that the sends do not wait for each other's chat lock:
    // only the unique key orders them.
    let chats = [group(store, &[a, b]).await, group(store, &[b, a]).await];
    let client_id = fresh();
    let gate = Gate::new(store, chats.len());
    let racer = |chat: ChatId| {
        let gate = &gate;
        async move {
            let (mut tx, batch) =
                composed(store, chat, &[Post::by(a).with_client_id(client_id)]).await;
            gate.pass().await;
            let result = outcome(tx.write_posts(&batch.writes, batch.changes.clone()).await);
            if result == Outcome::Done {
                tx.commit().await.expect("commit");
            }
            (chat, batch.ids()[0], result)
        }
    };
    let results = join_all(chats.iter().map(|c| racer(c.id))).await;
    let winners: Vec<_> = results
        .iter()
        .filter(|(_, _, r)| *r == Outcome::Done)
        .collect();
    let duplicates = results
        .iter()
        .filter(|(_, _, r)| *r == Outcome::Duplicate)
        .count();
    assert_eq!((winners.len(), duplicates), (1, 1), "{results:?}");
    let (winning_chat, winning_message, _) = *winners[0];

    let mut tx = begin(store).await;
    let found = tx.message_by_client_id(a, client_id).await.expect("read");
    assert_eq!(found.map(|m| m.id), Some(winning_message));
    for (chat, _, _) in &results {
        let row = tx.chat(*chat, false).await.expect("read").expect("chat");
        let messages = tx.messages_before(*chat, None, 10).await.expect("read");
        if *chat == winning_chat {
            assert_eq!((row.msg_seq, row.last_message), (1, Some(winning_message)));
            assert_eq!(messages.len(), 1);
        } else {
            assert_eq!(
                (row.msg_seq, row.last_message),
                (0, None),
                "the losing chat"
            );
            assert!(messages.is_empty(), "the losing chat has {messages:?}");
        }
    }
    // Only the winner's message reached the logs.
    for user in [a, b] {
        assert_eq!(tx.update_head(user).await.expect("head"), 1, "user {user}");
    }
    tx.commit().await.expect("commit");
}

/// A message or chat id already in use is an id minted twice (two replicas
/// on one worker number): an error of its own, never taken for a retry of a
/// send or a racing creator of a direct chat, whose answer would then be
/// someone else's row.
pub async fn an_id_minted_twice_is_an_error_not_a_duplicate(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 2).await;
    let chat = group(store, &people).await;
    let id = MessageId(fresh());
    post(
        store,
        chat.id,
        &[Post::by(people[0]).with_id(id)],
        Commit::AfterWrites,
    )
    .await;
    for author in [people[0], people[1]] {
        let (mut tx, batch) = composed(store, chat.id, &[Post::by(author).with_id(id)]).await;
        let again = tx.write_posts(&batch.writes, batch.changes.clone()).await;
        assert!(matches!(again, Err(StoreError::IdTaken)), "{again:?}");
    }
    let mut tx = begin(store).await;
    let direct = ChatRow {
        id: chat.id,
        ..direct_row(people[0], people[1])
    };
    let again = tx.insert_chat(&direct).await;
    assert!(matches!(again, Err(StoreError::IdTaken)), "{again:?}");
}
