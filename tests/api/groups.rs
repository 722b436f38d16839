//! Group chats: creation, editing, membership and ownership.

use osmium_chat::proto::updates::update::Update as U;
use osmium_chat::proto::{chats, messages, refs, types};
use tonic::Code;

use crate::helpers::{
    assert_code, assert_hidden, both_engines, both_engines_custom, dm, group, next, Engine, TestApp,
};

async fn creating_a_group_makes_the_caller_owner_and_adds_everyone(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let cat = app.user("Cat").await;
    let created = ann
        .client
        .create_chat(chats::CreateChat {
            users: vec![
                refs::UserRef { user_id: bob.id },
                refs::UserRef { user_id: cat.id },
            ],
            name: "  Weekend plans ".into(),
        })
        .await
        .expect("created")
        .into_inner();
    assert!(created.owner);
    assert_eq!(created.name, "Weekend plans");
    assert_eq!(created.participant_ids, vec![ann.id, bob.id, cat.id]);

    let seen = bob
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(created.id),
        })
        .await
        .expect("opens")
        .into_inner();
    let as_bob = seen.group.expect("a group");
    assert!(!as_bob.owner, "owner is true only in the owner's copy");
    assert_eq!(as_bob.participant_ids, created.participant_ids);
    assert_eq!(seen.chat.and_then(|c| c.chat_ref), group(created.id));
    assert_eq!(seen.users.len(), 3);

    let page = bob
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists")
        .into_inner();
    assert_eq!(
        page.groups.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![created.id]
    );
    assert_eq!(page.chats[0].chat_ref, group(created.id));
    assert_eq!(
        page.chats[0].last_message_id, created.id,
        "an empty group sorts by its id"
    );
}

async fn bad_group_creations_are_refused_and_create_nothing(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let create = |users: Vec<u64>, name: &str| chats::CreateChat {
        users: users
            .into_iter()
            .map(|user_id| refs::UserRef { user_id })
            .collect(),
        name: name.into(),
    };
    assert_code(
        ann.client.create_chat(create(vec![bob.id], "   ")).await,
        Code::InvalidArgument,
        "name",
    );
    assert_code(
        ann.client
            .create_chat(create(vec![bob.id], &"n".repeat(129)))
            .await,
        Code::InvalidArgument,
        "name",
    );
    assert_code(
        ann.client
            .create_chat(create(vec![bob.id, bob.id], "g"))
            .await,
        Code::InvalidArgument,
        "users[1].user_id",
    );
    assert_code(
        ann.client.create_chat(create(vec![ann.id], "g")).await,
        Code::InvalidArgument,
        "users[0].user_id",
    );
    assert_code(
        ann.client.create_chat(create(vec![0], "g")).await,
        Code::InvalidArgument,
        "users[0].user_id",
    );
    assert_code(
        ann.client
            .create_chat(create(vec![bob.id, 987_654_321], "g"))
            .await,
        Code::NotFound,
        "987654321",
    );
    let page = ann
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists")
        .into_inner();
    assert!(page.chats.is_empty() && page.groups.is_empty());
}

async fn groups_count_unread_per_member(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("g", &[bob.id, cat.id]).await;
    let first = ann.send(group(id), "one").await;
    ann.send(group(id), "two").await;
    assert_eq!(bob.conversation(group(id)).await.unread_count, 2);
    bob.client
        .mark_chat_read(chats::MarkChatRead {
            chat_ref: group(id),
            message_id: first,
            read_amount: None,
        })
        .await
        .expect("read");
    assert_eq!(bob.conversation(group(id)).await.unread_count, 1);
    bob.send(group(id), "three").await;
    assert_eq!(bob.conversation(group(id)).await.unread_count, 0);
    assert_eq!(ann.conversation(group(id)).await.unread_count, 1);
    assert_eq!(cat.conversation(group(id)).await.unread_count, 3);
    assert_eq!(cat.history(group(id), None, None).await.len(), 3);
}

