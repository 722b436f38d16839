//! Per-user rate limits on the calls that write or fan out: each call is
//! counted against its user's [`Rate`] in the ephemeral state (Redis when
//! replicas share it), and a refusal says how long to wait.

use super::limits::RateLimit;
use super::Core;
use crate::ephemeral::Admission;
use crate::error::{Error, Result};
use crate::model::UserId;

impl Core {
    /// Counts one `limit`ed call of `caller`; refused with `RESOURCE_EXHAUSTED`
    /// and the time to wait. When the state cannot be reached the call goes
    /// ahead: the limit protects the service, and a Redis outage must not
    /// stop sends, which need only Postgres. Typing is the exception: it
    /// lives in that state, so it fails with it.
    pub(super) async fn admit(&self, limit: RateLimit, caller: UserId) -> Result<()> {
        let rate = self.limits.rates.of(limit);
        if rate.is_off() {
            return Ok(());
        }
        match self.ephemeral.admit(limit.label(), caller, rate).await {
            Ok(Admission::Admitted) => Ok(()),
            Ok(Admission::RetryAfter(wait)) => {
                self.counters.count_rate_limited(limit);
                Err(Error::RateLimited {
                    what: limit.label(),
                    rate,
                    retry_after: wait,
                })
            }
            Err(error) if limit == RateLimit::Typing => Err(error.into()),
            Err(error) => {
                tracing::debug!(%error, limit = limit.label(), "rate limit unchecked");
                Ok(())
            }
        }
    }
}
