//! Reads take turns on Postgres (`OSMIUM_DB_READ_CONCURRENCY`): past the
//! bound a read waits, counted, in arrival order, and runs once a turn is
//! given back; a cancelled wait leaves the count; writes do not take turns.

use std::sync::Arc;
use std::time::Duration;

use osmium_chat::model::{ChatId, ChatKey, MessageId, UserId};
use osmium_chat::store::postgres::PostgresStore;
use osmium_chat::store::{ChatEntry, ConversationRange, HistoryRange, Store, StoreResult};

use crate::fixtures::{begin, fresh, group, post, users, Commit, Post};
use crate::pages::expected_entry;

async fn store_reading_one_at_a_time() -> Arc<PostgresStore> {
    let url = crate::throwaway_postgres::fresh_schema_url().await;
    let store = PostgresStore::connect(&url, crate::POOL_SIZE, Default::default())
        .expect("a pool for the throwaway server")
        .with_read_concurrency(1);
    store.migrate().await.expect("migrations apply");
    Arc::new(store)
}

fn reads_waiting(store: &PostgresStore) -> usize {
    store.pool_status().expect("a pool").reads_waiting
}

/// Yields until `count` reads wait for their turn.
async fn until_waiting(store: &PostgresStore, count: usize) {
    for _ in 0..100_000 {
        if reads_waiting(store) == count {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{count} reads never waited: {} do", reads_waiting(store));
}

/// Yields until `count` calls wait for a connection.
async fn until_connecting(store: &PostgresStore, count: usize) {
    for _ in 0..100_000 {
        if store.pool_status().expect("a pool").waiting == count {
            return;
        }
        tokio::task::yield_now().await;
    }
    panic!("{count} calls never waited for a connection");
}

/// A group of two people, and the entry GetChat shows the second.
async fn group_of_two(store: &PostgresStore) -> (Vec<UserId>, ChatId, ChatEntry) {
    let people = users(store, 2).await;
    let chat = group(store, &people).await;
    let mut tx = begin(store).await;
    let expected = expected_entry(tx.as_mut(), chat.id, people[1]).await;
    tx.commit().await.expect("commit");
    (people, chat.id, expected)
}

/// `user`'s GetChat of the group `chat`, in a call of its own.
fn ask_entry(
    store: &Arc<PostgresStore>,
    chat: ChatId,
    user: UserId,
) -> tokio::task::JoinHandle<StoreResult<Option<ChatEntry>>> {
    let store = store.clone();
    tokio::spawn(async move { store.chat_entry(ChatKey::Group(chat), user).await })
}

/// [`answers_behind_one_turn`], every call answered.
async fn asked_behind_one_turn<Q, A, F, Ask>(
    store: &Arc<PostgresStore>,
    asked: &[Q],
    ask: Ask,
) -> Vec<A>
where
    Q: Copy + Send + 'static,
    A: Send + 'static,
    F: std::future::Future<Output = StoreResult<A>> + Send + 'static,
    Ask: Fn(Arc<PostgresStore>, Q) -> F,
{
    answers_behind_one_turn(store, asked, ask)
        .await
        .into_iter()
        .map(|answer| answer.expect("an answer"))
        .collect()
}

fn spawn_read(store: &Arc<PostgresStore>) -> tokio::task::JoinHandle<()> {
    let store = store.clone();
    tokio::spawn(async move {
        let tx = store.reader().await.expect("a read's turn");
        tx.commit().await.expect("a read ends");
    })
}

#[tokio::test]
async fn postgres_reads_past_the_bound_wait_their_turn() {
    let store = store_reading_one_at_a_time().await;
    let first = store.reader().await.expect("the first read's turn");
    assert_eq!(reads_waiting(&store), 0);

    // A wait given up (the call cancelled) is no longer counted.
    let cancelled = spawn_read(&store);
    until_waiting(&store, 1).await;
    cancelled.abort();
    assert!(cancelled.await.expect_err("aborted").is_cancelled());
    assert_eq!(reads_waiting(&store), 0);

    let second = spawn_read(&store);
    until_waiting(&store, 1).await;
    assert!(!second.is_finished(), "a read ran past the bound");
    // A write takes a connection of the pool while reads wait their turn.
    let write = store.begin().await.expect("a write while reads wait");
    write.commit().await.expect("the write ends");
    assert_eq!(reads_waiting(&store), 1);

    first.commit().await.expect("the first read ends");
    second
        .await
        .expect("the second read ran once the first ended");
    assert_eq!(reads_waiting(&store), 0);
}

/// GetChat's reads queued behind a turn go out together when it comes: one
/// statement, each call its own entry. The call holding the turn when the
/// batch goes is cancelled mid-way: the others still get their answers.
#[tokio::test]
async fn postgres_chat_entries_waiting_together_share_one_statement() {
    let store = store_reading_one_at_a_time().await;
    let dyn_store: &dyn Store = &*store;
    let people = users(dyn_store, 6).await;
    let chat = group(dyn_store, &people).await;
    // Unread counts that differ by member: each has posted one message more.
    for (i, author) in people.iter().enumerate() {
        let posts: Vec<Post> = (0..=i).map(|_| Post::by(*author)).collect();
        post(dyn_store, chat.id, &posts, Commit::AfterWrites).await;
    }
    let mut tx = begin(dyn_store).await;
    let mut expected = Vec::new();
    for user in &people {
        expected.push(expected_entry(tx.as_mut(), chat.id, *user).await);
    }
    tx.commit().await.expect("commit");
    let before = store.pool_status().expect("a pool");

    let first = store.reader().await.expect("the turn");
    let calls: Vec<_> = people
        .iter()
        .map(|user| {
            let (store, user) = (store.clone(), *user);
            tokio::spawn(async move { store.chat_entry(ChatKey::Group(chat.id), user).await })
        })
        .collect();
    until_waiting(&store, people.len()).await;
    first.commit().await.expect("the turn given back");
    // The first call takes the turn, and the batch with it, then gives up.
    tokio::task::yield_now().await;
    calls[0].abort();

    for (call, expected) in calls.into_iter().zip(expected).skip(1) {
        let entry = call.await.expect("the call ran").expect("entry");
        assert_eq!(entry, Some(expected));
    }
    let after = store.pool_status().expect("a pool").chat_entries;
    let before = before.chat_entries;
    assert_eq!(after.calls - before.calls, people.len() as u64);
    assert_eq!(
        after.statements - before.statements,
        1,
        "one statement for every call that waited"
    );
}

/// GetHistory's pages likewise: the calls that waited for one turn share
/// one statement, each with its own page (readers and ranges differ).
#[tokio::test]
async fn postgres_history_pages_waiting_together_share_one_statement() {
    let store = store_reading_one_at_a_time().await;
    let dyn_store: &dyn Store = &*store;
    let people = users(dyn_store, 4).await;
    let chat = group(dyn_store, &people[..3]).await;
    let posts: Vec<Post> = (0..6).map(|i| Post::by(people[i % 3])).collect();
    post(dyn_store, chat.id, &posts, Commit::AfterWrites).await;
    let key = ChatKey::Group(chat.id);
    // Each reader asks for one message more; the last is no member.
    let asked: Vec<_> = people
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let range = HistoryRange {
                below: None,
                older: i + 1,
                above: MessageId(0),
                newer: 0,
            };
            (key, *user, range)
        })
        .collect();
    let mut tx = begin(dyn_store).await;
    let expected = tx.history_pages(&asked).await.expect("pages");
    tx.commit().await.expect("commit");
    let sizes: Vec<usize> = expected.iter().map(|p| p.messages.len()).collect();
    assert_eq!(sizes, [1, 2, 3, 0]);
    let before = store.pool_status().expect("a pool").history_pages;

    let pages = asked_behind_one_turn(&store, &asked, |store, (key, user, range)| async move {
        store.history_page(key, user, range).await
    })
    .await;
    assert_eq!(pages, expected);
    let after = store.pool_status().expect("a pool").history_pages;
    assert_eq!(after.calls - before.calls, asked.len() as u64);
    assert_eq!(after.statements - before.statements, 1, "one statement");
}

