//! A caller's W3C trace context continues in the service's RPC span.
//!
//! Its own test binary: the span is checked through a subscriber installed
//! for this test alone, which other tests in the same process would race
//! (tracing caches per call site whether anyone listens).

use std::time::{Duration, Instant};

use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use osmium_chat::config::{Secret, Settings};
use osmium_chat::proto::chats;
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use osmium_chat::startup::Application;
use tracing_subscriber::layer::SubscriberExt;

#[tokio::test(flavor = "current_thread")]
async fn a_callers_traceparent_becomes_the_parent_of_the_rpc_span() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // One runtime thread: the server's spans are made under this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);

    let settings = Settings {
        jwt_secret: Some(Secret::new("trace-context-secret-of-32-bytes-or-more")),
        ..Settings::default()
    };
    let app = Application::build(settings).await.expect("builds");
    let port = app.port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until_stopped(async {
        let _ = stopped.await;
    }));

    let token = osmium_chat::auth::issue(
        b"trace-context-secret-of-32-bytes-or-more",
        "osmium-chat",
        7,
        Some("Ann"),
        false,
        60,
    )
    .expect("signs");
    let mut client = ChatServiceClient::connect(format!("http://127.0.0.1:{port}"))
        .await
        .expect("connects");
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent_id = "00f067aa0ba902b7";
    let mut request = tonic::Request::new(chats::GetChats::default());
    let metadata = request.metadata_mut();
    metadata.insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    metadata.insert(
        "traceparent",
        format!("00-{trace_id}-{parent_id}-01")
            .parse()
            .expect("ascii"),
    );
    client.get_chats(request).await.expect("lists");

    // The span ends as the response completes; wait for it, bounded.
    let deadline = Instant::now() + Duration::from_secs(10);
    let span = loop {
        let spans = exporter.get_finished_spans().expect("spans");
        if let Some(span) = spans
            .into_iter()
            .find(|s| s.name == "osmium.chat.v1.ChatService/GetChats")
        {
            break span;
        }
        assert!(Instant::now() < deadline, "the RPC span was exported");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        span.span_context.trace_id(),
        TraceId::from_hex(trace_id).expect("hex")
    );
    assert_eq!(
        span.parent_span_id,
        SpanId::from_hex(parent_id).expect("hex")
    );
    let attributes: Vec<(String, String)> = span
        .attributes
        .iter()
        .map(|kv| (kv.key.to_string(), kv.value.to_string()))
        .collect();
    assert!(
        attributes.contains(&("rpc.system".into(), "grpc".into())),
        "{attributes:?}"
    );
    assert!(attributes.contains(&("rpc.method".into(), "GetChats".into())));
    assert!(attributes.contains(&("rpc.grpc.status_code".into(), "0".into())));

    let _ = stop.send(());
    server.await.expect("joined").expect("stops cleanly");
}
