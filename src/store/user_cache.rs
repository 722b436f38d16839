//! A replica's copy of user profiles in front of the users table, so that
//! most reads never query it.
//!
//! Coherence: a change of a profile (UpsertUsers, a registration) drops the
//! entries on the replica that made it before it answers, and on every
//! other replica when the bus brings the word; a replica that may have
//! missed such word (its bus reconnected or resynced) drops everything.
//! Whatever still escapes both is bounded by the entries' age: an entry is
//! used for at most `ttl` after it was read. A read that started before a
//! drop does not store what it read, so a drop cannot be undone by a read
//! that was in flight. The number of entries is bounded too.
//!
//! Each profile is kept in its wire form, encoded once when it is read: a
//! page of conversations sends a few hundred users, and writes each as
//! these bytes instead of cloning and encoding it again on every call; a
//! read that wants the profile decodes it, which costs what a clone did.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::model::UserId;
use crate::proto::replies::EncodedUser;
use crate::proto::types;
use crate::store::{Store, StoreResult, Tx};

pub struct UserCache {
    /// How long an entry may be used after it was read.
    ttl: Duration,
    /// Most entries kept; 0 turns the cache off.
    capacity: usize,
    /// Most bytes kept, counted by [`Entry::size`].
    budget: usize,
    /// A std mutex: held only to look up or store, never across an await.
    entries: Mutex<Entries>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct Entries {
    users: HashMap<UserId, Entry>,
    /// The entries' sizes, summed.
    bytes: usize,
    /// Counts drops: a read that saw another count than at its start keeps
    /// nothing.
    drops: u64,
}

/// A profile as kept: its wire form only, so that an entry costs what the
/// profile encodes to, however many replies send it.
struct Entry {
    read: Instant,
    wire: EncodedUser,
}

/// What an entry costs beside its bytes: its key, its time, the handle
/// to its bytes and its slot in the map, about.
const ENTRY_OVERHEAD: usize = 64;

impl Entry {
    fn size(&self) -> usize {
        self.wire.byte_len() + ENTRY_OVERHEAD
    }
}

/// What a lookup hands out for each user found: the profile, or its wire
/// form.
trait Handed: Sized {
    /// From the form the cache keeps; `None` when it does not decode, and
    /// the user is read again.
    fn from_wire(wire: EncodedUser) -> Option<Self>;
    /// From a profile just read, with its wire form when the cache made
    /// one for it.
    fn read(user: types::User, wire: Option<EncodedUser>) -> Self;
}

impl Handed for types::User {
    fn from_wire(wire: EncodedUser) -> Option<Self> {
        wire.decode().ok()
    }

    fn read(user: types::User, _: Option<EncodedUser>) -> Self {
        user
    }
}

impl Handed for EncodedUser {
    fn from_wire(wire: EncodedUser) -> Option<Self> {
        Some(wire)
    }

    fn read(user: types::User, wire: Option<EncodedUser>) -> Self {
        wire.unwrap_or_else(|| Self::from(&user))
    }
}

impl Entries {
    /// Keeps `entry` for `id`, in place of any kept before.
    fn insert(&mut self, id: UserId, entry: Entry) {
        self.bytes += entry.size();
        if let Some(old) = self.users.insert(id, entry) {
            self.bytes -= old.size();
        }
    }

    fn remove(&mut self, id: &UserId) {
        if let Some(old) = self.users.remove(id) {
            self.bytes -= old.size();
        }
    }
}

impl UserCache {
    pub fn new(ttl: Duration, capacity: usize, budget: usize) -> Self {
        Self {
            ttl,
            capacity,
            budget,
            entries: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        }
    }

    /// The users of `ids` that exist, in the order asked, reading only
    /// those not cached from `tx`.
    pub async fn users(&self, tx: &mut dyn Tx, ids: &[UserId]) -> StoreResult<Vec<types::User>> {
        self.users_read_by(ids, |missing| async move { tx.users(&missing).await })
            .await
    }

    /// [`UserCache::users`] for a call that holds no transaction: those not
    /// cached are read by a reader of `store`, opened only then.
    pub async fn users_outside(
        &self,
        store: &dyn Store,
        ids: &[UserId],
    ) -> StoreResult<Vec<types::User>> {
        self.users_read_by(ids, |missing| read_outside(store, missing))
            .await
    }

    /// [`UserCache::users_outside`] in wire form: what a reply that sends
    /// many users writes as it is ([`crate::proto::replies`]).
    pub async fn encoded_users_outside(
        &self,
        store: &dyn Store,
        ids: &[UserId],
    ) -> StoreResult<Vec<EncodedUser>> {
        self.users_read_by(ids, |missing| read_outside(store, missing))
            .await
    }

