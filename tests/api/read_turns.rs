//! Reads taking turns on Postgres (`OSMIUM_DB_READ_CONCURRENCY`), over
//! gRPC: with one read at a time, every call that reads, alone and many at
//! once, still answers as it would without the bound. A path that took a
//! second turn while holding one would wait for itself here and fail with
//! UNAVAILABLE after the pool's wait.

use osmium_chat::proto::{chats, messages};
use tonic::Status;

use crate::helpers::{dm, group, sample, scrape, Engine, TestApp};

#[tokio::test]
async fn with_one_read_at_a_time_every_read_and_send_still_answers() {
    let app = TestApp::spawn_tuned(Engine::Postgres, |s| s.db_read_concurrency = 1).await;
    let mut ann = app.user("Ann").await;
    let bob = app.user("Bob").await;
    let cy = app.user("Cy").await;
    // A send's checks read; a first message opens its direct chat between two reads.
    let hello = ann.send(dm(bob.id), "hello").await;
    let group_id = ann.create_group("turns", &[bob.id, cy.id]).await;
    let all = ann.send(group(group_id), "all").await;

    let calls: Vec<_> = (0..24)
        .map(|i| {
            let mut client = ann.client.clone();
            tokio::spawn(async move {
                let answer: Result<(&str, usize), Status> = match i % 4 {
                    0 => client
                        .get_chats(chats::GetChats {
                            limit: Some(10),
                            ..Default::default()
                        })
                        .await
                        .map(|r| ("GetChats", r.into_inner().chats.len())),
                    1 => client
                        .get_history(messages::GetHistory {
                            chat_ref: group(group_id),
                            limit: Some(10),
                            offset: None,
                        })
                        .await
                        .map(|r| ("GetHistory", r.into_inner().messages.len())),
                    2 => client
                        .get_chat(chats::GetChat {
                            chat_ref: dm(bob.id),
                        })
                        .await
                        .map(|r| ("GetChat", usize::from(r.into_inner().chat.is_some()))),
                    _ => client
                        .mark_chat_read(chats::MarkChatRead {
                            chat_ref: dm(bob.id),
                            message_id: hello,
                            read_amount: None,
                        })
                        .await
                        .map(|_| ("MarkChatRead", 1)),
                };
                answer
            })
        })
        .collect();
    for call in calls {
        let (method, count) = call
            .await
            .expect("the call's task")
            .expect("answered with one read at a time");
        let expected = match method {
            // The direct chat and the group.
            "GetChats" => 2,
            // Ann's message in the group.
            "GetHistory" => 1,
            _ => 1,
        };
        assert_eq!(count, expected, "{method}");
    }
    let history = ann.history(group(group_id), Some(1), None).await;
    assert_eq!(history, vec![all]);

    let text = scrape(app.metrics_port).await;
    assert_eq!(
        sample(
            &text,
            r#"osmium_db_pool_connections{state="reads_waiting"}"#
        ),
        Some(0.0),
        "{text}"
    );
}
