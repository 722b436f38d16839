//! The environment of a run: PostgreSQL and Redis (throwaway or given),
//! the two replicas, the users and groups the scenarios create.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::proto::service::user_directory_client::UserDirectoryClient;
use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::{chats, refs, types};
use tokio_postgres::NoTls;
use tonic::transport::Channel;

use crate::clients::{bearer, group_ref, Client, Directory};
use crate::replicas::{sized_reads_at_once, Replica, ReplicaConfig};
use crate::{postgres, redis_server, Result, CALL_TIMEOUT};

pub(crate) struct Group {
    pub(crate) id: u64,
    /// The creator first.
    pub(crate) members: Vec<u64>,
}

impl Group {
    pub(crate) fn chat_ref(&self) -> refs::ChatRef {
        group_ref(self.id)
    }
}

async fn channel_to(replica: &Replica, bounded: bool) -> Result<Channel> {
    let mut endpoint = replica.endpoint()?;
    if bounded {
        endpoint = endpoint.timeout(CALL_TIMEOUT);
    }
    Ok(endpoint.connect().await?)
}

/// Replicas in every run: enough to show fan-out between them.
const REPLICAS: usize = 2;

pub(crate) struct Env {
    pub(crate) replicas: Vec<Replica>,
    /// On the service's schema.
    pub(crate) db: tokio_postgres::Client,
    /// The server without the schema option, for pgbench.
    pub(crate) server_url: String,
    pub(crate) log_dir: PathBuf,
    pub(crate) next_user: AtomicU64,
    /// What the run set `OSMIUM_DB_READ_CONCURRENCY` to, if it sized it.
    pub(crate) reads_at_once: Option<usize>,
    /// What a replica is started with, for [`Env::spawn_alone`].
    setup: Setup,
    pub(crate) _redis: Option<redis_server::RedisServer>,
}

struct Setup {
    database_url: String,
    redis_url: String,
    redis_prefix: String,
    server_here: bool,
}

impl Env {
    pub(crate) async fn start() -> Result<Self> {
        let (database_url, server_url) = match non_empty_var("LOAD_DATABASE_URL") {
            Some(server) => {
                let schema = format!("load_{}_{}", std::process::id(), unix_secs());
                let (db, connection) = tokio_postgres::connect(&server, NoTls).await?;
                let connection = tokio::spawn(connection);
                db.batch_execute(&format!("CREATE SCHEMA {schema}")).await?;
                drop(db);
                let _ = connection.await;
                (with_search_path(&server, &schema), server)
            }
            None => {
                let url = postgres::fresh_schema_url().await;
                let server = without_search_path(&url);
                (url, server)
            }
        };
        let (redis, redis_url) = match non_empty_var("LOAD_REDIS_URL") {
            Some(url) => (None, url),
            None => {
                let server = redis_server::RedisServer::start().await;
                let url = server.url();
                (Some(server), url)
            }
        };
        let log_dir = std::env::temp_dir().join(format!("osmium-load-{}", std::process::id()));
        std::fs::create_dir_all(&log_dir)?;
        let prefix = format!("osmium-load-{}-{}", std::process::id(), unix_secs());
        let server_here = non_empty_var("LOAD_DATABASE_URL").is_none();
        let reads_at_once = sized_reads_at_once(REPLICAS, server_here);
        let config = ReplicaConfig {
            database_url: &database_url,
            redis_url: &redis_url,
            redis_prefix: &prefix,
            log_dir: &log_dir,
            reads_at_once,
        };
        let replicas = (0..REPLICAS)
            .map(|index| Replica::spawn(index, &config))
            .collect::<Result<Vec<_>>>()?;
        for replica in &replicas {
            replica.wait_ready().await?;
        }
        let (db, connection) = tokio_postgres::connect(&database_url, NoTls).await?;
        tokio::spawn(connection);
        let durability = db
            .query_one(
                "SELECT current_setting('fsync'), current_setting('synchronous_commit')",
                &[],
            )
            .await?;
        println!(
            "postgres: fsync={}, synchronous_commit={}",
            durability.get::<_, String>(0),
            durability.get::<_, String>(1)
        );
        println!(
            "replicas: pids {} and {} on ports {} and {}; logs in {}",
            replicas[0].pid,
            replicas[1].pid,
            replicas[0].port,
            replicas[1].port,
            log_dir.display()
        );
        Ok(Self {
            replicas,
            db,
            server_url,
            log_dir,
            next_user: AtomicU64::new(10_000),
            reads_at_once,
            setup: Setup {
                database_url,
                redis_url,
                redis_prefix: prefix,
                server_here,
            },
            _redis: redis,
        })
    }

    /// A third replica of the main build, its reads at once sized for a
    /// replica alone on this machine's database (see `sized_reads_at_once`),
    /// and that size: for load that only it takes while the others idle.
    pub(crate) async fn spawn_alone(&self) -> Result<(Replica, Option<usize>)> {
        let reads_at_once = sized_reads_at_once(1, self.setup.server_here);
        let config = ReplicaConfig {
            database_url: &self.setup.database_url,
            redis_url: &self.setup.redis_url,
            redis_prefix: &self.setup.redis_prefix,
            log_dir: &self.log_dir,
            reads_at_once,
        };
        let replica = Replica::spawn(REPLICAS, &config)?;
        replica.wait_ready().await?;
        Ok((replica, reads_at_once))
    }

