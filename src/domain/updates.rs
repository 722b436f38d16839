//! Reading a user's update log, for Subscribe's replay and gap filling.

use super::{Core, Updates};
use crate::error::{Error, Result};
use crate::model::{LoggedUpdate, UserId};

/// Entries read from the log at a time while replaying.
pub const REPLAY_BATCH: usize = 256;
/// Payload bytes read from the log at a time while replaying (one entry
/// always comes, however large).
pub const REPLAY_BYTES: usize = 1 << 20;

impl Updates<'_> {
    /// Drops log entries older than `retention`, at most `batch` at a time;
    /// returns how many went.
    pub async fn prune(&self, retention: std::time::Duration, batch: usize) -> Result<u64> {
        Ok(self.store.prune_updates(retention, batch).await?)
    }
}

impl Core {
    /// The seq a stream starts after: `since` when the log still holds
    /// everything after it, the current head when starting live.
    pub(super) async fn stream_start(&self, user: UserId, since: Option<u64>) -> Result<u64> {
        let mut tx = self.store.reader().await?;
        let head = tx.update_head(user).await?;
        let oldest = tx.oldest_update(user).await?;
        tx.commit().await?;
        let Some(since) = since else {
            // A stream that starts after an entry a crash could still take
            // back would drop, as a repeat, the entry given its seq next.
            self.store.flush().await?;
            return Ok(head);
        };
        if since > head {
            return Err(Error::OutOfRange(format!(
                "since_seq {since} is ahead of the update log (at {head}); resync: fetch state, then subscribe without since_seq"
            )));
        }
        if since + 1 < oldest.unwrap_or(head + 1) {
            return Err(Error::OutOfRange(format!(
                "since_seq {since} is older than the retained update log; resync: fetch state, then subscribe without since_seq"
            )));
        }
        Ok(since)
    }

    /// Up to [`REPLAY_BATCH`] entries after `after`, fewer when their
    /// payloads pass [`REPLAY_BYTES`]; none when there are no more. Only
    /// durable entries are returned: one a relaxed write or a busy batch
    /// committed may still be in its WAL flush, and a crash could take it
    /// back after a client saw it.
    pub(super) async fn read_log(&self, user: UserId, after: u64) -> Result<Vec<LoggedUpdate>> {
        let mut tx = self.store.reader().await?;
        let entries = tx
            .updates_after(user, after, REPLAY_BATCH, REPLAY_BYTES)
            .await?;
        tx.commit().await?;
        if !entries.is_empty() {
            self.store.flush().await?;
        }
        Ok(entries)
    }
}
