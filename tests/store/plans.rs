//! Plans on Postgres: a read's statement, prepared once per connection as
//! the service prepares it, keeps one generic plan instead of being planned
//! anew on every call, and that plan walks the page's own index even when
//! the statistics come from a young database (one busy chat among few).

use osmium_chat::store::postgres::{page_sql, PostgresStore};

use crate::fixtures::fresh;

#[tokio::test]
async fn postgres_history_pages_keep_one_plan_on_the_chats_index() {
    let db = migrated_connection().await;
    let (reader, busy, quiet) = (fresh(), fresh(), fresh());
    // Ids above every other row's, so that messages_pkey's newest are the
    // busy chat's and the quiet chat's one message is far below them.
    db.batch_execute(&format!(
        "INSERT INTO users (id, name) VALUES ({reader}, 'reader');
         INSERT INTO chats (id, kind, name) VALUES ({busy}, 1, 'busy'), ({quiet}, 1, 'quiet');
         INSERT INTO members (chat_id, user_id, joined, sort_key)
           VALUES ({busy}, {reader}, 1, 1), ({quiet}, {reader}, 1, 1);
         INSERT INTO messages (id, chat_id, author_id, body, ordinal)
           VALUES ({quiet}, {quiet}, {reader}, '', 1);
         INSERT INTO messages (id, chat_id, author_id, body, ordinal)
           SELECT {busy} + 1000 + n, {busy}, {reader}, '', n FROM generate_series(1, 5000) n;
         ANALYZE messages;
         PREPARE page (bigint, bigint, bigint, bigint, bigint, bigint, bigint) AS {};
         PREPARE pages (bigint[], bigint[], bigint[], bigint[], bigint[], bigint[], bigint[],
           bigint) AS {}",
        page_sql::group_history(),
        page_sql::group_histories()
    ))
    .await
    .expect("a busy chat, a quiet one, and the statements (alone, and a list)");

    let executions = [
        (
            "page",
            format!(
                "EXECUTE page ({quiet}, 0, {reader}, {}, 50, 0, 0)",
                i64::MAX
            ),
        ),
        (
            "pages",
            format!(
                "EXECUTE pages ('{{{quiet}}}', '{{0}}', '{{{reader}}}', '{{{}}}', '{{50}}', \
                 '{{0}}', '{{0}}', 1)",
                i64::MAX
            ),
        ),
    ];
    for (name, execute) in &executions {
        for _ in 0..10 {
            db.batch_execute(execute).await.expect("a page");
        }
        assert_planned_once(&db, name).await;
    }
    for (_, execute) in &executions {
        let plan = generic_plan(&db, execute).await;
        assert!(
            plan.contains("messages_by_chat") && !plan.contains("messages_pkey"),
            "the page walks the chat's messages, not every message:\n{plan}"
        );
    }
}

/// GetChat's statement takes its keys as arrays: it too keeps one generic
/// plan, one that looks up each key by its index, whether it reads one
/// chat or many.
#[tokio::test]
async fn postgres_chat_entries_keep_one_plan_by_key() {
    let db = migrated_connection().await;
    let (reader, chat) = reader_in_many_groups(&db, "1").await;
    db.batch_execute(&format!(
        "PREPARE entries (bigint[], bigint[], bigint[], bigint) AS {}",
        page_sql::group_entries()
    ))
    .await
    .expect("the statement");

    for keys in (1..=10).map(|n| if n % 2 == 0 { 1 } else { n }) {
        let values = [chat.to_string(), "0".into(), reader.to_string()];
        let rows = execute_list(&db, "entries", &values, keys).await;
        assert_eq!(rows.len(), keys, "one row per key asked");
    }
    assert_planned_once(&db, "entries").await;
    let plan = generic_plan(
        &db,
        &format!("EXECUTE entries ('{{{chat}}}', '{{0}}', '{{{reader}}}', 1)"),
    )
    .await;
    assert!(
        plan.contains("chats_pkey") && plan.contains("members_pkey") && !plan.contains("Seq Scan"),
        "each key looked up by its index:\n{plan}"
    );
}