    /// A channel of its own (one HTTP/2 connection) to `replica`.
    pub(crate) async fn channel(&self, replica: usize, bounded: bool) -> Result<Channel> {
        channel_to(&self.replicas[replica % self.replicas.len()], bounded).await
    }

    pub(crate) async fn client(&self, user: u64, replica: usize) -> Result<Client> {
        self.client_of(user, &self.replicas[replica % self.replicas.len()])
            .await
    }

    /// [`Env::client`] of any replica, one of [`Env::spawn_alone`] too.
    pub(crate) async fn client_of(&self, user: u64, replica: &Replica) -> Result<Client> {
        Ok(ChatServiceClient::with_interceptor(
            channel_to(replica, true).await?,
            bearer(user, false)?,
        ))
    }

    /// A client whose calls are not bounded in time: for Subscribe.
    pub(crate) async fn stream_client(&self, user: u64, replica: usize) -> Result<Client> {
        Ok(ChatServiceClient::with_interceptor(
            self.channel(replica, false).await?,
            bearer(user, false)?,
        ))
    }

    pub(crate) async fn directory(&self) -> Result<Directory> {
        Ok(UserDirectoryClient::with_interceptor(
            self.channel(0, true).await?,
            bearer(1, true)?,
        ))
    }

    /// `count` new users, registered through UserDirectory.
    pub(crate) async fn users(&self, count: usize) -> Result<Vec<u64>> {
        let first = self.next_user.fetch_add(count as u64, Ordering::Relaxed);
        let ids: Vec<u64> = (first..first + count as u64).collect();
        let mut directory = self.directory().await?;
        for chunk in ids.chunks(500) {
            let users = chunk
                .iter()
                .map(|&id| types::User {
                    id,
                    name: format!("load user {id}"),
                    ..Default::default()
                })
                .collect();
            directory.upsert_users(UpsertUsers { users }).await?;
        }
        Ok(ids)
    }

    /// A group created by `members[0]` with all the others.
    pub(crate) async fn group_with(&self, members: Vec<u64>) -> Result<Group> {
        let mut creator = self.client(members[0], 0).await?;
        let users = members[1..]
            .iter()
            .map(|&user_id| refs::UserRef { user_id })
            .collect();
        let group = creator
            .create_chat(chats::CreateChat {
                users,
                name: "load group".into(),
            })
            .await?
            .into_inner();
        Ok(Group {
            id: group.id,
            members,
        })
    }

    pub(crate) async fn group_of(&self, size: usize) -> Result<Group> {
        let members = self.users(size).await?;
        self.group_with(members).await
    }

    /// Bytes of the update log tables (whichever of them exist).
    pub(crate) async fn log_bytes(&self) -> Result<i64> {
        let row = self
            .db
            .query_one(
                "SELECT coalesce(pg_total_relation_size(to_regclass('updates')), 0)
                      + coalesce(pg_total_relation_size(to_regclass('changes')), 0)",
                &[],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Bytes of `table` with its indexes and TOAST (0 before it exists).
    pub(crate) async fn table_bytes(&self, table: &str) -> Result<i64> {
        let row = self
            .db
            .query_one(
                "SELECT coalesce(pg_total_relation_size(to_regclass($1)), 0)",
                &[&table],
            )
            .await?;
        Ok(row.get(0))
    }

    /// Resets every replica's peak RSS and returns their current RSS.
    pub(crate) fn memory_before(&self) -> Result<Vec<u64>> {
        self.replicas
            .iter()
            .map(|r| {
                r.reset_peak()?;
                Ok(r.memory()?.0)
            })
            .collect()
    }

    /// The largest peak growth over the replicas since [`Self::memory_before`].
    pub(crate) fn peak_growth(&self, before: &[u64]) -> Result<u64> {
        let mut growth = 0;
        for (replica, rss_before) in self.replicas.iter().zip(before) {
            let (_, peak) = replica.memory()?;
            growth = growth.max(peak.saturating_sub(*rss_before));
        }
        Ok(growth)
    }
}

pub(crate) fn non_empty_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

pub(crate) fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// `server` with connections on `schema`, as the tests' harness does it.
pub(crate) fn with_search_path(server: &str, schema: &str) -> String {
    if server.starts_with("postgres://") || server.starts_with("postgresql://") {
        let separator = if server.contains('?') { '&' } else { '?' };
        format!("{server}{separator}options=-csearch_path%3D{schema}")
    } else {
        format!("{server} options=-csearch_path={schema}")
    }
}

/// The inverse of [`with_search_path`].
pub(crate) fn without_search_path(url: &str) -> String {
    for marker in ["?options=", "&options=", " options="] {
        if let Some(at) = url.find(marker) {
            let rest = &url[at + marker.len()..];
            let tail = rest.find(['&', ' ']).map(|end| &rest[end..]).unwrap_or("");
            let tail = match (marker, tail.strip_prefix('&')) {
                ("?options=", Some(more)) => format!("?{more}"),
                _ => tail.to_owned(),
            };
            return format!("{}{tail}", &url[..at]);
        }
    }
    url.to_owned()
}
