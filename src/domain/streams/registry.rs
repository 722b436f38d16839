//! This replica's open streams, per user: how many (capped), the highest seq
//! any of them delivered, and a way to tell them to catch up from the log.
//! The sweep reads it to find users whose log moved past their streams.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};

use tokio::sync::{watch, Notify};

use crate::error::{Error, Result};
use crate::model::UserId;

/// One user's streams on this replica.
pub(super) struct UserStreams {
    open: AtomicUsize,
    /// The highest seq any of the user's streams handed to its client.
    delivered: AtomicU64,
    /// A log head the last sweep saw ahead of `delivered` (0: none).
    suspect: AtomicU64,
    /// Bumped to make every stream of the user catch up from the log.
    nudge: watch::Sender<u64>,
}

impl UserStreams {
    pub(super) fn delivered(&self, seq: u64) {
        self.delivered.fetch_max(seq, Ordering::AcqRel);
    }

    pub(super) fn nudges(&self) -> watch::Receiver<u64> {
        self.nudge.subscribe()
    }

    fn nudge(&self) {
        self.nudge.send_modify(|n| *n = n.wrapping_add(1));
    }
}

type Users = Mutex<HashMap<UserId, Arc<UserStreams>>>;

/// Every open stream of this replica, by user.
pub(crate) struct Registry {
    users: Arc<Users>,
    max_per_user: usize,
    /// Asks the sweep to run now (the bus may have lost deliveries).
    pub(in crate::domain) urgent: Notify,
}

impl Registry {
    pub(crate) fn new(max_per_user: usize) -> Self {
        Self {
            users: Arc::default(),
            max_per_user: max_per_user.max(1),
            urgent: Notify::new(),
        }
    }

    /// A place for one more stream of `user`; refused past the per-user cap.
    pub(super) fn open(&self, user: UserId) -> Result<Slot> {
        let mut users = self.lock();
        let entry = users.entry(user).or_insert_with(|| {
            Arc::new(UserStreams {
                open: AtomicUsize::new(0),
                delivered: AtomicU64::new(0),
                suspect: AtomicU64::new(0),
                nudge: watch::channel(0).0,
            })
        });
        if entry.open.load(Ordering::Acquire) >= self.max_per_user {
            return Err(Error::ResourceExhausted(format!(
                "at most {} update streams per user on one replica; close one first",
                self.max_per_user
            )));
        }
        entry.open.fetch_add(1, Ordering::AcqRel);
        Ok(Slot {
            user,
            streams: entry.clone(),
            users: Arc::downgrade(&self.users),
        })
    }

    /// Users with streams here, with their state.
    pub(super) fn users(&self) -> Vec<(UserId, Arc<UserStreams>)> {
        self.lock()
            .iter()
            .map(|(user, streams)| (*user, streams.clone()))
            .collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<UserId, Arc<UserStreams>>> {
        self.users.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Compares a user's log head with what their streams delivered, for the
/// sweep: `true` when the streams should catch up. A head seen ahead once
/// may only be a publish still on its way, so it must be seen ahead twice
/// (or once when `urgent`: deliveries are known to be lost).
pub(super) fn behind(streams: &UserStreams, head: u64, urgent: bool) -> bool {
    let delivered = streams.delivered.load(Ordering::Acquire);
    if head <= delivered {
        streams.suspect.store(0, Ordering::Release);
        return false;
    }
    let suspect = streams.suspect.swap(head, Ordering::AcqRel);
    if urgent || (suspect != 0 && suspect > delivered) {
        streams.suspect.store(0, Ordering::Release);
        streams.nudge();
        return true;
    }
    false
}

/// One stream's place in the registry; gives it back on drop.
pub(super) struct Slot {
    user: UserId,
    pub(super) streams: Arc<UserStreams>,
    users: Weak<Users>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        let Some(users) = self.users.upgrade() else {
            return;
        };
        let mut users = users.lock().unwrap_or_else(|e| e.into_inner());
        if self.streams.open.fetch_sub(1, Ordering::AcqRel) == 1 {
            users.remove(&self.user);
        }
    }
}
