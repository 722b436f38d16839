//! Prometheus metrics on `OSMIUM_METRICS_ADDR` at `/metrics`. RPC counts
//! and latencies come from a tower layer around every service; the rest is
//! read from the engines and the domain's counters when scraped, so no
//! handler carries metrics code.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};
use tonic::codegen::BoxFuture;

use crate::domain::limits::RateLimit;
use crate::domain::Core;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RpcLabels {
    /// A method this server serves, or `unknown`: never a caller's path.
    method: &'static str,
    code: &'static str,
}

/// gRPC status codes as label values, without formatting one per call.
const CODES: [&str; 17] = [
    "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RateLabels {
    limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BatchLabels {
    read: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PoolLabels {
    state: &'static str,
}

pub struct Metrics {
    registry: Registry,
    rpc_requests: Family<RpcLabels, Counter>,
    rpc_duration: Family<RpcLabels, Histogram>,
    pool: Family<PoolLabels, Gauge>,
    batched_reads: Family<BatchLabels, Counter>,
    batched_statements: Family<BatchLabels, Counter>,
    streams: Gauge,
    redis_reconnects: Counter,
    redis_publish_failures: Counter,
    replayed: Counter,
    lag_ended: Counter,
    swept: Counter,
    log_entries: Counter,
    log_payload_bytes: Counter,
    rate_limited: Family<RateLabels, Counter>,
    user_cache_hits: Counter,
    user_cache_misses: Counter,
    core: Arc<Core>,
}

impl Metrics {
    pub fn new(core: Arc<Core>) -> Self {
        let mut registry = Registry::with_prefix("osmium");
        let rpc_requests = Family::<RpcLabels, Counter>::default();
        registry.register(
            "rpc_requests",
            "RPCs handled, by method and gRPC status code",
            rpc_requests.clone(),
        );
        let rpc_duration = Family::<RpcLabels, Histogram>::new_with_constructor(|| {
            // 0.25 ms to about 8 s.
            Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
        });
        registry.register_with_unit(
            "rpc_duration",
            "Time to the response headers, by method and gRPC status code",
            Unit::Seconds,
            rpc_duration.clone(),
        );
        let pool = Family::<PoolLabels, Gauge>::default();
        registry.register(
            "db_pool_connections",
            "Postgres pool: size, available, callers waiting for a connection, and reads waiting for their turn",
            pool.clone(),
        );
        let batched_reads = Family::<BatchLabels, Counter>::default();
        registry.register(
            "db_batched_reads",
            "Reads answered together with others made at the same time, by read (chat: GetChat, history: GetHistory)",
            batched_reads.clone(),
        );
        let batched_statements = Family::<BatchLabels, Counter>::default();
        registry.register(
            "db_batched_read_statements",
            "The statements that answered them, by read: reads over statements is the mean batch",
            batched_statements.clone(),
        );
        let streams = Gauge::default();
        registry.register(
            "subscribe_streams_open",
            "Open Subscribe streams on this replica",
            streams.clone(),
        );
        let redis_reconnects = Counter::default();
        registry.register(
            "redis_reconnects",
            "Redis pub/sub reconnections",
            redis_reconnects.clone(),
        );
        let redis_publish_failures = Counter::default();
        registry.register(
            "redis_publish_failures",
            "Publishes to Redis that failed",
            redis_publish_failures.clone(),
        );
        let replayed = Counter::default();
        registry.register(
            "update_log_replayed",
            "Updates read back from the log for streams",
            replayed.clone(),
        );
        let lag_ended = Counter::default();
        registry.register(
            "streams_ended_for_lag",
            "Subscribe streams ended because the client fell behind",
            lag_ended.clone(),
        );
        if let Some(lag) = core.stats().lag() {
            registry.register_with_unit(
                "publish_lag",
                "Time from a commit to its publish being acknowledged by Redis",
                Unit::Seconds,
                lag.publish,
            );
            registry.register_with_unit(
                "delivery_lag",
                "Time from a publish on another replica to its arrival here (wall clocks)",
                Unit::Seconds,
                lag.delivery,
            );
        }
        let swept = Counter::default();
        registry.register(
            "streams_swept",
            "Users whose streams the sweep found behind their update log and made catch up",
            swept.clone(),
        );
        registry.register_with_unit(
            "sweep_duration",
            "Time one sweep takes to compare this replica's streams with their update logs",
            Unit::Seconds,
            core.stats().counters().sweep_duration(),
        );
        let user_cache_hits = Counter::default();
        registry.register(
            "user_cache_hits",
            "Profile lookups answered from this replica's user cache",
            user_cache_hits.clone(),
        );
        let user_cache_misses = Counter::default();
        registry.register(
            "user_cache_misses",
            "Profile lookups that went to the users table",
            user_cache_misses.clone(),
        );
        let log_entries = Counter::default();
        registry.register(
            "update_log_entries",
            "Entries appended to users' update logs (one per recipient of a change)",
            log_entries.clone(),
        );
        let log_payload_bytes = Counter::default();
        registry.register(
            "update_log_payload_bytes",
            "Bytes of change payloads appended to the update log, each change once",
            log_payload_bytes.clone(),
        );
        let rate_limited = Family::<RateLabels, Counter>::default();
        registry.register(
            "rate_limited",
            "Calls refused by a per-user rate limit, by limit",
            rate_limited.clone(),
        );
        // Every limit's series exists from the start, at 0, so that rates
        // and alerts over it need no special case for a quiet replica.
        for limit in RateLimit::ALL {
            drop(rate_limited.get_or_create(&RateLabels {
                limit: limit.label(),
            }));
        }
        Self {
            registry,
            rpc_requests,
            rpc_duration,
            pool,
            batched_reads,
            batched_statements,
            streams,
            redis_reconnects,
            redis_publish_failures,
            replayed,
            lag_ended,
            swept,
            log_entries,
            log_payload_bytes,
            rate_limited,
            user_cache_hits,
            user_cache_misses,
            core,
        }
    }

    fn record_rpc(&self, method: &'static str, code: i32, started: Instant) {
        // Codes past the known 17 (none today) are counted as UNKNOWN (2).
        let code = usize::try_from(code)
            .ok()
            .and_then(|code| CODES.get(code))
            .map_or("2", |code| *code);
        let labels = RpcLabels { method, code };
        self.rpc_requests.get_or_create(&labels).inc();
        self.rpc_duration
            .get_or_create(&labels)
            .observe(started.elapsed().as_secs_f64());
    }

    /// The exposition text, with the engines' readings taken now.
    pub fn render(&self) -> String {
        let stats = self.core.stats();
        if let Some(status) = stats.pool() {
            for (state, value) in [
                ("size", status.size),
                ("available", status.available),
                ("waiting", status.waiting),
                ("reads_waiting", status.reads_waiting),
            ] {
                self.pool
                    .get_or_create(&PoolLabels { state })
                    .set(value as i64);
            }
            for (read, batches) in [
                ("chats", status.chat_pages),
                ("chat", status.chat_entries),
                ("history", status.history_pages),
            ] {
                let labels = BatchLabels { read };
                catch_up(&self.batched_reads.get_or_create(&labels), batches.calls);
                catch_up(
                    &self.batched_statements.get_or_create(&labels),
                    batches.statements,
                );
            }
        }
        let bus = stats.bus();
        self.streams.set(bus.open_streams as i64);
        catch_up(&self.redis_reconnects, bus.reconnects);
        catch_up(&self.redis_publish_failures, bus.publish_failures);
        let counters = stats.counters();
        catch_up(&self.replayed, counters.replayed());
        catch_up(&self.lag_ended, counters.lag_ended());
        catch_up(&self.swept, counters.swept());
        for limit in RateLimit::ALL {
            let labels = RateLabels {
                limit: limit.label(),
            };
            catch_up(
                &self.rate_limited.get_or_create(&labels),
                counters.rate_limited(limit),
            );
        }
        catch_up(&self.log_entries, counters.log_entries());
        catch_up(&self.log_payload_bytes, counters.log_payload_bytes());
        let users = stats.user_cache();
        catch_up(&self.user_cache_hits, users.hits());
        catch_up(&self.user_cache_misses, users.misses());
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Moves a Prometheus counter up to a total kept elsewhere.
fn catch_up(counter: &Counter, total: u64) {
    let seen = counter.get();
    if total > seen {
        counter.inc_by(total - seen);
    }
}

/// Serves `/metrics` until `stop` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    stop: impl std::future::Future<Output = ()> + Send + 'static,
) {
    use axum::routing::get;
    let app = axum::Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move {
                (
                    [(
                        http::header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
            }
        }),
    );
    if let Err(error) = axum::serve(listener, app)
        .with_graceful_shutdown(stop)
        .await
    {
        tracing::warn!(%error, "metrics endpoint stopped");
    }
}

/// Counts and times every RPC.
#[derive(Clone)]
pub struct RpcMetricsLayer(pub Arc<Metrics>);

impl<S> tower_layer::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.0.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: Arc<Metrics>,
}

impl<S, B, R> tower_service::Service<http::Request<B>> for RpcMetricsService<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<R>>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = super::methods::label(request.uri().path());
        let started = Instant::now();
        let metrics = self.metrics.clone();
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            // Refusals carry their status in the headers (trailers-only);
            // a response that starts normally is counted as OK, and a
            // stream's latency is its time to first byte.
            let code = response
                .headers()
                .get("grpc-status")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            metrics.record_rpc(method, code, started);
            Ok(response)
        })
    }
}