async fn only_the_owner_edits_a_group(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let id = ann.create_group("old", &[bob.id]).await;
    let mut stream = bob.subscribe(None).await;
    let edit = chats::EditChat {
        chat_ref: group(id),
        name: Some("new".into()),
        highlighted_msg_id: None,
        photo: Some(chats::edit_chat::Photo {
            file: Some(osmium_chat::proto::media::UploadedFileRef {
                id: 55,
                name: "p.png".into(),
                part_count: 1,
            }),
        }),
    };
    assert_code(
        bob.client.edit_chat(edit.clone()).await,
        Code::PermissionDenied,
        "owner",
    );
    let chat = ann
        .client
        .edit_chat(edit)
        .await
        .expect("edited")
        .into_inner();
    let edited = chat.group.expect("group");
    assert_eq!(
        (edited.name.as_str(), edited.photo.map(|p| p.file_id)),
        ("new", Some(55))
    );

    let Some(U::Group(update)) = next(&mut stream).await.update.and_then(|u| u.update) else {
        panic!("bob hears of the edit");
    };
    assert_eq!(
        update.group.map(|g| (g.name, g.owner)),
        Some(("new".to_owned(), false))
    );

    let elsewhere = ann.send(dm(bob.id), "not in the group").await;
    let highlight = |message: Option<u64>| chats::EditChat {
        chat_ref: group(id),
        highlighted_msg_id: Some(chats::edit_chat::HighlightedMessage {
            highlighted_msg_id: message,
        }),
        ..Default::default()
    };
    assert_code(
        ann.client.edit_chat(highlight(Some(elsewhere))).await,
        Code::InvalidArgument,
        "highlighted_msg_id",
    );
    let inside = ann.send(group(id), "pin me").await;
    ann.client
        .edit_chat(highlight(Some(inside)))
        .await
        .expect("highlighted");
    ann.client
        .edit_chat(highlight(None))
        .await
        .expect("cleared");
    assert_code(
        ann.client
            .edit_chat(chats::EditChat {
                chat_ref: dm(bob.id),
                ..Default::default()
            })
            .await,
        Code::InvalidArgument,
        "group",
    );
}

async fn members_join_and_leave_with_system_messages(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("g", &[bob.id]).await;
    bob.client
        .add_chat_member(chats::AddChatMember {
            chat_ref: group(id),
            user_id: cat.id,
        })
        .await
        .expect("any member may add");
    assert_code(
        bob.client
            .add_chat_member(chats::AddChatMember {
                chat_ref: group(id),
                user_id: cat.id,
            })
            .await,
        Code::AlreadyExists,
        "already",
    );
    let history = cat
        .client
        .get_history(messages::GetHistory {
            chat_ref: group(id),
            limit: None,
            offset: None,
        })
        .await
        .expect("history")
        .into_inner();
    let join = &history.messages[0];
    assert_eq!(
        (join.r#type, join.author_id),
        (Some(types::message::MessageType::Join as i32), cat.id)
    );

    assert_code(
        bob.client
            .remove_chat_member(chats::RemoveChatMember {
                chat_ref: group(id),
                user_id: cat.id,
            })
            .await,
        Code::PermissionDenied,
        "owner",
    );
    ann.client
        .remove_chat_member(chats::RemoveChatMember {
            chat_ref: group(id),
            user_id: cat.id,
        })
        .await
        .expect("the owner removes");
    let leave = &ann
        .client
        .get_history(messages::GetHistory {
            chat_ref: group(id),
            limit: Some(1),
            offset: None,
        })
        .await
        .expect("history")
        .into_inner()
        .messages[0];
    assert_eq!(
        (leave.r#type, leave.author_id),
        (Some(types::message::MessageType::Leave as i32), cat.id)
    );

    // The removed member can neither read nor write, and no longer lists it.
    assert_hidden(
        cat.client
            .get_chat(chats::GetChat {
                chat_ref: group(id),
            })
            .await,
    );
    assert_hidden(
        cat.client
            .get_history(messages::GetHistory {
                chat_ref: group(id),
                limit: None,
                offset: None,
            })
            .await,
    );
    assert_hidden(
        cat.client
            .send_message(messages::SendMessage {
                chat_ref: group(id),
                message: "hi".into(),
                ..Default::default()
            })
            .await,
    );
    assert!(cat
        .client
        .get_chats(chats::GetChats::default())
        .await
        .expect("lists")
        .into_inner()
        .chats
        .is_empty());
    assert_code(
        ann.client
            .remove_chat_member(chats::RemoveChatMember {
                chat_ref: group(id),
                user_id: cat.id,
            })
            .await,
        Code::NotFound,
        "not a member",
    );
}

async fn ownership_passes_on_and_the_last_leaver_deletes_the_group(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("g", &[bob.id, cat.id]).await;
    let leave = |user_id| chats::RemoveChatMember {
        chat_ref: group(id),
        user_id,
    };
    ann.client
        .remove_chat_member(leave(ann.id))
        .await
        .expect("the owner leaves");
    let as_bob = bob
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(id),
        })
        .await
        .expect("opens")
        .into_inner();
    assert!(
        as_bob.group.expect("group").owner,
        "the longest-standing member owns it now"
    );
    bob.client
        .remove_chat_member(leave(cat.id))
        .await
        .expect("the new owner removes");
    bob.client
        .remove_chat_member(leave(bob.id))
        .await
        .expect("the last member leaves");
    assert_hidden(
        bob.client
            .get_chat(chats::GetChat {
                chat_ref: group(id),
            })
            .await,
    );
    assert_hidden(
        cat.client
            .get_chat(chats::GetChat {
                chat_ref: group(id),
            })
            .await,
    );
}