/// GetChats' pages likewise, four to a statement at most: readers and
/// ranges differ, each call gets its own page, newest activity first, as
/// the statement for one reads it.
#[tokio::test]
async fn postgres_chat_pages_waiting_together_share_statements_of_four() {
    let store = store_reading_one_at_a_time().await;
    let dyn_store: &dyn Store = &*store;
    let people = users(dyn_store, 4).await;
    let [a, b, c, d] = [people[0], people[1], people[2], people[3]];
    for members in [&[a, b, c][..], &[b, a], &[c, a, d]] {
        let chat = group(dyn_store, members).await;
        post(
            dyn_store,
            chat.id,
            &[Post::by(members[0])],
            Commit::AfterWrites,
        )
        .await;
    }
    let everything = |limit| ConversationRange {
        before: None,
        after: None,
        limit,
    };
    let mut tx = begin(dyn_store).await;
    let newest = tx.chat_page(a, everything(1)).await.expect("page");
    let key = newest[0].member.sort_key;
    let older = ConversationRange {
        before: Some(key),
        ..everything(10)
    };
    let asked = [
        (a, everything(10)),
        (b, everything(1)),
        (a, older),
        (d, everything(10)),
        (UserId(fresh()), everything(10)),
    ];
    let mut expected = Vec::new();
    for (user, range) in asked {
        expected.push(tx.chat_page(user, range).await.expect("page"));
    }
    tx.commit().await.expect("commit");
    let sizes: Vec<usize> = expected.iter().map(Vec::len).collect();
    assert_eq!(sizes, [3, 1, 2, 1, 0]);
    let before = store.pool_status().expect("a pool").chat_pages;

    let pages = asked_behind_one_turn(&store, &asked, |store, (user, range)| async move {
        store.chat_page(user, range).await
    })
    .await;
    assert_eq!(pages, expected);
    let after = store.pool_status().expect("a pool").chat_pages;
    assert_eq!(after.calls - before.calls, asked.len() as u64);
    assert_eq!(
        after.statements - before.statements,
        2,
        "five pages in two statements: four, then one"
    );
}

