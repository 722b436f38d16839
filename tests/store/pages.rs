//! The pages the read RPCs are made of: each must say what the single-row
//! reads say (chat, member, last message, participants, messages), keep to
//! its range and order, and tell whether the reader is a member.

use std::sync::Arc;

use futures_util::future::join_all;

use osmium_chat::model::{ChatId, ChatKey, ChatKind, ChatRow, MessageId, UserId};
use osmium_chat::store::{
    ChatEntry, ConversationRange, HistoryPage, HistoryRange, LastMessage, Store, Tx,
};

use crate::fixtures::{
    begin, direct, fresh, group, group_row, new_member, post, users, Commit, Post,
};

/// The entry as the single-row reads give it.
pub async fn expected_entry(tx: &mut dyn Tx, chat: ChatId, user: UserId) -> ChatEntry {
    let chat = tx.chat(chat, false).await.expect("read").expect("chat");
    let member = tx
        .member(chat.id, user, false)
        .await
        .expect("read")
        .expect("member");
    let last = match chat.last_message {
        Some(id) => tx.message(chat.id, id, false).await.expect("read"),
        None => None,
    };
    let participants = match chat.kind {
        ChatKind::Group => tx
            .members_of(&[chat.id])
            .await
            .expect("members")
            .into_iter()
            .map(|(_, u)| u)
            .collect(),
        ChatKind::Direct { .. } => Vec::new(),
    };
    ChatEntry {
        chat,
        member,
        last: last.map(LastMessage::from),
        participants,
    }
}

/// The key of the direct chat of `a` and `b`.
fn pair_key(a: UserId, b: UserId) -> ChatKey {
    ChatKey::Direct {
        low: a.min(b),
        high: a.max(b),
    }
}

fn range(before: Option<u64>, after: Option<u64>, limit: usize) -> ConversationRange {
    ConversationRange {
        before,
        after,
        limit,
    }
}

pub async fn a_chat_page_agrees_with_the_rows_it_is_made_of(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 4).await;
    let [a, b, c, d] = [people[0], people[1], people[2], people[3]];
    // Joining order differs from id order; one chat has no message.
    let quiet = group(store, &[b, a]).await;
    let busy = group(store, &[c, a, b]).await;
    let dm = direct(store, a, d, &[a, d]).await;
    post(
        store,
        busy.id,
        &[Post::by(c), Post::by(b)],
        Commit::AfterWrites,
    )
    .await;
    post(store, dm.id, &[Post::by(d)], Commit::AfterWrites).await;
    post(store, busy.id, &[Post::by(a)], Commit::AfterWrites).await;

    let mut tx = begin(store).await;
    let page = tx.chat_page(a, range(None, None, 10)).await.expect("page");
    let mut expected = Vec::new();
    for chat in [busy.id, dm.id, quiet.id] {
        expected.push(expected_entry(tx.as_mut(), chat, a).await);
    }
    assert_eq!(
        page, expected,
        "newest activity first, each as its rows say"
    );
    assert_eq!(page[0].participants, vec![c, a, b], "oldest member first");
    assert!(page[1].participants.is_empty(), "a direct chat lists none");
    assert_eq!(page[2].last, None, "a chat without messages has no last");

    // Pages split where the conversation ranges say.
    let first = tx.chat_page(a, range(None, None, 1)).await.expect("page");
    assert_eq!(first, expected[..1]);
    let key = first[0].member.sort_key;
    let rest = tx
        .chat_page(a, range(Some(key), None, 10))
        .await
        .expect("page");
    assert_eq!(rest, expected[1..]);
    let newer = tx
        .chat_page(a, range(None, Some(expected[1].member.sort_key), 10))
        .await
        .expect("page");
    assert_eq!(newer, expected[..1]);
    let nobody = tx
        .chat_page(UserId(fresh()), range(None, None, 10))
        .await
        .expect("page");
    assert!(nobody.is_empty());
    tx.commit().await.expect("commit");

    // The same pages outside any transaction, as GetChats reads them.
    let outside = store
        .chat_page(a, range(None, None, 10))
        .await
        .expect("page");
    assert_eq!(outside, expected, "read outside a transaction");
    let outside_rest = store
        .chat_page(a, range(Some(key), None, 10))
        .await
        .expect("page");
    assert_eq!(outside_rest, expected[1..]);
}

