//! Unread and mention counters. Whatever moved them (sends, reads,
//! deletions, edits), each member's counters as read back equal the noun
//! layer's arithmetic (`MemberRow::unread_at` of the chat's `msg_seq`) and
//! a recount from the messages still present: those after the member's
//! read pointer not written by them, and of those the ones that mention
//! them.

use std::sync::Arc;

use osmium_chat::model::{ChatId, ChatKey, MemberRow, MessageId, ReadState, UserId};
use osmium_chat::store::Store;

use crate::fixtures::{begin, group, post, users, Batch, Commit, Post, ALL};

/// Every member's counters, read through `members`, `member`,
/// `conversations` and `lock_chat`, checked against the arithmetic and a
/// recount; returns the members.
async fn assert_counters(store: &dyn Store, chat: ChatId, step: &str) -> Vec<MemberRow> {
    let mut tx = begin(store).await;
    let row = tx
        .chat(chat, false)
        .await
        .expect("read")
        .expect("the chat exists");
    let members = tx.members(chat).await.expect("members");
    let messages = tx
        .messages_before(chat, None, 1000)
        .await
        .expect("messages");
    for m in &members {
        let user = m.user_id;
        let after: Vec<_> = messages
            .iter()
            .filter(|x| x.id.get() > m.last_read)
            .collect();
        let unread = after.iter().filter(|x| x.author != user).count() as u32;
        let mentions = after.iter().filter(|x| x.mentions.contains(&user)).count() as u32;
        assert_eq!(
            m.unread,
            m.unread_at(row.msg_seq),
            "{step}: unread of {user} against unread_at({})",
            row.msg_seq
        );
        assert_eq!(
            m.unread, unread,
            "{step}: unread of {user} against a recount"
        );
        assert_eq!(
            m.mentions, mentions,
            "{step}: mentions of {user} against a recount"
        );
        let single = tx.member(chat, user, false).await.expect("member");
        assert_eq!(single.as_ref(), Some(m), "{step}: member() of {user}");
        let conversation = tx
            .conversations(user, ALL)
            .await
            .expect("conversations")
            .into_iter()
            .find(|c| c.chat_id == chat);
        assert_eq!(
            conversation.as_ref(),
            Some(m),
            "{step}: conversations() of {user}"
        );
    }
    let locked = tx.lock_chat(chat).await.expect("lock").expect("the chat");
    assert_eq!(locked, (row, members.clone()), "{step}: lock_chat()");
    tx.commit().await.expect("commit");
    members
}

/// The unread count each member's log entry for the batch's last message
/// carries is the one their row now gives.
fn assert_carried(batch: &Batch, members: &[MemberRow], step: &str) {
    let last = batch.changes.last().expect("a batch has messages");
    for (user, personal) in &last.recipients {
        let member = members
            .iter()
            .find(|m| m.user_id == *user)
            .expect("recipients are members");
        assert_eq!(
            personal.unread,
            Some(member.unread),
            "{step}: the unread count carried to {user}"
        );
    }
}

fn counts(members: &[MemberRow], user: UserId) -> (u32, u32) {
    let m = members
        .iter()
        .find(|m| m.user_id == user)
        .expect("a member");
    (m.unread, m.mentions)
}

/// Marks `message` read for `user` as MarkChatRead does: its ordinal from
/// the read context, then the move, in a relaxed transaction.
async fn mark(
    store: &dyn Store,
    chat: ChatId,
    user: UserId,
    message: MessageId,
) -> Option<ReadState> {
    let mut tx = store.begin_relaxed().await.expect("begin");
    let context = tx
        .read_context(ChatKey::Group(chat), user, message)
        .await
        .expect("read context");
    let ordinal = context.ordinal.expect("the message is in the chat");
    let state = tx
        .mark_read(user, chat, message, ordinal)
        .await
        .expect("mark read");
    tx.commit().await.expect("commit");
    state
}

