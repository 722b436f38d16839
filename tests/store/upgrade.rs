//! An upgrade on Postgres: rows written under an older schema read the
//! same after the migrations that came since. Migrations V6 and V7 fill
//! the copies a page reads from the chat row (a group's roster, the last
//! message) for every existing chat.

use osmium_chat::model::{ChatId, UserId};
use osmium_chat::proto::types;
use osmium_chat::store::postgres::PostgresStore;
use osmium_chat::store::ConversationRange;
use prost::Message as _;

use crate::fixtures::{begin, fresh};
use crate::pages::expected_entry;

/// The last version before the copies on the chat row.
const BEFORE_COPIES: i32 = 5;

fn body(id: i64, text: &str) -> Vec<u8> {
    types::Message {
        message_id: id as u64,
        message: text.into(),
        ..Default::default()
    }
    .encode_to_vec()
}

#[tokio::test]
async fn postgres_upgrade_fills_rosters_and_last_messages_of_existing_chats() {
    let url = crate::throwaway_postgres::fresh_schema_url().await;
    let store = PostgresStore::connect(&url, crate::POOL_SIZE, Default::default())
        .expect("a pool for the throwaway server");
    store
        .migrate_to(BEFORE_COPIES)
        .await
        .expect("the older schema");

    let [a, b, c] = [fresh(), fresh(), fresh()].map(|u| u as i64);
    let (group, dm, quiet) = (fresh() as i64, fresh() as i64, fresh() as i64);
    let [first, second, direct] = [fresh(), fresh(), fresh()].map(|m| m as i64);
    let db = store.pool().get().await.expect("a connection");
    for user in [a, b, c] {
        db.execute("INSERT INTO users (id, name) VALUES ($1, 'user')", &[&user])
            .await
            .expect("a user");
    }
    db.execute(
        "INSERT INTO chats (id, kind, name, owner_id, last_message_id, msg_seq)
         VALUES ($1, 1, 'group', $2, $3, 2), ($4, 1, 'quiet', $2, NULL, 0)",
        &[&group, &b, &second, &quiet],
    )
    .await
    .expect("groups");
    db.execute(
        "INSERT INTO chats (id, kind, dm_low, dm_high, last_message_id, msg_seq)
         VALUES ($1, 0, $2, $3, $4, 1)",
        &[&dm, &a.min(c), &a.max(c), &direct],
    )
    .await
    .expect("a direct chat");
    // Joined in an order unlike the ids': b, then a, then c.
    db.execute(
        "INSERT INTO members (chat_id, user_id, joined, sort_key)
         VALUES ($1, $2, 1, $5), ($1, $3, 2, $5), ($1, $4, 3, $5),
                ($6, $3, 1, $6), ($7, $3, 1, $8), ($7, $4, 1, $8)",
        &[&group, &b, &a, &c, &second, &quiet, &dm, &direct],
    )
    .await
    .expect("members");
    let no_mentions: Vec<i64> = Vec::new();
    db.execute(
        "INSERT INTO messages (id, chat_id, author_id, client_id, mentions, body, ordinal)
         VALUES ($1, $4, $5, 7, $7, $8, 1), ($2, $4, $6, NULL, $9, $10, 2),
                ($3, $11, $5, NULL, $7, $12, 1)",
        &[
            &first,
            &second,
            &direct,
            &group,
            &a,
            &b,
            &no_mentions,
            &body(first, "first"),
            &vec![a],
            &body(second, "second"),
            &dm,
            &body(direct, "direct"),
        ],
    )
    .await
    .expect("messages");
    drop(db);

    store.migrate().await.expect("the upgrade");
    let mut tx = begin(&store).await;
    let page = tx
        .chat_page(
            UserId(a as u64),
            ConversationRange {
                before: None,
                after: None,
                limit: 10,
            },
        )
        .await
        .expect("a page");
    let mut expected = Vec::new();
    // Newest activity first: the direct chat's message is the newest.
    for chat in [dm, group, quiet] {
        expected.push(expected_entry(tx.as_mut(), ChatId(chat as u64), UserId(a as u64)).await);
    }
    assert_eq!(page, expected, "each entry as its rows say");
    let ids = |users: &[i64]| users.iter().map(|u| UserId(*u as u64)).collect::<Vec<_>>();
    assert_eq!(page[1].participants, ids(&[b, a, c]), "oldest member first");
    let last = page[1].last.as_ref().expect("the group's last message");
    assert_eq!(
        (
            last.id.get() as i64,
            last.author,
            last.body.message.as_str()
        ),
        (second, UserId(b as u64), "second")
    );
    // What no read shows is copied too, for whatever comes to need it.
    let db = store.pool().get().await.expect("a connection");
    let copy = db
        .query_one(
            "SELECT last_client_id, last_mentions, last_ordinal FROM chats WHERE id = $1",
            &[&group],
        )
        .await
        .expect("the group's copy");
    assert_eq!(
        (
            copy.get::<_, Option<i64>>(0),
            copy.get::<_, Vec<i64>>(1),
            copy.get::<_, i64>(2)
        ),
        (None, vec![a], 2)
    );
    assert_eq!(
        page[0].last.as_ref().map(|m| m.body.message.as_str()),
        Some("direct")
    );
    assert!(page[0].participants.is_empty(), "a direct chat lists none");
    assert_eq!(page[2].last, None, "a chat without messages has none");
    tx.commit().await.expect("commit");
}