/// Two GetChat calls wait behind one turn; one is cancelled before the turn
/// comes back: the statement reads only the question still asked.
#[tokio::test]
async fn postgres_a_cancelled_call_withdraws_its_question() {
    let store = store_reading_one_at_a_time().await;
    let (people, chat, expected) = group_of_two(&store).await;
    let before = store.pool_status().expect("a pool").chat_entries;

    let first = store.reader().await.expect("the turn");
    let ask = |user: UserId| ask_entry(&store, chat, user);
    let cancelled = ask(people[0]);
    let kept = ask(people[1]);
    until_waiting(&store, 2).await;
    cancelled.abort();
    assert!(cancelled.await.expect_err("aborted").is_cancelled());
    first.commit().await.expect("the turn given back");

    let entry = kept.await.expect("the call ran").expect("entry");
    assert_eq!(entry, Some(expected));
    let after = store.pool_status().expect("a pool").chat_entries;
    assert_eq!(
        after.calls - before.calls,
        1,
        "the cancelled question went unread"
    );
    assert_eq!(after.statements - before.statements, 1);
}

/// Two GetChat calls wait for the only turn while every connection is
/// taken; the turn, when it comes, sends both questions in one statement.
/// Each call waits for a connection its own time and no longer: the first
/// fails, retryable, when its time is out; the second waits on and is
/// answered once a connection comes back. The clock is paused, so the
/// pool's 10 s waits pass as the test advances it.
#[tokio::test]
async fn postgres_a_batched_call_waits_its_own_time_for_a_connection() {
    let store = store_reading_one_at_a_time().await;
    let (people, chat, expected) = group_of_two(&store).await;
    let mut held = Vec::new();
    for _ in 0..crate::POOL_SIZE {
        held.push(begin(&*store).await);
    }
    tokio::time::pause();
    let ask = |user: UserId| ask_entry(&store, chat, user);

    // The turn goes to a read that waits for a connection, and gets none.
    let holder = {
        let store = store.clone();
        tokio::spawn(async move { store.reader().await.map(drop) })
    };
    until_connecting(&store, 1).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let first = ask(people[0]);
    until_waiting(&store, 1).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let second = ask(people[1]);
    until_waiting(&store, 2).await;

    // At 10 s the holder gives up and its turn sends both questions; at
    // 11 s the first call is out of time.
    let gave_up = holder.await.expect("the holder ran");
    assert!(gave_up.expect_err("no connection").transient().is_some());
    let failed = first.await.expect("the first call ran");
    let error = failed.expect_err("no connection within the first call's time");
    assert!(error.transient().is_some(), "to be retried: {error}");
    assert!(!second.is_finished(), "held to the first call's time");
    assert_eq!(store.pool_status().expect("a pool").waiting, 1);

    // Given back unused, so without a round trip: the clock does not run on
    // while it is in flight. While the statement is, the second call's own
    // wait for a turn ends, and it still takes the statement's answer.
    drop(held.pop());
    let entry = second.await.expect("the second call ran").expect("entry");
    assert_eq!(entry, Some(expected));
}

