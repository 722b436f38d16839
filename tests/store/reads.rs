//! The reads a use-case starts from: a locked chat with its members in
//! joining order, and the one-round-trip contexts of a send and of a
//! mark-read, which must say what the single-row reads say.

use std::sync::Arc;

use osmium_chat::model::{ChatId, ChatKey, UserId};
use osmium_chat::store::Store;

use crate::fixtures::{begin, direct, fresh, group, post, users, Commit, Post};

pub async fn lock_chat_gives_the_chat_and_its_members_oldest_first(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 3).await;
    // Joining order differs from id order.
    let order = [people[2], people[0], people[1]];
    let chat = group(store, &order).await;
    post(store, chat.id, &[Post::by(people[0])], Commit::AfterWrites).await;

    let mut tx = begin(store).await;
    let row = tx.chat(chat.id, false).await.expect("read").expect("chat");
    assert_eq!(row.msg_seq, 1);
    let members = tx.members(chat.id).await.expect("members");
    let (locked, locked_members) = tx.lock_chat(chat.id).await.expect("lock").expect("chat");
    assert_eq!(locked, row);
    assert_eq!(locked_members, members);
    let joined: Vec<UserId> = locked_members.iter().map(|m| m.user_id).collect();
    assert_eq!(joined, order, "members oldest first");
    let listed = tx.members_of(&[chat.id]).await.expect("members of");
    let expected: Vec<(ChatId, UserId)> = order.iter().map(|u| (chat.id, *u)).collect();
    assert_eq!(listed, expected);
    assert_eq!(tx.chats(&[chat.id]).await.expect("chats"), vec![row]);
    tx.commit().await.expect("commit");

    let mut tx = begin(store).await;
    assert_eq!(tx.lock_chat(ChatId(fresh())).await.expect("lock"), None);
    tx.commit().await.expect("commit");
}

pub async fn send_and_read_contexts_agree_with_the_rows(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 3).await;
    let [a, b, c] = [people[0], people[1], people[2]];
    let chat = group(store, &[a, b]).await.id;
    let direct = direct(store, a, c, &[a, c]).await;
    let sent = post(
        store,
        chat,
        &[Post::by(a), Post::by(b).mentioning(&[a])],
        Commit::AfterWrites,
    )
    .await;
    let in_direct = post(store, direct.id, &[Post::by(c)], Commit::AfterWrites).await;
    let (m1, m2) = (sent.ids()[0], sent.ids()[1]);
    let a_client = sent.writes.messages[0].client_id.expect("a client id");
    let group_key = ChatKey::Group(chat);
    let direct_key = ChatKey::Direct {
        low: a.min(c),
        high: a.max(c),
    };

    let mut tx = begin(store).await;
    let group_row = tx.chat(chat, false).await.expect("read");
    let direct_row = tx.chat(direct.id, false).await.expect("read");
    let user = |id: UserId| async move {
        let mut tx = begin(store).await;
        let found = tx.users(&[id]).await.expect("users").pop();
        tx.commit().await.expect("commit");
        found
    };
    drop(tx);
    let (user_a, user_c) = (user(a).await, user(c).await);
    assert!(user_a.is_some() && user_c.is_some());

    let mut tx = begin(store).await;
    // A send's context.
    let context = tx
        .send_context(group_key, a, Some(a_client))
        .await
        .expect("context");
    assert_eq!(context.chat, group_row, "the group");
    assert!(context.member, "A is a member");
    assert_eq!(context.author, user_a, "A's user");
    assert_eq!(context.sent, Some(m1), "A's message with that client id");
    let context = tx
        .send_context(group_key, b, Some(a_client))
        .await
        .expect("context");
    assert!(context.member);
    assert_eq!(context.sent, None, "client ids are per author");
    let context = tx.send_context(group_key, c, None).await.expect("context");
    assert_eq!(context.chat, group_row);
    assert!(!context.member, "C is not a member of the group");
    assert_eq!(context.author, user_c);
    let context = tx.send_context(direct_key, a, None).await.expect("context");
    assert_eq!(context.chat, direct_row, "the direct chat by its pair");
    assert!(context.member);
    let context = tx
        .send_context(ChatKey::Group(direct.id), a, None)
        .await
        .expect("context");
    assert_eq!(context.chat, None, "a direct chat is no group");
    assert!(!context.member);
    let stranger = UserId(fresh());
    let context = tx
        .send_context(ChatKey::Group(ChatId(fresh())), stranger, Some(1))
        .await
        .expect("context");
    assert_eq!(
        (context.chat, context.member, context.author, context.sent),
        (None, false, None, None),
        "nothing exists"
    );

    // A mark-read's context.
    for (user, message) in [(b, m1), (a, m2), (c, m1)] {
        let context = tx
            .read_context(group_key, user, message)
            .await
            .expect("context");
        assert_eq!(context.chat, group_row);
        let member = tx.member(chat, user, false).await.expect("member");
        assert_eq!(context.member, member, "the membership of {user}");
        let row = tx.message(chat, message, false).await.expect("message");
        assert_eq!(
            context.ordinal,
            row.map(|r| r.ordinal),
            "the ordinal of {message}"
        );
    }
    let elsewhere = in_direct.ids()[0];
    let context = tx
        .read_context(group_key, a, elsewhere)
        .await
        .expect("context");
    assert_eq!(context.ordinal, None, "a message of another chat");
    let context = tx
        .read_context(direct_key, a, elsewhere)
        .await
        .expect("context");
    assert_eq!(context.chat, direct_row);
    assert_eq!(
        context.member,
        tx.member(direct.id, a, false).await.expect("member")
    );
    assert_eq!(context.ordinal, Some(1));
    let context = tx
        .read_context(ChatKey::Group(ChatId(fresh())), a, m1)
        .await
        .expect("context");
    assert_eq!(
        (context.chat, context.member, context.ordinal),
        (None, None, None),
        "no such chat"
    );
    tx.commit().await.expect("commit");
}