pub async fn a_chat_entry_is_read_by_its_key_for_members_only(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 3).await;
    let [a, b, c] = [people[0], people[1], people[2]];
    let chat = group(store, &[a, b]).await;
    let dm = direct(store, a, c, &[a, c]).await;
    post(store, chat.id, &[Post::by(b)], Commit::AfterWrites).await;
    post(store, dm.id, &[Post::by(a)], Commit::AfterWrites).await;
    let dm_key = pair_key(a, c);

    let mut tx = begin(store).await;
    let entry = tx
        .chat_entry(ChatKey::Group(chat.id), b)
        .await
        .expect("entry");
    assert_eq!(entry, Some(expected_entry(tx.as_mut(), chat.id, b).await));
    let entry = tx.chat_entry(dm_key, c).await.expect("entry");
    assert_eq!(entry, Some(expected_entry(tx.as_mut(), dm.id, c).await));
    assert_eq!(
        tx.chat_entry(ChatKey::Group(chat.id), c)
            .await
            .expect("entry"),
        None,
        "not a member"
    );
    assert_eq!(
        tx.chat_entry(ChatKey::Group(dm.id), a)
            .await
            .expect("entry"),
        None,
        "a direct chat is no group"
    );
    assert_eq!(
        tx.chat_entry(ChatKey::Group(ChatId(fresh())), a)
            .await
            .expect("entry"),
        None
    );
    tx.commit().await.expect("commit");
}

/// Many chats asked at once, as a page of GetChat calls is: each answer is
/// the single read's, in the order asked, whatever the mix of kinds.
pub async fn chat_entries_answer_each_key_in_the_order_asked(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 4).await;
    let [a, b, c, d] = [people[0], people[1], people[2], people[3]];
    let chat = group(store, &[a, b, c]).await;
    let other = group(store, &[d, a]).await;
    let dm = direct(store, a, d, &[a, d]).await;
    // Unread counts that differ by member.
    post(
        store,
        chat.id,
        &[Post::by(a), Post::by(b)],
        Commit::AfterWrites,
    )
    .await;
    post(store, other.id, &[Post::by(d)], Commit::AfterWrites).await;
    post(store, dm.id, &[Post::by(d)], Commit::AfterWrites).await;
    let dm_key = pair_key(a, d);
    let stranger = pair_key(b, c);
    let asked = [
        (ChatKey::Group(chat.id), c),
        (dm_key, a),
        (ChatKey::Group(chat.id), d),
        (ChatKey::Group(other.id), a),
        (ChatKey::Group(dm.id), a),
        (stranger, b),
        (ChatKey::Group(chat.id), a),
        (dm_key, d),
        (ChatKey::Group(chat.id), c),
    ];
    let mut tx = begin(store).await;
    let mut expected = Vec::new();
    for (key, user) in asked {
        expected.push(match key {
            ChatKey::Group(id) if id == chat.id && user == d => None,
            ChatKey::Group(id) if id == dm.id => None,
            ChatKey::Direct { .. } if key == stranger => None,
            ChatKey::Group(id) => Some(expected_entry(tx.as_mut(), id, user).await),
            ChatKey::Direct { .. } => Some(expected_entry(tx.as_mut(), dm.id, user).await),
        });
    }
    let unread: Vec<u32> = expected.iter().flatten().map(|e| e.member.unread).collect();
    assert_eq!(unread, [2, 1, 1, 1, 0, 2], "the rows differ by member");
    let entries = tx.chat_entries(&asked).await.expect("entries");
    assert_eq!(entries, expected, "each as its single read, in order");
    assert!(tx.chat_entries(&[]).await.expect("none").is_empty());
    tx.commit().await.expect("commit");

    // Outside any transaction, all at once: each call gets its own.
    let answers = join_all(asked.iter().map(|&(key, user)| store.chat_entry(key, user))).await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("entry")).collect();
    assert_eq!(answers, expected, "concurrent calls, each its own entry");
}

fn history(below: Option<MessageId>, older: usize, above: MessageId, newer: usize) -> HistoryRange {
    HistoryRange {
        below,
        older,
        above,
        newer,
    }
}