/// Calls waiting behind one turn, one of them about a chat whose stored
/// message cannot be decoded: that call fails, not retryable, and the
/// others asked in the same statement get their answers.
#[tokio::test]
async fn postgres_a_row_that_cannot_be_read_fails_only_its_own_call() {
    let store = store_reading_one_at_a_time().await;
    let dyn_store: &dyn Store = &*store;
    let people = users(dyn_store, 2).await;
    let broken = group(dyn_store, &people).await;
    let sound = group(dyn_store, &people).await;
    for chat in [&broken, &sound] {
        post(
            dyn_store,
            chat.id,
            &[Post::by(people[0])],
            Commit::AfterWrites,
        )
        .await;
    }
    let everything = HistoryRange {
        below: None,
        older: 10,
        above: MessageId(0),
        newer: 0,
    };
    let sound_key = ChatKey::Group(sound.id);
    let mut tx = begin(dyn_store).await;
    let entry = expected_entry(tx.as_mut(), sound.id, people[1]).await;
    let page = tx
        .history_pages(&[(sound_key, people[1], everything)])
        .await
        .expect("page")
        .remove(0);
    tx.commit().await.expect("commit");
    assert_eq!(page.messages.len(), 1);
    // Not a message in the wire form: a varint cut short. The copy on the
    // chat row (GetChat) and the message itself (GetHistory) both.
    let db = store.pool().get().await.expect("a connection");
    for sql in [
        "UPDATE messages SET body = '\\xff'::bytea WHERE chat_id = $1",
        "UPDATE chats SET last_body = '\\xff'::bytea WHERE id = $1",
    ] {
        db.execute(sql, &[&(broken.id.get() as i64)])
            .await
            .expect("a body that cannot be decoded");
    }
    drop(db);

    let broken_key = ChatKey::Group(broken.id);
    let reader = people[1];
    let before = store.pool_status().expect("a pool");
    let entries =
        answers_behind_one_turn(&store, &[broken_key, sound_key], |store, key| async move {
            store.chat_entry(key, reader).await
        })
        .await;
    let [failed, answered] = <[_; 2]>::try_from(entries).expect("two answers");
    assert_not_retryable(failed.expect_err("the broken chat's entry"));
    assert_eq!(answered.expect("the sound chat's entry"), Some(entry));

    let pages =
        answers_behind_one_turn(&store, &[broken_key, sound_key], |store, key| async move {
            store.history_page(key, reader, everything).await
        })
        .await;
    let [failed, answered] = <[_; 2]>::try_from(pages).expect("two answers");
    assert_not_retryable(failed.expect_err("the broken chat's history"));
    assert_eq!(answered.expect("the sound chat's history"), page);
    let after = store.pool_status().expect("a pool");
    assert_eq!(
        after.chat_entries.statements - before.chat_entries.statements,
        1
    );
    assert_eq!(
        after.history_pages.statements - before.history_pages.statements,
        1
    );
}

/// A batched read whose rows make the replica panic (a column of a type it
/// does not expect) answers its callers with an error that says not to
/// retry, not with the retryable loss of a runtime shutting down.
#[tokio::test]
async fn postgres_a_batched_read_that_panics_answers_not_retryable() {
    let store = store_reading_one_at_a_time().await;
    let dyn_store: &dyn Store = &*store;
    let people = users(dyn_store, 2).await;
    let chat = group(dyn_store, &people).await;
    store
        .pool()
        .get()
        .await
        .expect("a connection")
        .batch_execute("ALTER TABLE chats ALTER COLUMN kind TYPE integer")
        .await
        .expect("a column the replica reads as smallint");

    let error = store
        .chat_entry(ChatKey::Group(chat.id), people[0])
        .await
        .expect_err("no entry from rows that cannot be read");
    assert_not_retryable(error);
}

/// Asks each of `asked` in a call of its own while a read holds the only
/// turn, then gives the turn back once all of them wait: each call's
/// answer or its failure, in the order asked.
async fn answers_behind_one_turn<Q, A, F, Ask>(
    store: &Arc<PostgresStore>,
    asked: &[Q],
    ask: Ask,
) -> Vec<StoreResult<A>>
where
    Q: Copy + Send + 'static,
    A: Send + 'static,
    F: std::future::Future<Output = StoreResult<A>> + Send + 'static,
    Ask: Fn(Arc<PostgresStore>, Q) -> F,
{
    let first = store.reader().await.expect("the turn");
    let calls: Vec<_> = asked
        .iter()
        .map(|&question| tokio::spawn(ask(store.clone(), question)))
        .collect();
    until_waiting(store, asked.len()).await;
    first.commit().await.expect("the turn given back");
    let mut answers = Vec::with_capacity(calls.len());
    for call in calls {
        answers.push(call.await.expect("the call ran"));
    }
    answers
}

fn assert_not_retryable(error: osmium_chat::store::StoreError) {
    assert_eq!(error.transient(), None, "not to be retried: {error}");
}