/// GetChats' statement for readers asked together keeps one generic plan
/// too, one that walks each reader's own conversations by index, however
/// many readers it serves.
#[tokio::test]
async fn postgres_chat_pages_keep_one_plan_on_each_readers_index() {
    let db = migrated_connection().await;
    // Each membership a sort key of its own, as conversations have.
    let (reader, _) = reader_in_many_groups(&db, "c.id").await;
    db.batch_execute(&format!(
        "PREPARE pages (bigint[], bigint[], bigint[], bigint[], bigint) AS {}",
        page_sql::chat_pages()
    ))
    .await
    .expect("the statement");

    for readers in (1..=10).map(|n| if n % 2 == 0 { 1 } else { n }) {
        let values = [
            reader.to_string(),
            i64::MAX.to_string(),
            "0".into(),
            "50".into(),
        ];
        let rows = execute_list(&db, "pages", &values, readers).await;
        assert_eq!(rows.len(), readers * 50, "a page of 50 per reader asked");
    }
    assert_planned_once(&db, "pages").await;
    let plan = generic_plan(
        &db,
        &format!(
            "EXECUTE pages ('{{{reader}}}', '{{{}}}', '{{0}}', '{{50}}', 1)",
            i64::MAX
        ),
    )
    .await;
    assert!(
        plan.contains("members_by_user")
            && plan.contains("chats_pkey")
            && !plan.contains("Seq Scan"),
        "each reader's page walks its own index:\n{plan}"
    );
}

/// A reader in 1,000 groups, each membership's sort key `sort_key` (an SQL
/// expression over the group `c`), with statistics taken: returns the
/// reader and the first group.
async fn reader_in_many_groups(db: &tokio_postgres::Client, sort_key: &str) -> (u64, u64) {
    let (reader, chat) = (fresh(), fresh());
    db.batch_execute(&format!(
        "INSERT INTO users (id, name) VALUES ({reader}, 'reader');
         INSERT INTO chats (id, kind, name)
           SELECT {chat} + n, 1, 'group' FROM generate_series(0, 999) n;
         INSERT INTO members (chat_id, user_id, joined, sort_key)
           SELECT c.id, {reader}, 1, {sort_key} FROM chats c
           WHERE c.id BETWEEN {chat} AND {chat} + 999;
         ANALYZE chats, members;"
    ))
    .await
    .expect("a reader in many groups");
    (reader, chat)
}

/// Runs the prepared list statement `name` with each of `values` as an
/// array of `count` copies, then `count`.
async fn execute_list(
    db: &tokio_postgres::Client,
    name: &str,
    values: &[String],
    count: usize,
) -> Vec<tokio_postgres::Row> {
    let arrays: Vec<String> = values
        .iter()
        .map(|value| format!("'{{{}}}'", vec![value.as_str(); count].join(",")))
        .collect();
    db.query(
        &format!("EXECUTE {name} ({}, {count})", arrays.join(", ")),
        &[],
    )
    .await
    .expect("the statement runs")
}

/// A connection to a fresh schema, migrated as start-up migrates it.
async fn migrated_connection() -> deadpool_postgres::Object {
    let url = crate::throwaway_postgres::fresh_schema_url().await;
    let store = PostgresStore::connect(&url, crate::POOL_SIZE, Default::default())
        .expect("a pool for the throwaway server");
    store.migrate().await.expect("migrations apply");
    store.pool().get().await.expect("a connection")
}

/// The prepared statement `name`, run 10 times, was planned for its values
/// at most 5 times (Postgres's trial of custom plans) and then reused.
async fn assert_planned_once(db: &tokio_postgres::Client, name: &str) {
    let row = db
        .query_one(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE name = $1",
            &[&name],
        )
        .await
        .expect("the statement's plan counts");
    let (generic, custom): (i64, i64) = (row.get(0), row.get(1));
    assert!(
        custom <= 5 && generic >= 5,
        "planned once, then reused: {custom} custom plans and {generic} generic in 10 calls"
    );
}

/// The generic plan of `execute`, as text. It leaves the session forcing
/// generic plans.
async fn generic_plan(db: &tokio_postgres::Client, execute: &str) -> String {
    db.batch_execute("SET plan_cache_mode = force_generic_plan")
        .await
        .expect("the generic plan");
    let plan: Vec<String> = db
        .query(&format!("EXPLAIN {execute}"), &[])
        .await
        .expect("the plan")
        .iter()
        .map(|row| row.get(0))
        .collect();
    plan.join("\n")
}