pub async fn history_pages_keep_to_their_range_newest_first(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 3).await;
    let [a, b, c] = [people[0], people[1], people[2]];
    let chat = group(store, &[a, b]).await;
    let posts: Vec<Post> = (0..7).map(|i| Post::by(people[i % 2])).collect();
    let ids = post(store, chat.id, &posts, Commit::AfterWrites)
        .await
        .ids();
    // Someone else's chat, whose messages must never show.
    let other = group(store, &[a]).await;
    post(store, other.id, &[Post::by(a)], Commit::AfterWrites).await;
    let key = ChatKey::Group(chat.id);

    let mut tx = begin(store).await;
    let row = tx.chat(chat.id, false).await.expect("read");
    let expect = |wanted: &[usize]| {
        let rows: Vec<_> = wanted.iter().map(|i| ids[*i]).collect();
        rows
    };
    let page_ids = |page: &HistoryPage| page.messages.iter().map(|m| m.id).collect::<Vec<_>>();

    let latest = tx
        .history_page(key, a, history(None, 3, MessageId(0), 0))
        .await
        .expect("page");
    assert_eq!((latest.chat.clone(), latest.member), (row.clone(), true));
    assert_eq!(page_ids(&latest), expect(&[6, 5, 4]));
    for message in &latest.messages {
        let single = tx.message(chat.id, message.id, false).await.expect("read");
        assert_eq!(Some(message), single.as_ref(), "as the single read says");
    }
    let before = tx
        .history_page(key, a, history(Some(ids[5]), 2, MessageId(0), 0))
        .await
        .expect("page");
    assert_eq!(page_ids(&before), expect(&[4, 3]));
    let since = tx
        .history_page(key, a, history(None, 0, ids[1], 2))
        .await
        .expect("page");
    assert_eq!(
        page_ids(&since),
        expect(&[3, 2]),
        "the oldest above, newest first"
    );
    let around = tx
        .history_page(
            key,
            b,
            history(Some(MessageId(ids[3].get() + 1)), 2, ids[3], 2),
        )
        .await
        .expect("page");
    assert_eq!(page_ids(&around), expect(&[5, 4, 3, 2]));
    let everything = tx
        .history_page(key, a, history(None, 100, MessageId(0), 0))
        .await
        .expect("page");
    assert_eq!(everything.messages.len(), 7);

    let outsider = tx
        .history_page(key, c, history(None, 3, MessageId(0), 0))
        .await
        .expect("page");
    assert_eq!(
        (outsider.chat, outsider.member, outsider.messages.len()),
        (row, false, 0),
        "a group shows nothing to an outsider"
    );
    let missing = tx
        .history_page(
            ChatKey::Group(ChatId(fresh())),
            a,
            history(None, 3, MessageId(0), 0),
        )
        .await
        .expect("page");
    assert_eq!(missing, HistoryPage::default());
    tx.commit().await.expect("commit");

    // A direct chat shows its history to both of its pair, even to one who
    // has no membership row yet (the peer opened it).
    let dm = direct(store, a, c, &[a]).await;
    let sent = post(store, dm.id, &[Post::by(a)], Commit::AfterWrites)
        .await
        .ids();
    let dm_key = pair_key(a, c);
    let mut tx = begin(store).await;
    let page = tx
        .history_page(dm_key, c, history(None, 10, MessageId(0), 0))
        .await
        .expect("page");
    assert!(!page.member);
    assert_eq!(page_ids(&page), sent);
    tx.commit().await.expect("commit");
}