/// A mark-read's answer equals the member's row read after it.
fn assert_answer(state: Option<ReadState>, members: &[MemberRow], user: UserId, step: &str) {
    let (unread, mentions) = counts(members, user);
    assert_eq!(state, Some(ReadState { unread, mentions }), "{step}");
}

/// Edits whom `message` mentions as EditMessage does: the counters of
/// those removed and added first, then the message.
async fn edit_mentions(store: &dyn Store, chat: ChatId, message: MessageId, now: &[UserId]) {
    let mut tx = begin(store).await;
    let mut row = tx
        .message(chat, message, true)
        .await
        .expect("read")
        .expect("message");
    let removed: Vec<UserId> = row
        .mentions
        .iter()
        .copied()
        .filter(|u| !now.contains(u))
        .collect();
    let added: Vec<UserId> = now
        .iter()
        .copied()
        .filter(|u| !row.mentions.contains(u))
        .collect();
    tx.remention(&row, &removed, &added)
        .await
        .expect("remention");
    row.mentions = now.to_vec();
    tx.update_message(&row).await.expect("edit");
    tx.commit().await.expect("commit");
}

pub async fn counters_follow_sends_reads_deletions_and_edits(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 5).await;
    let [a, b, c, d, e] = [people[0], people[1], people[2], people[3], people[4]];
    let chat = group(store, &people).await.id;
    let members = assert_counters(store, chat, "a new group").await;
    assert!(members.iter().all(|m| (m.unread, m.mentions) == (0, 0)));

    // Ordinals 1 to 5: authors read their own, mentions count after the pointer.
    let first = post(
        store,
        chat,
        &[
            Post::by(a).mentioning(&[b]),
            Post::by(a).mentioning(&[b, c, e]),
            Post::by(b).mentioning(&[c]),
            Post::by(a).mentioning(&[b]),
            Post::by(c),
        ],
        Commit::AfterWrites,
    )
    .await;
    let members = assert_counters(store, chat, "batch 1").await;
    assert_carried(&first, &members, "batch 1");
    assert_eq!(counts(&members, a), (1, 0));
    assert_eq!(counts(&members, b), (2, 1));
    assert_eq!(counts(&members, c), (0, 0));
    assert_eq!(counts(&members, e), (5, 1));

    // 6 to 8, committed with the writes.
    let second = post(
        store,
        chat,
        &[
            Post::by(d).mentioning(&[a, e]),
            Post::by(c).mentioning(&[d, a]),
            Post::by(d),
        ],
        Commit::WithWrites {
            unlock_early: false,
        },
    )
    .await;
    let members = assert_counters(store, chat, "batch 2").await;
    assert_carried(&second, &members, "batch 2");

    // 9 and 10, the lock released before the flush.
    let third = post(
        store,
        chat,
        &[Post::by(a).mentioning(&[c, d, e]), Post::by(b)],
        Commit::WithWrites { unlock_early: true },
    )
    .await;
    let members = assert_counters(store, chat, "batch 3").await;
    assert_carried(&third, &members, "batch 3");
    assert_eq!(counts(&members, e), (10, 3));
    let ids: Vec<MessageId> = [&first, &second, &third]
        .iter()
        .flat_map(|b| b.ids())
        .collect();
    let m = |ordinal: usize| ids[ordinal - 1];

    // E reads up to the middle.
    let state = mark(store, chat, e, m(6)).await;
    let members = assert_counters(store, chat, "E marks 6 read").await;
    assert_answer(state, &members, e, "E marks 6 read");
    assert_eq!(counts(&members, e), (4, 1));

    // Deletions before and after the pointers, one where E's pointer
    // stands, the newest among them.
    let doomed = [m(2), m(6), m(7), m(8), m(10)];
    let mut tx = begin(store).await;
    let (locked, _) = tx.lock_chat(chat).await.expect("lock").expect("chat");
    let mut rows = Vec::new();
    for id in doomed {
        rows.push(
            tx.message(chat, id, true)
                .await
                .expect("read")
                .expect("message"),
        );
    }
    tx.forget_messages(chat, &rows).await.expect("forget");
    tx.delete_messages(chat, &doomed).await.expect("delete");
    assert_eq!(locked.last_message, Some(m(10)));
    let newest = tx.messages_before(chat, None, 1).await.expect("read");
    assert_eq!(newest.first().map(|x| x.id), Some(m(9)));
    tx.set_last_message(chat, Some(m(9))).await.expect("last");
    tx.commit().await.expect("commit");
    let members = assert_counters(store, chat, "after deleting 2, 6, 7, 8 and 10").await;
    assert_eq!(counts(&members, c), (1, 1));
    assert_eq!(counts(&members, e), (1, 1));

    // Edits that change whom a message mentions: after some pointers, and
    // before every pointer of those it adds.
    edit_mentions(store, chat, m(9), &[b, e]).await;
    edit_mentions(store, chat, m(4), &[b, e]).await;
    let members = assert_counters(store, chat, "after edits of 9 and 4").await;
    assert_eq!(counts(&members, c), (1, 0));
    assert_eq!(counts(&members, d), (1, 0));

    // A send after the deletions, then reads across them.
    let fourth = post(
        store,
        chat,
        &[Post::by(d).mentioning(&[e, c])],
        Commit::AfterWrites,
    )
    .await;
    let members = assert_counters(store, chat, "batch 4").await;
    assert_carried(&fourth, &members, "batch 4");
    let m11 = fourth.ids()[0];
    let state = mark(store, chat, e, m(9)).await;
    let members = assert_counters(store, chat, "E marks 9 read, past deleted 7 and 8").await;
    assert_answer(state, &members, e, "E marks 9 read");
    assert_eq!(counts(&members, e), (1, 1));
    // An edit of the very message a pointer stands on leaves that reader's count.
    edit_mentions(store, chat, m(9), &[b]).await;
    let members = assert_counters(store, chat, "E's mention dropped from 9, which E read").await;
    assert_eq!(counts(&members, e), (1, 1));
    let state = mark(store, chat, c, m11).await;
    let members = assert_counters(store, chat, "C marks the newest read").await;
    assert_answer(state, &members, c, "C marks the newest read");
    assert_eq!(counts(&members, c), (0, 0));
}

