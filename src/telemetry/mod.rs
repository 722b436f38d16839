//! Logs, traces and metrics, set up once per process.
//!
//! Logs: human-readable, or JSON lines with `OSMIUM_LOG_FORMAT=json`;
//! filtered by `RUST_LOG`. Message bodies and tokens are never logged.
//! Traces: a span per RPC, named `{service}/{method}` with the RPC semantic
//! conventions, continuing the caller's W3C `traceparent`; exported over
//! OTLP when `OTEL_EXPORTER_OTLP_ENDPOINT` is set (other `OTEL_*`
//! variables apply as usual), off otherwise.

mod methods;
pub mod metrics;

use std::io::IsTerminal as _;

use opentelemetry::propagation::{Extractor, TextMapPropagator};
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Keeps the trace exporter alive; flushes pending spans when dropped.
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Installs the process-wide subscriber. A second call (tests start many
/// servers in one process) changes nothing.
pub fn init(format: &LogFormat) -> Telemetry {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let logs = match format {
        LogFormat::Json => tracing_subscriber::fmt::layer().json().boxed(),
        // Colour only for a person at a terminal: never escape codes in
        // files, pipes or a pod's log, and never against NO_COLOR.
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_ansi(std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none())
            .boxed(),
    }
    .with_filter(filter);
    let provider =
        std::env::var_os("OTEL_EXPORTER_OTLP_ENDPOINT").and_then(|_| match otlp_provider() {
            Ok(provider) => Some(provider),
            Err(error) => {
                eprintln!("tracing export disabled: {error}");
                None
            }
        });
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("osmium-chat"))
            .with_filter(LevelFilter::INFO)
    });
    let _ = tracing_subscriber::registry()
        .with(logs)
        .with(traces)
        .try_init();
    Telemetry { provider }
}

fn otlp_provider() -> Result<SdkTracerProvider, opentelemetry_otlp::ExporterBuildError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name("osmium-chat")
                .build(),
        )
        .build())
}

/// An error and every cause under it, on one line: `outer: inner: root`.
/// A cause whose text its parent already shows (wrappers that print their
/// source) is not repeated; line breaks (Postgres' DETAIL and HINT) become
/// `; `. Start-up failures and internal errors are logged this way, since
/// the outermost text alone rarely says why.
pub fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(inner) = cause {
        let shown = inner.to_string();
        if !shown.is_empty() && !text.contains(&shown) {
            text.push_str(": ");
            text.push_str(&shown);
        }
        cause = inner.source();
    }
    text.replace('\n', "; ")
}

/// The span's name, service and method: those of a method this server
/// serves, or [`methods::UNKNOWN`] for all three, so that a caller's path
/// never becomes a name (trace backends index span names as metrics
/// labels are, and would grow without bound on made-up paths).
fn span_name(path: &str) -> (&'static str, &'static str, &'static str) {
    let name = methods::label(path);
    let (service, method) = name.split_once('/').unwrap_or((name, name));
    (name, service, method)
}

/// Reads W3C trace context from gRPC metadata (HTTP/2 headers).
struct Headers<'a>(&'a http::HeaderMap);

impl Extractor for Headers<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

/// The span of one RPC, a child of the caller's `traceparent` when sent.
pub fn rpc_span(request: &http::Request<()>) -> Span {
    let (name, service, method) = span_name(request.uri().path());
    let span = tracing::info_span!(
        "rpc",
        otel.name = name,
        otel.kind = "server",
        rpc.system = "grpc",
        rpc.service = service,
        rpc.method = method,
        rpc.grpc.status_code = tracing::field::Empty,
        user = tracing::field::Empty,
    );
    // With the span filtered out (no exporter, RUST_LOG above info) the
    // caller's context would be parsed for nothing on every call.
    if !span.is_disabled() {
        let parent = TraceContextPropagator::new().extract(&Headers(request.headers()));
        let _ = span.set_parent(parent);
    }
    span
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spans_are_named_after_served_methods_only() {
        assert_eq!(
            span_name("/osmium.chat.v1.ChatService/GetChats"),
            (
                "osmium.chat.v1.ChatService/GetChats",
                "osmium.chat.v1.ChatService",
                "GetChats"
            )
        );
        for path in [
            "/made.up.Service/Anything",
            "/osmium.chat.v1.ChatService/Nope",
            "/",
            "",
        ] {
            let unknown = methods::UNKNOWN;
            assert_eq!(span_name(path), (unknown, unknown, unknown), "{path}");
        }
    }
}
