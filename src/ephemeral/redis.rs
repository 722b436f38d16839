//! Typing and rate-limit state in Redis, shared by every replica: one key
//! per (chat, user) for typing, one per (limit, user) for a rate, each
//! changed by a Lua script so that read and write are one atomic step.
//!
//! Commands go over the replica's shared command connection
//! ([`RedisCommands`]), the same one the bus publishes on.

use std::sync::Arc;

use async_trait::async_trait;
use tracing::Instrument as _;

use super::{
    Admission, Ephemeral, EphemeralError, TypingChange, TYPING_SUPPRESS_MS, TYPING_TTL_MS,
};
use crate::domain::limits::Rate;
use crate::model::{clock::now_us, TypingAction, UserId};
use crate::redis_conn::{redis_span, RedisCommands, COMMAND_TIMEOUT};

const START_TYPING: &str = r"
local old = redis.call('GET', KEYS[1])
if old == 'sent' then return 2 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
if old == ARGV[1] then return 1 end
return 0";

const STOP_TYPING: &str = r"
local old = redis.call('GET', KEYS[1])
local was = 0
if old and old ~= 'sent' then was = 1 end
if ARGV[1] == '1' then
  redis.call('SET', KEYS[1], 'sent', 'PX', ARGV[2])
elseif was == 1 then
  redis.call('DEL', KEYS[1])
end
return was";

/// [`super::gcra`] in Lua, on microseconds (exact in Lua's doubles for
/// centuries to come). ARGV: now, interval, period. Returns 0 when
/// admitted, else the microseconds to wait. The key lives as long as the
/// burst takes to refill, so an idle user costs nothing. The replica's
/// clock is used, not Redis's, like every other timestamp the service
/// writes; replicas' clocks disagreeing by a few milliseconds only shifts
/// a refill by as much.
const ADMIT: &str = r"
local now = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next = tat + tonumber(ARGV[2])
local allowed = now + tonumber(ARGV[3])
if next > allowed then return next - allowed end
redis.call('SET', KEYS[1], string.format('%d', next), 'PX', math.ceil((next - now) / 1000) + 1)
return 0";

pub struct RedisEphemeral {
    redis: Arc<RedisCommands>,
    prefix: String,
    start_typing: redis::Script,
    stop_typing: redis::Script,
    admit: redis::Script,
}

impl RedisEphemeral {
    pub fn new(redis: Arc<RedisCommands>, prefix: &str) -> Self {
        Self {
            redis,
            prefix: prefix.to_owned(),
            start_typing: redis::Script::new(START_TYPING),
            stop_typing: redis::Script::new(STOP_TYPING),
            admit: redis::Script::new(ADMIT),
        }
    }

    fn typing_key(&self, chat: &str, user: UserId) -> String {
        format!("{}:typing:{chat}:{user}", self.prefix)
    }

    async fn script<T: redis::FromRedisValue>(
        &self,
        script: &redis::Script,
        key: &str,
        args: &[String],
    ) -> Result<T, EphemeralError> {
        let mut connection = self
            .redis
            .connection()
            .await
            .map_err(|e| EphemeralError(e.0))?;
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        tokio::time::timeout(COMMAND_TIMEOUT, invocation.invoke_async(&mut connection))
            .instrument(redis_span("EVALSHA"))
            .await
            .map_err(|_| EphemeralError("timed out".into()))?
            .map_err(|e| EphemeralError(e.to_string()))
    }
}

#[async_trait]
impl Ephemeral for RedisEphemeral {
    async fn start_typing(
        &self,
        chat: &str,
        user: UserId,
        action: TypingAction,
    ) -> Result<TypingChange, EphemeralError> {
        let key = self.typing_key(chat, user);
        let code: i64 = self
            .script(
                &self.start_typing,
                &key,
                &[action.wire().to_string(), TYPING_TTL_MS.to_string()],
            )
            .await?;
        Ok(match code {
            0 => TypingChange::Changed,
            1 => TypingChange::Same,
            _ => TypingChange::Suppressed,
        })
    }

    async fn stop_typing(
        &self,
        chat: &str,
        user: UserId,
        after_send: bool,
    ) -> Result<bool, EphemeralError> {
        let key = self.typing_key(chat, user);
        let flag = if after_send { "1" } else { "0" };
        let was: i64 = self
            .script(
                &self.stop_typing,
                &key,
                &[flag.to_owned(), TYPING_SUPPRESS_MS.to_string()],
            )
            .await?;
        Ok(was == 1)
    }

    async fn admit(
        &self,
        limit: &str,
        user: UserId,
        rate: Rate,
    ) -> Result<Admission, EphemeralError> {
        let key = format!("{}:rate:{limit}:{user}", self.prefix);
        let wait: u64 = self
            .script(
                &self.admit,
                &key,
                &[
                    now_us().to_string(),
                    rate.interval_us().to_string(),
                    rate.period_us().to_string(),
                ],
            )
            .await?;
        Ok(match wait {
            0 => Admission::Admitted,
            us => Admission::RetryAfter(std::time::Duration::from_micros(us)),
        })
    }
}