async fn every_member_hears_of_a_removal_including_the_removed(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let mut cat = app.user("Cat").await;
    let id = ann.create_group("g", &[bob.id, cat.id]).await;
    let mut streams = [
        ann.subscribe(None).await,
        bob.subscribe(None).await,
        cat.subscribe(None).await,
    ];
    ann.client
        .remove_chat_member(chats::RemoveChatMember {
            chat_ref: group(id),
            user_id: cat.id,
        })
        .await
        .expect("removed");
    for (i, stream) in streams.iter_mut().enumerate() {
        // Remaining members see the LEAVE message first; everyone gets UpdateGroup.
        let update = loop {
            match next(stream).await.update.and_then(|u| u.update) {
                Some(U::Group(update)) => break update,
                Some(U::MessageCreated(_)) if i < 2 => continue,
                other => panic!("unexpected {other:?}"),
            }
        };
        let seen = update.group.expect("group");
        assert_eq!(seen.participant_ids, vec![ann.id, bob.id]);
        assert_eq!(seen.owner, i == 0);
    }
}

async fn outsiders_get_not_found_for_every_group_call(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut eve = app.user("Eve").await;
    let id = ann.create_group("g", &[]).await;
    let message = ann.send(group(id), "secret").await;
    let c = &mut eve.client;
    assert_hidden(
        c.get_chat(chats::GetChat {
            chat_ref: group(id),
        })
        .await,
    );
    assert_hidden(
        c.get_history(messages::GetHistory {
            chat_ref: group(id),
            limit: None,
            offset: None,
        })
        .await,
    );
    assert_hidden(
        c.mark_chat_read(chats::MarkChatRead {
            chat_ref: group(id),
            message_id: message,
            read_amount: None,
        })
        .await,
    );
    assert_hidden(
        c.edit_chat(chats::EditChat {
            chat_ref: group(id),
            name: Some("mine".into()),
            ..Default::default()
        })
        .await,
    );
    assert_hidden(
        c.add_chat_member(chats::AddChatMember {
            chat_ref: group(id),
            user_id: eve.id,
        })
        .await,
    );
    assert_hidden(
        c.create_chat_invite(chats::CreateChatInvite {
            chat_ref: group(id),
            expires_at: None,
            max_uses: None,
        })
        .await,
    );
    assert_hidden(
        c.list_chat_invites(chats::ListChatInvites {
            chat_ref: group(id),
        })
        .await,
    );
    assert_hidden(
        c.delete_message(messages::DeleteMessage {
            chat_ref: group(id),
            message_ids: vec![message],
        })
        .await,
    );
    // A group id that never existed looks the same.
    assert_hidden(
        c.get_chat(chats::GetChat {
            chat_ref: group(id + 1),
        })
        .await,
    );
}

