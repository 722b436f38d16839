//! In-process typing and rate-limit state, for a single replica (the
//! embedded mode): the same behaviour as Redis, without the network.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;

use super::{
    gcra, Admission, Ephemeral, EphemeralError, TypingChange, TYPING_SUPPRESS_MS, TYPING_TTL_MS,
};
use crate::domain::limits::Rate;
use crate::model::clock::{now_ms, now_us};
use crate::model::{TypingAction, UserId};

/// What a typing key holds.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Typing {
    Action(TypingAction),
    /// The user just sent a message.
    Sent,
}

#[derive(Default)]
pub struct LocalEphemeral {
    /// (chat, user) -> (state, expires at ms). Expired entries are swept
    /// whenever the map is touched and larger than the last sweep left it.
    typing: Mutex<HashMap<(String, UserId), (Typing, u64)>>,
    /// (limit, user) -> when the user's burst is whole again (µs).
    rates: Mutex<HashMap<(String, UserId), u64>>,
}

fn sweep<K, V>(map: &mut HashMap<K, V>, expired: impl Fn(&V) -> bool) {
    if map.len() > 10_000 {
        map.retain(|_, v| !expired(v));
    }
}

#[async_trait]
impl Ephemeral for LocalEphemeral {
    async fn start_typing(
        &self,
        chat: &str,
        user: UserId,
        action: TypingAction,
    ) -> Result<TypingChange, EphemeralError> {
        let now = now_ms();
        let mut typing = self.typing.lock().unwrap_or_else(|e| e.into_inner());
        sweep(&mut typing, |(_, until)| *until <= now);
        let key = (chat.to_owned(), user);
        let current = typing
            .get(&key)
            .filter(|(_, until)| *until > now)
            .map(|(t, _)| *t);
        if current == Some(Typing::Sent) {
            return Ok(TypingChange::Suppressed);
        }
        typing.insert(key, (Typing::Action(action), now + TYPING_TTL_MS));
        Ok(if current == Some(Typing::Action(action)) {
            TypingChange::Same
        } else {
            TypingChange::Changed
        })
    }

    async fn stop_typing(
        &self,
        chat: &str,
        user: UserId,
        after_send: bool,
    ) -> Result<bool, EphemeralError> {
        let now = now_ms();
        let mut typing = self.typing.lock().unwrap_or_else(|e| e.into_inner());
        let key = (chat.to_owned(), user);
        let was = matches!(typing.get(&key), Some((Typing::Action(_), until)) if *until > now);
        if after_send {
            typing.insert(key, (Typing::Sent, now + TYPING_SUPPRESS_MS));
        } else if was {
            typing.remove(&key);
        }
        Ok(was)
    }

    async fn admit(
        &self,
        limit: &str,
        user: UserId,
        rate: Rate,
    ) -> Result<Admission, EphemeralError> {
        let now = now_us();
        let mut rates = self.rates.lock().unwrap_or_else(|e| e.into_inner());
        sweep(&mut rates, |tat| *tat <= now);
        let key = (limit.to_owned(), user);
        Ok(match gcra(rates.get(&key).copied(), now, rate) {
            Ok(tat) => {
                rates.insert(key, tat);
                Admission::Admitted
            }
            Err(wait) => Admission::RetryAfter(wait),
        })
    }
}
