//! The update log on Postgres.

use async_trait::async_trait;

use std::collections::BTreeMap;

use tokio_postgres::Statement;
use tracing::Instrument as _;

use super::rows::*;
use super::tx::{first_cause, statement_span, PgTx, APPEND};
use crate::model::{LoggedUpdate, NewChange, UserId};
use crate::store::{LogStore, StoreError, StoreResult};

impl PgTx {
    /// Appends changes to their recipients' logs in one statement: the
    /// payloads once, the heads bumped in ascending user order (so that
    /// concurrent appends to overlapping users cannot deadlock), one small
    /// row per recipient.
    pub(super) async fn append(&self, changes: &[NewChange]) -> StoreResult<Vec<LoggedUpdate>> {
        let statement = self.client().prepare_cached(APPEND).await?;
        let (begun, logged) =
            tokio::join!(self.begin_now(), self.append_prepared(&statement, changes));
        match (begun, logged) {
            (Ok(()), Ok(logged)) => Ok(logged),
            (begun, logged) => Err(first_cause(
                [begun.err(), logged.err()].into_iter().flatten(),
            )),
        }
    }

    pub(super) async fn append_prepared(
        &self,
        statement: &Statement,
        changes: &[NewChange],
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let mut counts: BTreeMap<UserId, i64> = BTreeMap::new();
        let mut entry_user = Vec::new();
        let mut entry_pos = Vec::new();
        let mut entry_change = Vec::new();
        let mut entry_unread: Vec<Option<i32>> = Vec::new();
        for new in changes {
            for (user, personal) in &new.recipients {
                let count = counts.entry(*user).or_default();
                *count += 1;
                entry_user.push(user.get() as i64);
                entry_pos.push(*count);
                entry_change.push(new.change.id as i64);
                entry_unread.push(personal.unread.map(|u| u.min(i32::MAX as u32) as i32));
            }
        }
        if entry_user.is_empty() {
            return Ok(Vec::new());
        }
        let change_ids: Vec<i64> = changes.iter().map(|c| c.change.id as i64).collect();
        let payloads: Vec<&[u8]> = changes
            .iter()
            .map(|c| c.change.encoded().as_ref())
            .collect();
        let users: Vec<i64> = counts.keys().map(|u| u.get() as i64).collect();
        let adds: Vec<i64> = counts.values().copied().collect();
        let heads = self
            .client()
            .query(
                statement,
                &[
                    &change_ids,
                    &payloads,
                    &users,
                    &adds,
                    &entry_user,
                    &entry_pos,
                    &entry_change,
                    &entry_unread,
                ],
            )
            .instrument(statement_span(APPEND))
            .await?;
        // The first seq each user's entries take, in the order given.
        let mut next: BTreeMap<UserId, u64> = BTreeMap::new();
        for row in &heads {
            let user = UserId(row.get::<_, i64>(0) as u64);
            let head = row.get::<_, i64>(1) as u64;
            let count = counts.get(&user).ok_or_else(|| {
                StoreError::Corrupt(format!("an update head came back for user {user}"))
            })?;
            next.insert(user, head + 1 - *count as u64);
        }
        let mut logged = Vec::with_capacity(entry_user.len());
        for new in changes {
            for (user, personal) in &new.recipients {
                let seq = next.get_mut(user).ok_or_else(|| {
                    StoreError::Corrupt(format!("no update head returned for user {user}"))
                })?;
                logged.push(LoggedUpdate {
                    user: *user,
                    seq: *seq,
                    change: new.change.clone(),
                    personal: *personal,
                });
                *seq += 1;
            }
        }
        Ok(logged)
    }
}

#[async_trait]
impl LogStore for PgTx {
    async fn append_changes(&mut self, changes: Vec<NewChange>) -> StoreResult<Vec<LoggedUpdate>> {
        self.append(&changes).await
    }

    async fn update_head(&mut self, user: UserId) -> StoreResult<u64> {
        let rows = self
            .query(
                "SELECT seq FROM update_heads WHERE user_id = $1",
                &[&(user.get() as i64)],
            )
            .await?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0) as u64))
    }

    async fn update_heads(&mut self, users: &[UserId]) -> StoreResult<Vec<(UserId, u64)>> {
        let ids: Vec<i64> = users.iter().map(|u| u.get() as i64).collect();
        let rows = self
            .query(
                "SELECT user_id, seq FROM update_heads WHERE user_id = ANY($1)",
                &[&ids],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| (UserId(r.get::<_, i64>(0) as u64), r.get::<_, i64>(1) as u64))
            .collect())
    }

    async fn oldest_update(&mut self, user: UserId) -> StoreResult<Option<u64>> {
        let rows = self
            .query(
                "SELECT seq FROM updates WHERE user_id = $1 ORDER BY seq LIMIT 1",
                &[&(user.get() as i64)],
            )
            .await?;
        Ok(rows.first().map(|r| r.get::<_, i64>(0) as u64))
    }

    async fn updates_after(
        &mut self,
        user: UserId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        // The page first, then its running size: rows past `max_bytes` are
        // left for the next read (the first row always comes).
        let rows = self
            .query(
                "SELECT seq, payload, change_id, unread, shared FROM (
                     SELECT t.*, sum(t.size) OVER (ORDER BY t.seq) AS running FROM (
                         SELECT u.seq, u.payload, u.change_id, u.unread, c.payload AS shared,
                                COALESCE(octet_length(c.payload), octet_length(u.payload), 0) AS size
                         FROM updates u LEFT JOIN changes c ON c.id = u.change_id
                         WHERE u.user_id = $1 AND u.seq > $2 ORDER BY u.seq LIMIT $3) t) w
                 WHERE running - size < $4 OR running = size ORDER BY seq",
                &[
                    &(user.get() as i64),
                    &clamp(after),
                    &(limit as i64),
                    &(max_bytes.min(i64::MAX as usize) as i64),
                ],
            )
            .await?;
        rows.iter().map(|r| logged_from(user, r)).collect()
    }
}