async fn the_owner_may_delete_any_message_of_the_group(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let mut bob = app.user("Bob").await;
    let id = ann.create_group("g", &[bob.id]).await;
    let from_bob = bob.send(group(id), "spam").await;
    let from_ann = ann.send(group(id), "ok").await;
    assert_code(
        bob.client
            .delete_message(messages::DeleteMessage {
                chat_ref: group(id),
                message_ids: vec![from_ann],
            })
            .await,
        Code::PermissionDenied,
        "author",
    );
    ann.client
        .delete_message(messages::DeleteMessage {
            chat_ref: group(id),
            message_ids: vec![from_bob],
        })
        .await
        .expect("the owner deletes");
    assert_eq!(bob.history(group(id), None, None).await, vec![from_ann]);
}

async fn the_member_cap_holds_even_under_concurrent_adds(engine: Engine) {
    let app = TestApp::spawn_tuned(engine, |s| s.max_group_members = 4).await;
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let mut others = Vec::new();
    for i in 0..3 {
        others.push(app.user(&format!("U{i}")).await.id);
    }
    assert_code(
        ann.client
            .create_chat(chats::CreateChat {
                users: [bob.id]
                    .iter()
                    .chain(&others)
                    .map(|&user_id| refs::UserRef { user_id })
                    .collect(),
                name: "too big".into(),
            })
            .await,
        Code::InvalidArgument,
        "users",
    );
    let id = ann.create_group("g", &[bob.id]).await;
    let mut calls = Vec::new();
    for user_id in [others.clone(), others.clone()].concat() {
        let mut client = ann.client.clone();
        calls.push(tokio::spawn(async move {
            client
                .add_chat_member(chats::AddChatMember {
                    chat_ref: group(id),
                    user_id,
                })
                .await
                .map(|_| ())
        }));
    }
    let mut added = 0;
    for call in calls {
        match call.await.expect("joined") {
            Ok(()) => added += 1,
            Err(status) => assert!(
                matches!(
                    status.code(),
                    Code::FailedPrecondition | Code::AlreadyExists
                ),
                "{status:?}"
            ),
        }
    }
    assert_eq!(added, 2);
    let chat = ann
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(id),
        })
        .await
        .expect("opens")
        .into_inner();
    assert_eq!(chat.group.expect("group").participant_ids.len(), 4);
}

async fn concurrent_leaves_leave_the_last_member_as_owner(app: TestApp) {
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let cat = app.user("Cat").await;
    let mut dan = app.user("Dan").await;
    let id = ann.create_group("g", &[bob.id, cat.id, dan.id]).await;
    let mut calls = Vec::new();
    for leaver in [&ann, &bob, &cat] {
        let mut client = leaver.client.clone();
        let user_id = leaver.id;
        calls.push(tokio::spawn(async move {
            client
                .remove_chat_member(chats::RemoveChatMember {
                    chat_ref: group(id),
                    user_id,
                })
                .await
        }));
    }
    for call in calls {
        call.await.expect("joined").expect("each leave succeeds");
    }
    let chat = dan
        .client
        .get_chat(chats::GetChat {
            chat_ref: group(id),
        })
        .await
        .expect("opens")
        .into_inner();
    let left = chat.group.expect("group");
    assert_eq!(left.participant_ids, vec![dan.id]);
    assert!(left.owner, "the one member left owns the group");
}

both_engines!(
    concurrent_leaves_leave_the_last_member_as_owner,
    creating_a_group_makes_the_caller_owner_and_adds_everyone,
    bad_group_creations_are_refused_and_create_nothing,
    groups_count_unread_per_member,
    only_the_owner_edits_a_group,
    members_join_and_leave_with_system_messages,
    ownership_passes_on_and_the_last_leaver_deletes_the_group,
    every_member_hears_of_a_removal_including_the_removed,
    outsiders_get_not_found_for_every_group_call,
    the_owner_may_delete_any_message_of_the_group,
);
both_engines_custom!(the_member_cap_holds_even_under_concurrent_adds);
