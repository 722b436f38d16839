//! All or nothing: a transaction dropped without commit, after writes of
//! every kind, leaves no trace, neither of new rows nor on committed ones.

use std::sync::Arc;

use osmium_chat::model::{InviteRow, MemberRow, NewChange, UserId};
use osmium_chat::store::Store;

use crate::fixtures::{
    begin, compose, fresh, group, group_row, message_change, new_member, post, snapshot, user_row,
    users, Commit, Post, ALL, NO_BUDGET,
};

fn invite(chat: &osmium_chat::model::ChatRow, creator: UserId) -> InviteRow {
    InviteRow {
        code: format!("code-{}", fresh()),
        chat_id: chat.id,
        creator,
        created_at: 1_700_000_000_000,
        expires_at: None,
        max_uses: Some(5),
        uses: 0,
    }
}

pub async fn a_transaction_dropped_without_commit_leaves_nothing(store: Arc<dyn Store>) {
    let store = &*store;
    let people: Vec<UserId> = (0..3).map(|_| UserId(fresh())).collect();
    let chat = group_row(people[0]);
    let code;
    let ids;
    {
        let mut tx = begin(store).await;
        let rows: Vec<_> = people.iter().map(|u| user_row(*u)).collect();
        tx.upsert_users(&rows).await.expect("users");
        tx.insert_chat(&chat).await.expect("chat");
        for user in &people {
            tx.insert_member(&new_member(&chat, *user))
                .await
                .expect("member");
        }
        let (locked, members) = tx.lock_chat(chat.id).await.expect("lock").expect("chat");
        let batch = compose(
            &locked,
            &members,
            &[
                Post::by(people[0]).mentioning(&[people[1]]),
                Post::by(people[1]),
            ],
        );
        ids = batch.ids();
        tx.write_posts(&batch.writes, batch.changes.clone())
            .await
            .expect("posts");
        let row = invite(&chat, people[0]);
        code = row.code.clone();
        tx.insert_invite(&row).await.expect("invite");
        tx.append_changes(vec![NewChange::to_all(
            message_change(&locked, &batch.writes.messages[0]),
            people.clone(),
        )])
        .await
        .expect("append");
        let mut draft = members[2].clone();
        draft.draft = Some("draft".into());
        tx.update_member(&draft).await.expect("draft");
        // Dropped here, uncommitted.
    }

    let mut tx = begin(store).await;
    assert!(tx.users(&people).await.expect("read").is_empty(), "users");
    assert_eq!(tx.chat(chat.id, false).await.expect("read"), None);
    assert_eq!(tx.lock_chat(chat.id).await.expect("read"), None);
    assert!(tx.members(chat.id).await.expect("read").is_empty());
    assert!(tx.messages_by_id(&ids).await.expect("read").is_empty());
    assert_eq!(tx.invite(&code, false).await.expect("read"), None);
    for user in &people {
        assert!(tx.conversations(*user, ALL).await.expect("read").is_empty());
        assert_eq!(tx.update_head(*user).await.expect("read"), 0);
        assert_eq!(tx.oldest_update(*user).await.expect("read"), None);
        assert!(tx
            .updates_after(*user, 0, 100, NO_BUDGET)
            .await
            .expect("read")
            .is_empty());
    }
    tx.commit().await.expect("commit");
}

pub async fn a_dropped_transaction_leaves_committed_rows_as_they_were(store: Arc<dyn Store>) {
    let store = &*store;
    let people = users(store, 4).await;
    let (a, b, c, d) = (people[0], people[1], people[2], people[3]);
    let chat = group(store, &[a, b, c]).await;
    let sent = post(
        store,
        chat.id,
        &[
            Post::by(a).mentioning(&[b, c]),
            Post::by(b),
            Post::by(a).mentioning(&[c]),
        ],
        Commit::AfterWrites,
    )
    .await;
    let code = invite(&chat, a);
    let mut tx = begin(store).await;
    tx.insert_invite(&code).await.expect("invite");
    tx.commit().await.expect("commit");
    let before = snapshot(store, chat.id, &people).await;

    {
        let mut tx = begin(store).await;
        let (locked, members) = tx.lock_chat(chat.id).await.expect("lock").expect("chat");
        let batch = compose(
            &locked,
            &members,
            &[Post::by(c).mentioning(&[a]), Post::by(b).mentioning(&[c])],
        );
        tx.write_posts(&batch.writes, batch.changes.clone())
            .await
            .expect("posts");
        let newest = batch.ids()[1];
        let ordinal = batch.writes.messages[1].ordinal;
        tx.mark_read(a, chat.id, newest, ordinal)
            .await
            .expect("mark read")
            .expect("a moved forward");
        let first = sent.writes.messages[0].clone();
        tx.forget_messages(chat.id, std::slice::from_ref(&first))
            .await
            .expect("forget");
        tx.delete_messages(chat.id, &[first.id])
            .await
            .expect("delete");
        let mut edited = sent.writes.messages[2].clone();
        tx.remention(&edited, &[c], &[b]).await.expect("remention");
        edited.mentions = vec![b];
        edited.body.message = "edited".into();
        tx.update_message(&edited).await.expect("edit");
        let mut draft: MemberRow = members[1].clone();
        draft.draft = Some("draft".into());
        draft.notif = 2;
        tx.update_member(&draft).await.expect("draft");
        tx.set_last_message(chat.id, None).await.expect("last");
        let mut renamed = locked.clone();
        renamed.name = "renamed".into();
        renamed.owner = Some(b);
        tx.update_chat(&renamed).await.expect("rename");
        tx.count_invite_use(&code.code).await.expect("use");
        tx.insert_invite(&invite(&chat, b)).await.expect("invite");
        tx.delete_invite(&code.code).await.expect("uninvite");
        tx.remove_member(chat.id, c).await.expect("leave");
        tx.insert_member(&new_member(&locked, d))
            .await
            .expect("join");
        let mut renamed_user = user_row(a);
        renamed_user.name = "renamed".into();
        tx.upsert_users(&[renamed_user]).await.expect("user");
        tx.append_changes(vec![NewChange::to_all(
            message_change(&locked, &edited),
            people.clone(),
        )])
        .await
        .expect("append");
        tx.delete_chat(chat.id).await.expect("delete the chat");
        // Dropped here, uncommitted.
    }

    let after = snapshot(store, chat.id, &people).await;
    assert_eq!(after, before);
}
