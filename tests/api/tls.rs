//! Optional mutual TLS between services.

use osmium_chat::proto::chats;
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::{Bearer, Engine, TestApp};
use crate::support::pki::{temp_dir, Ca};

async fn connect(port: u16, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://localhost:{port}"))
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_get_in() {
    let dir = temp_dir("tls");
    let ca = Ca::new();
    let server = ca.leaf(&["localhost"], &dir, "server");
    let client = ca.leaf(&["gateway"], &dir, "client");
    let read = |path: &std::path::Path| std::fs::read_to_string(path).expect("a PEM file");
    let ca_file = ca.write(&dir, "ca.pem");
    let app = TestApp::spawn_tuned(Engine::Memory, |s| {
        s.tls_cert = Some(server.cert.clone());
        s.tls_key = Some(server.key.clone());
        s.tls_client_ca = Some(ca_file);
        s.health_addr = Some(([127, 0, 0, 1], 0).into());
    })
    .await;

    // Probes that cannot speak TLS use the plaintext health endpoint.
    let health_port = app.health_port.expect("a health port");
    let plain = Channel::from_shared(format!("http://127.0.0.1:{health_port}"))
        .expect("uri")
        .connect()
        .await
        .expect("plaintext health connects");
    let reply = tonic_health::pb::health_client::HealthClient::new(plain)
        .check(tonic_health::pb::HealthCheckRequest {
            service: "osmium.chat.v1.ChatService".into(),
        })
        .await
        .expect("health answers")
        .into_inner();
    assert_eq!(
        reply.status,
        tonic_health::pb::health_check_response::ServingStatus::Serving as i32
    );

    let trusted = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca.pem()))
        .domain_name("localhost");
    let with_identity = trusted
        .clone()
        .identity(Identity::from_pem(read(&client.cert), read(&client.key)));
    let channel = connect(app.port, with_identity)
        .await
        .expect("a client with a certificate connects");
    let token = format!("Bearer {}", app.token(7, Some("Gateway user"), false))
        .parse()
        .expect("ascii");
    let mut client = ChatServiceClient::with_interceptor(channel, Bearer(token));
    client
        .get_chats(chats::GetChats::default())
        .await
        .expect("served over mutual TLS");

    // Without a client certificate the handshake, or the first call, fails.
    let refused = match connect(app.port, trusted).await {
        Err(_) => true,
        Ok(channel) => ChatServiceClient::new(channel)
            .get_chats(chats::GetChats::default())
            .await
            .is_err_and(|status| {
                status.code() == tonic::Code::Unavailable || status.code() == tonic::Code::Unknown
            }),
    };
    assert!(refused, "a client without a certificate is refused");
    let _ = std::fs::remove_dir_all(&dir);
}