    async fn users_read_by<T, F, Read>(&self, ids: &[UserId], read: F) -> StoreResult<Vec<T>>
    where
        T: Handed,
        F: FnOnce(Vec<UserId>) -> Read,
        Read: std::future::Future<Output = StoreResult<Vec<types::User>>>,
    {
        let started = Instant::now();
        // Looked up under the lock, decoded (for those who want profiles)
        // after it.
        let (cached, drops) = {
            let entries = self.lock();
            let cached: Vec<Option<EncodedUser>> = ids
                .iter()
                .map(|id| {
                    entries
                        .users
                        .get(id)
                        .filter(|entry| started.duration_since(entry.read) < self.ttl)
                        .map(|entry| entry.wire.clone())
                })
                .collect();
            (cached, entries.drops)
        };
        let mut found: Vec<Option<T>> = Vec::with_capacity(ids.len());
        let mut missing = Vec::new();
        for (id, wire) in ids.iter().zip(cached) {
            let user = wire.and_then(T::from_wire);
            if user.is_none() {
                missing.push(*id);
            }
            found.push(user);
        }
        let hits = ids.len() - missing.len();
        self.hits.fetch_add(hits as u64, Ordering::Relaxed);
        self.misses
            .fetch_add(missing.len() as u64, Ordering::Relaxed);
        if missing.is_empty() {
            return Ok(present(found));
        }
        // Each with its wire form once the cache has made it, so that a
        // reply in wire form does not encode it again.
        let mut read: Vec<(types::User, Option<EncodedUser>)> = read(missing)
            .await?
            .into_iter()
            .map(|user| (user, None))
            .collect();
        if self.capacity > 0 {
            // A read of more users than the cache holds keeps only some.
            let mut bytes = 0;
            let mut kept = Vec::new();
            for (user, wire) in read.iter_mut().take(self.capacity) {
                let entry = Entry {
                    read: started,
                    wire: EncodedUser::from(&*user),
                };
                if bytes + entry.size() > self.budget {
                    break;
                }
                bytes += entry.size();
                *wire = Some(entry.wire.clone());
                kept.push((UserId(user.id), entry));
            }
            let mut entries = self.lock();
            if entries.drops == drops {
                self.make_room(&mut entries, kept.len(), bytes, started);
                for (id, entry) in kept {
                    entries.insert(id, entry);
                }
            }
        }
        for (slot, id) in found.iter_mut().zip(ids) {
            if slot.is_none() {
                if let Some(at) = read.iter().position(|(u, _)| u.id == id.get()) {
                    let (user, wire) = read.swap_remove(at);
                    *slot = Some(T::read(user, wire));
                }
            }
        }
        Ok(present(found))
    }

    /// Forgets these users: their profiles changed.
    pub fn invalidate(&self, ids: &[UserId]) {
        let mut entries = self.lock();
        entries.drops += 1;
        for id in ids {
            entries.remove(id);
        }
    }

    /// Forgets everyone: changes may have been missed.
    pub fn clear(&self) {
        let mut entries = self.lock();
        entries.drops += 1;
        entries.users.clear();
        entries.bytes = 0;
    }

    /// Profiles looked up and found fresh here, one per id asked, so far.
    pub fn hits(&self) -> u64 {
        self.hits.load(Ordering::Relaxed)
    }

    /// Profiles looked up and read from the store (absent, expired, or the
    /// cache turned off), one per id asked, so far.
    pub fn misses(&self) -> u64 {
        self.misses.load(Ordering::Relaxed)
    }

