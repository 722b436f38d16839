//! Snowflake worker leases on Postgres: one row per leased worker number,
//! taken when free or expired, renewed by its holder, deleted on release.
//! Every statement stands alone (autocommit): a lease is never held inside
//! a transaction.

use std::time::Duration;

use super::PostgresStore;
use crate::model::snowflake::WORKER_COUNT;
use crate::store::StoreResult;

/// Takes the lowest worker number that nobody holds or whose lease has
/// expired. Two replicas that pick the same number race on its row: the
/// loser's conflict finds a live lease and returns no row, and it tries
/// again.
const TAKE: &str = "INSERT INTO worker_leases AS l (worker, holder, expires_at)
     SELECT w, $1, now() + $2::bigint * interval '1 millisecond'
     FROM generate_series(0, $3::int - 1) AS w
     WHERE NOT EXISTS (SELECT 1 FROM worker_leases t WHERE t.worker = w AND t.expires_at > now())
     ORDER BY w LIMIT 1
     ON CONFLICT (worker) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
     WHERE l.expires_at <= now()
     RETURNING worker";

/// Races lost in a row before giving up; each loss means another replica
/// took a worker, so the range is filling up fast.
const ATTEMPTS: usize = 16;

impl PostgresStore {
    pub(super) async fn take_worker(
        &self,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<u64>> {
        let client = self.pool.get().await?;
        let ttl = ttl.as_millis() as i64;
        let count = WORKER_COUNT as i32;
        for _ in 0..ATTEMPTS {
            let taken = client.query_opt(TAKE, &[&holder, &ttl, &count]).await?;
            if let Some(row) = taken {
                return Ok(Some(row.get::<_, i32>(0) as u64));
            }
            let live: i64 = client
                .query_one(
                    "SELECT count(*) FROM worker_leases WHERE expires_at > now()",
                    &[],
                )
                .await?
                .get(0);
            if live >= i64::from(count) {
                return Ok(None);
            }
        }
        Ok(None)
    }

    pub(super) async fn renew(
        &self,
        worker: u64,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<bool> {
        let client = self.pool.get().await?;
        let renewed = client
            .execute(
                "UPDATE worker_leases SET expires_at = now() + $3::bigint * interval '1 millisecond'
                 WHERE worker = $1 AND holder = $2",
                &[&(worker as i32), &holder, &(ttl.as_millis() as i64)],
            )
            .await?;
        Ok(renewed == 1)
    }

    pub(super) async fn release(&self, worker: u64, holder: &str) -> StoreResult<()> {
        let client = self.pool.get().await?;
        client
            .execute(
                "DELETE FROM worker_leases WHERE worker = $1 AND holder = $2",
                &[&(worker as i32), &holder],
            )
            .await?;
        Ok(())
    }
}
