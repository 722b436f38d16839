-- Snowflake worker numbers, leased rather than counted: a replica holds one
-- while it renews it, and another may take it only once it has expired (or
-- was released at a clean stop), so no two live replicas mint with the same
-- worker. The old sequence stays for replicas of the previous version that
-- may still start during a rolling update.
CREATE TABLE worker_leases (
    worker     INTEGER     PRIMARY KEY CHECK (worker >= 0 AND worker < 1024),
    holder     TEXT        NOT NULL,
    expires_at TIMESTAMPTZ NOT NULL
);