/// Many history pages asked at once, as GetHistory calls made together
/// are: each is the page asked alone, in the order asked, whatever the mix
/// of kinds, readers and ranges.
pub async fn history_pages_answer_each_question_in_the_order_asked(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 3).await;
    let [a, b, c] = [people[0], people[1], people[2]];
    let chat = group(store, &[a, b]).await;
    let posts: Vec<Post> = (0..7).map(|i| Post::by(people[i % 2])).collect();
    let ids = post(store, chat.id, &posts, Commit::AfterWrites)
        .await
        .ids();
    let dm = direct(store, a, c, &[a, c]).await;
    post(
        store,
        dm.id,
        &[Post::by(c), Post::by(a)],
        Commit::AfterWrites,
    )
    .await;
    let key = ChatKey::Group(chat.id);
    let dm_key = pair_key(a, c);
    let asked = [
        (key, a, history(None, 3, MessageId(0), 0)),
        (dm_key, c, history(None, 10, MessageId(0), 0)),
        (key, c, history(None, 3, MessageId(0), 0)),
        (
            key,
            b,
            history(Some(MessageId(ids[3].get() + 1)), 2, ids[3], 2),
        ),
        (
            ChatKey::Group(ChatId(fresh())),
            a,
            history(None, 3, MessageId(0), 0),
        ),
        (key, a, history(None, 0, ids[1], 2)),
        (dm_key, a, history(None, 1, MessageId(0), 0)),
        (key, a, history(None, 3, MessageId(0), 0)),
    ];
    let mut tx = begin(store).await;
    let mut expected = Vec::new();
    for (key, user, range) in asked {
        expected.push(tx.history_page(key, user, range).await.expect("page"));
    }
    let sizes: Vec<usize> = expected.iter().map(|p| p.messages.len()).collect();
    assert_eq!(sizes, [3, 2, 0, 4, 0, 2, 1, 3], "the pages differ");
    let pages = tx.history_pages(&asked).await.expect("pages");
    assert_eq!(pages, expected, "each as asked alone, in order");
    assert!(tx.history_pages(&[]).await.expect("none").is_empty());
    tx.commit().await.expect("commit");

    // Outside any transaction, all at once: each call gets its own.
    let answers = join_all(
        asked
            .iter()
            .map(|&(key, user, range)| store.history_page(key, user, range)),
    )
    .await;
    let answers: Vec<_> = answers.into_iter().map(|a| a.expect("page")).collect();
    assert_eq!(answers, expected, "concurrent calls, each its own page");
}

/// The group `chat` as a page and an entry show it to `reader`, checked
/// against each other and against the single-row reads.
async fn shown(store: &dyn Store, chat: ChatId, reader: UserId) -> ChatEntry {
    let mut tx = begin(store).await;
    let page = tx
        .chat_page(reader, range(None, None, 10))
        .await
        .expect("page");
    let entry = tx
        .chat_entry(ChatKey::Group(chat), reader)
        .await
        .expect("entry")
        .expect("a member's entry");
    let listed = page
        .into_iter()
        .find(|e| e.chat.id == chat)
        .expect("the group is on the page");
    assert_eq!(listed, entry, "page and entry agree");
    let expected = expected_entry(tx.as_mut(), chat, reader).await;
    assert_eq!(entry, expected, "as the rows say");
    tx.commit().await.expect("commit");
    entry
}

async fn participants_shown(store: &dyn Store, chat: ChatId, reader: UserId) -> Vec<UserId> {
    shown(store, chat, reader).await.participants
}

/// `joiner` joins and `leaver` leaves under the chat's lock, as the domain
/// changes members; the transaction is left open.
async fn join_and_leave(
    store: &dyn Store,
    chat: &ChatRow,
    joiner: UserId,
    leaver: UserId,
) -> Box<dyn Tx> {
    let mut tx = begin(store).await;
    tx.lock_chat(chat.id)
        .await
        .expect("lock")
        .expect("the chat");
    tx.insert_member(&new_member(chat, joiner))
        .await
        .expect("join");
    tx.remove_member(chat.id, leaver).await.expect("leave");
    tx
}