    /// Entries kept now.
    pub fn len(&self) -> usize {
        self.lock().users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Keeps the count within capacity and the bytes within budget with
    /// `adding` more entries of `adding_bytes`: expired entries go first,
    /// then arbitrary ones (an entry costs only a read to restore).
    fn make_room(&self, entries: &mut Entries, adding: usize, adding_bytes: usize, now: Instant) {
        if entries.users.len() + adding <= self.capacity
            && entries.bytes + adding_bytes <= self.budget
        {
            return;
        }
        let ttl = self.ttl;
        let expired: Vec<UserId> = entries
            .users
            .iter()
            .filter(|(_, entry)| now.saturating_duration_since(entry.read) >= ttl)
            .map(|(id, _)| *id)
            .collect();
        for id in &expired {
            entries.remove(id);
        }
        // An eighth more than needed, so that a full cache does not evict
        // on every read.
        let mut over_count =
            (entries.users.len() + adding + self.capacity / 8).saturating_sub(self.capacity);
        let mut over_bytes =
            (entries.bytes + adding_bytes + self.budget / 8).saturating_sub(self.budget);
        let mut victims = Vec::new();
        for (id, entry) in &entries.users {
            if over_count == 0 && over_bytes == 0 {
                break;
            }
            over_count = over_count.saturating_sub(1);
            over_bytes = over_bytes.saturating_sub(entry.size());
            victims.push(*id);
        }
        for id in &victims {
            entries.remove(id);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The users not cached, read by a reader of `store` opened only for them.
async fn read_outside(store: &dyn Store, missing: Vec<UserId>) -> StoreResult<Vec<types::User>> {
    let mut tx = store.reader().await?;
    let users = tx.users(&missing).await?;
    tx.commit().await?;
    Ok(users)
}

/// The users found, in the order asked. Sized up front: a page refers to
/// a few hundred users, and collecting through `flatten` would grow the
/// list (and move every user in it) step by step.
fn present<T>(found: Vec<Option<T>>) -> Vec<T> {
    let mut users = Vec::with_capacity(found.len());
    users.extend(found.into_iter().flatten());
    users
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: u64) -> types::User {
        types::User {
            id,
            name: format!("user {id}"),
            ..Default::default()
        }
    }

    async fn read(cache: &UserCache, ids: &[u64]) -> Vec<u64> {
        let ids: Vec<UserId> = ids.iter().map(|&id| UserId(id)).collect();
        let users: Vec<types::User> = lookup(cache, &ids).await;
        users.iter().map(|u| u.id).collect()
    }

    /// `ids` through the cache, reading those it misses as [`user`].
    async fn lookup<T: Handed>(cache: &UserCache, ids: &[UserId]) -> Vec<T> {
        cache
            .users_read_by(ids, |missing| async move {
                Ok(missing.iter().map(|id| user(id.get())).collect())
            })
            .await
            .expect("users")
    }

    #[tokio::test]
    async fn profiles_beyond_the_byte_budget_are_answered_but_not_all_kept() {
        let big = |id: u64| types::User {
            id,
            name: format!("user {id}"),
            photo: Some(types::ChatPhoto {
                file_id: id,
                preview: vec![7; 1000],
            }),
            ..Default::default()
        };
        let one = Entry {
            read: Instant::now(),
            wire: EncodedUser::from(&big(10)),
        }
        .size();
        let cache = UserCache::new(Duration::from_secs(30), 100, 3 * one);
        for round in 1..4u64 {
            let ids: Vec<UserId> = (round * 10..round * 10 + 5).map(UserId).collect();
            let users: Vec<types::User> = cache
                .users_read_by(&ids, |missing| async move {
                    Ok(missing.iter().map(|id| big(id.get())).collect())
                })
                .await
                .expect("users");
            assert_eq!(
                users,
                ids.iter().map(|id| big(id.get())).collect::<Vec<_>>()
            );
            let entries = cache.lock();
            let kept: usize = entries.users.values().map(Entry::size).sum();
            assert_eq!(entries.bytes, kept, "the count of bytes is the entries'");
            assert!(kept <= 3 * one, "{kept} bytes kept, budget {}", 3 * one);
            assert!(!entries.users.is_empty(), "round {round} kept nothing");
        }
    }

    #[tokio::test]
    async fn users_in_wire_form_are_their_profiles_encoded_whether_read_or_cached() {
        let cache = UserCache::new(Duration::from_secs(30), 10, 1 << 20);
        let ids = [UserId(4), UserId(2)];
        let expected: Vec<EncodedUser> = [user(4), user(2)].iter().map(EncodedUser::from).collect();
        assert_eq!(lookup::<EncodedUser>(&cache, &ids).await, expected);
        assert_eq!(cache.misses(), 2);
        assert_eq!(lookup::<EncodedUser>(&cache, &ids).await, expected);
        assert_eq!(cache.hits(), 2);
        let profiles: Vec<types::User> = lookup(&cache, &ids).await;
        assert_eq!(profiles, [user(4), user(2)]);
        assert_eq!((cache.hits(), cache.misses()), (4, 2));
    }

    #[tokio::test]
    async fn a_read_of_more_users_than_the_cache_holds_keeps_it_within_its_capacity() {
        let cache = UserCache::new(Duration::from_secs(30), 3, 1 << 20);
        assert_eq!(read(&cache, &[1, 2, 3, 4, 5]).await, [1, 2, 3, 4, 5]);
        assert_eq!(cache.len(), 3);
        assert_eq!(read(&cache, &[5, 4, 3, 2, 1]).await, [5, 4, 3, 2, 1]);
        assert!(cache.len() <= 3, "{} entries", cache.len());
        assert_eq!(cache.misses() + cache.hits(), 10);
    }
}
