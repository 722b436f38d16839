//! The update log of the embedded engine.

use async_trait::async_trait;

use super::tx::MemoryTx;
use crate::model::{clock::now_ms, LoggedUpdate, NewChange, UserId};
use crate::store::{LogStore, StoreResult};

#[async_trait]
impl LogStore for MemoryTx {
    async fn append_changes(&mut self, changes: Vec<NewChange>) -> StoreResult<Vec<LoggedUpdate>> {
        let mut logged = Vec::new();
        for new in changes {
            for (user, personal) in new.recipients {
                let log = self.state.logs.entry(user).or_default();
                log.head += 1;
                let entry = LoggedUpdate {
                    user,
                    seq: log.head,
                    change: new.change.clone(),
                    personal,
                };
                log.entries.push_back((now_ms(), entry.clone()));
                logged.push(entry);
                self.undo.push(Box::new(move |s| {
                    if let Some(log) = s.logs.get_mut(&user) {
                        log.entries.pop_back();
                        log.head -= 1;
                    }
                }));
            }
        }
        Ok(logged)
    }

    async fn update_head(&mut self, user: UserId) -> StoreResult<u64> {
        Ok(self.state.logs.get(&user).map_or(0, |l| l.head))
    }

    async fn update_heads(&mut self, users: &[UserId]) -> StoreResult<Vec<(UserId, u64)>> {
        Ok(users
            .iter()
            .filter_map(|u| self.state.logs.get(u).map(|l| (*u, l.head)))
            .collect())
    }

    async fn oldest_update(&mut self, user: UserId) -> StoreResult<Option<u64>> {
        Ok(self
            .state
            .logs
            .get(&user)
            .and_then(|l| l.entries.front())
            .map(|(_, e)| e.seq))
    }

    async fn updates_after(
        &mut self,
        user: UserId,
        after: u64,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<Vec<LoggedUpdate>> {
        let Some(log) = self.state.logs.get(&user) else {
            return Ok(Vec::new());
        };
        let first = log.entries.front().map_or(1, |(_, e)| e.seq);
        let skip = after.saturating_add(1).saturating_sub(first) as usize;
        let mut bytes = 0;
        let mut page = Vec::new();
        for (_, entry) in log.entries.iter().skip(skip).take(limit) {
            if bytes >= max_bytes && !page.is_empty() {
                break;
            }
            bytes += entry.change.encoded_len();
            page.push(entry.clone());
        }
        Ok(page)
    }
}