pub async fn a_groups_participants_follow_its_members(shared: Arc<dyn Store>) {
    let store = &*shared;
    let people = users(store, 6).await;
    let [a, b, c, d, e, f] = [
        people[0], people[1], people[2], people[3], people[4], people[5],
    ];
    // Several members in one write, joined in the order given.
    let chat = group_row(b);
    let mut tx = begin(store).await;
    tx.insert_chat(&chat).await.expect("the chat is written");
    let founders: Vec<_> = [b, a, c].iter().map(|u| new_member(&chat, *u)).collect();
    tx.insert_members(&founders)
        .await
        .expect("the members are written");
    tx.commit().await.expect("commit");
    assert_eq!(participants_shown(store, chat.id, a).await, vec![b, a, c]);

    let tx = join_and_leave(store, &chat, d, c).await;
    tx.commit().await.expect("commit");
    assert_eq!(participants_shown(store, chat.id, a).await, vec![b, a, d]);

    // A change rolled back leaves them as they were.
    drop(join_and_leave(store, &chat, e, b).await);
    assert_eq!(participants_shown(store, chat.id, a).await, vec![b, a, d]);

    // Two joins, each under the chat's lock, the second waiting for the
    // first: the second sees the first's member when it writes its own.
    let mut first = begin(store).await;
    first
        .lock_chat(chat.id)
        .await
        .expect("lock")
        .expect("the chat");
    first
        .insert_member(&new_member(&chat, e))
        .await
        .expect("join");
    let second = tokio::spawn({
        let store = Arc::clone(&shared);
        let joining = new_member(&chat, f);
        async move {
            let mut tx = begin(&*store).await;
            tx.lock_chat(joining.chat_id)
                .await
                .expect("lock")
                .expect("the chat");
            tx.insert_member(&joining).await.expect("join");
            tx.commit().await.expect("commit");
        }
    });
    first.commit().await.expect("commit");
    second.await.expect("the second join");
    assert_eq!(
        participants_shown(store, chat.id, a).await,
        vec![b, a, d, e, f]
    );
}

async fn last_shown(store: &dyn Store, chat: ChatId, reader: UserId) -> Option<LastMessage> {
    shown(store, chat, reader).await.last
}

async fn edit(store: &dyn Store, chat: ChatId, id: MessageId, text: &str, commit: bool) {
    let mut tx = begin(store).await;
    let mut row = tx
        .message(chat, id, true)
        .await
        .expect("read")
        .expect("message");
    row.body.message = text.into();
    tx.update_message(&row).await.expect("edit");
    if commit {
        tx.commit().await.expect("commit");
    }
}

pub async fn a_conversations_last_message_follows_sends_edits_and_deletions(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 2).await;
    let [a, b] = [people[0], people[1]];
    let chat = group(store, &[a, b]).await;
    assert_eq!(last_shown(store, chat.id, a).await, None);
    let ids = post(
        store,
        chat.id,
        &[Post::by(a), Post::by(b).mentioning(&[a])],
        Commit::AfterWrites,
    )
    .await
    .ids();
    let shown = last_shown(store, chat.id, a).await.expect("a last message");
    assert_eq!((shown.id, shown.author), (ids[1], b));

    edit(store, chat.id, ids[1], "edited", true).await;
    let shown = last_shown(store, chat.id, a).await.expect("a last message");
    assert_eq!(shown.body.message, "edited", "an edit of the last shows");
    edit(store, chat.id, ids[0], "older, edited", true).await;
    edit(store, chat.id, ids[1], "rolled back", false).await;
    let shown = last_shown(store, chat.id, a).await.expect("a last message");
    assert_eq!(shown.body.message, "edited", "neither other edit shows");

    // Deleting the last message moves the chat's last to the one before.
    let mut tx = begin(store).await;
    tx.lock_chat(chat.id)
        .await
        .expect("lock")
        .expect("the chat");
    tx.delete_messages(chat.id, &ids[1..])
        .await
        .expect("delete");
    tx.set_last_message(chat.id, Some(ids[0]))
        .await
        .expect("last");
    tx.commit().await.expect("commit");
    let shown = last_shown(store, chat.id, a).await.expect("a last message");
    assert_eq!(
        (shown.id, shown.body.message.as_str()),
        (ids[0], "older, edited")
    );

    let mut tx = begin(store).await;
    tx.lock_chat(chat.id)
        .await
        .expect("lock")
        .expect("the chat");
    tx.delete_messages(chat.id, &ids[..1])
        .await
        .expect("delete");
    tx.set_last_message(chat.id, None).await.expect("last");
    tx.commit().await.expect("commit");
    assert_eq!(last_shown(store, chat.id, a).await, None);

    // A new message is the last again.
    let newest = post(store, chat.id, &[Post::by(b)], Commit::AfterWrites)
        .await
        .ids();
    let shown = last_shown(store, chat.id, a).await.expect("a last message");
    assert_eq!(shown.id, newest[0]);
}
