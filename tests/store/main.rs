//! The store conformance suite: one set of checks, each an `async fn` taking
//! the store, run against every engine: the embedded memory engine, and
//! Postgres on a fresh schema of the throwaway server (see
//! `tests/api/support/postgres.rs`). The domain relies on both engines
//! doing the same thing for each `Tx` operation; these checks pin what it
//! leans on most: unique keys that yield `Duplicate` even when transactions
//! race, all-or-nothing transactions, counters equal to the noun layer's
//! arithmetic (`MemberRow::unread_at`) and to a recount of the messages, and
//! gap-free log seqs.
//!
//! A new check is an `async fn(Arc<dyn Store>)` in one of the files below,
//! listed in [`conformance!`] at the end: that gives it one test per engine,
//! `memory::<check>` and `postgres::<check>`.

// Test and bench code: a panic is how a failed expectation is reported.
#![allow(clippy::expect_used, clippy::indexing_slicing)]

mod atomic;
mod counters;
mod fixtures;
mod invites;
mod log;
mod pages;
mod plans;
mod reads;
mod turns;
mod unique;
mod upgrade;

#[allow(dead_code)]
#[path = "../api/support/postgres.rs"]
mod throwaway_postgres;

use std::sync::Arc;

use osmium_chat::store::memory::MemoryStore;
use osmium_chat::store::postgres::PostgresStore;
use osmium_chat::store::Store;

/// Connections per Postgres store: enough for the widest race below.
const POOL_SIZE: usize = 10;

fn memory_store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

/// A migrated Postgres store on a schema of its own, opened as start-up
/// opens it.
async fn postgres_store() -> Arc<dyn Store> {
    let url = throwaway_postgres::fresh_schema_url().await;
    let store = PostgresStore::connect(&url, POOL_SIZE, Default::default())
        .expect("a pool for the throwaway server");
    store.migrate().await.expect("migrations apply");
    Arc::new(store)
}

/// One test per engine for each listed check.
macro_rules! conformance {
    ($($module:ident :: $check:ident),+ $(,)?) => {
        /// Every check on the embedded engine.
        mod memory {
            $(
                #[tokio::test]
                async fn $check() {
                    crate::$module::$check(crate::memory_store()).await;
                }
            )+
        }

        /// Every check on Postgres.
        mod postgres {
            $(
                #[tokio::test]
                async fn $check() {
                    crate::$module::$check(crate::postgres_store().await).await;
                }
            )+
        }
    };
}

conformance! {
    unique::a_second_direct_chat_of_a_pair_is_a_duplicate,
    unique::racing_creators_of_a_direct_chat_make_one_chat_and_a_duplicate,
    unique::a_taken_client_id_is_a_duplicate_and_its_batch_leaves_nothing,
    unique::racing_sends_with_one_client_id_make_one_message_and_a_duplicate,
    unique::an_id_minted_twice_is_an_error_not_a_duplicate,
    atomic::a_transaction_dropped_without_commit_leaves_nothing,
    atomic::a_dropped_transaction_leaves_committed_rows_as_they_were,
    log::log_seqs_run_from_one_without_gaps_across_appends_and_users,
    log::a_page_of_the_log_keeps_to_its_limit_and_byte_budget,
    log::racing_appends_to_overlapping_users_stay_gap_free_and_unique,
    counters::counters_follow_sends_reads_deletions_and_edits,
    counters::marking_read_backwards_or_in_place_changes_nothing,
    reads::lock_chat_gives_the_chat_and_its_members_oldest_first,
    reads::send_and_read_contexts_agree_with_the_rows,
    invites::dead_invites_are_pruned_and_never_listed,
    invites::the_periodic_prune_deletes_dead_invites_of_every_group,
    pages::a_chat_page_agrees_with_the_rows_it_is_made_of,
    pages::a_chat_entry_is_read_by_its_key_for_members_only,
    pages::chat_entries_answer_each_key_in_the_order_asked,
    pages::history_pages_keep_to_their_range_newest_first,
    pages::history_pages_answer_each_question_in_the_order_asked,
    pages::a_groups_participants_follow_its_members,
    pages::a_conversations_last_message_follows_sends_edits_and_deletions,
}