pub async fn marking_read_backwards_or_in_place_changes_nothing(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 3).await;
    let [a, b, outsider] = [people[0], people[1], people[2]];
    let chat = group(store, &[a, b]).await.id;
    let sent = post(
        store,
        chat,
        &[
            Post::by(a).mentioning(&[b]),
            Post::by(a),
            Post::by(a).mentioning(&[b]),
        ],
        Commit::AfterWrites,
    )
    .await;
    let ids = sent.ids();
    let state = mark(store, chat, b, ids[1]).await;
    let members = assert_counters(store, chat, "B marks 2 read").await;
    assert_answer(state, &members, b, "B marks 2 read");
    assert_eq!(counts(&members, b), (1, 1));

    for (id, what) in [(ids[1], "the same message"), (ids[0], "an older message")] {
        assert_eq!(mark(store, chat, b, id).await, None, "B marks {what} read");
        let now = assert_counters(store, chat, what).await;
        assert_eq!(now, members, "B marks {what} read");
    }
    // The author's own pointer is at their newest message already.
    assert_eq!(
        mark(store, chat, a, ids[2]).await,
        None,
        "A marks their own newest"
    );
    let mut tx = begin(store).await;
    let state = tx
        .mark_read(outsider, chat, ids[2], 3)
        .await
        .expect("mark read");
    assert_eq!(state, None, "a non-member marks read");
    tx.commit().await.expect("commit");
    assert_eq!(assert_counters(store, chat, "after no-ops").await, members);
}
