//! Optional mutual TLS between services.

use osmium_chat::proto::chats;
use osmium_chat::proto::service::chat_service_client::ChatServiceClient;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

use crate::helpers::{Bearer, Engine, TestApp};

/// A CA, a server certificate for localhost, and a client certificate, as PEM.
struct Pki {
    ca: String,
    server: (String, String),
    client: (String, String),
}

fn pki() -> Pki {
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca =
        CertifiedIssuer::self_signed(ca_params, KeyPair::generate().expect("key")).expect("ca");
    let leaf = |name: &str| {
        let key = KeyPair::generate().expect("key");
        let cert = CertificateParams::new(vec![name.to_owned()])
            .expect("params")
            .signed_by(&key, &ca)
            .expect("signed");
        (cert.pem(), key.serialize_pem())
    };
    Pki {
        ca: ca.pem(),
        server: leaf("localhost"),
        client: leaf("gateway"),
    }
}

async fn connect(port: u16, tls: ClientTlsConfig) -> Result<Channel, tonic::transport::Error> {
    Channel::from_shared(format!("https://localhost:{port}"))
        .expect("uri")
        .tls_config(tls)?
        .connect()
        .await
}

#[tokio::test]
async fn with_a_client_ca_only_clients_with_a_certificate_get_in() {
    let pki = pki();
    let dir = std::env::temp_dir().join(format!(
        "osmium-tls-{}-{}",
        std::process::id(),
        crate::helpers::next_user_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).expect("written");
        path
    };
    let cert = write("server.pem", &pki.server.0);
    let key = write("server.key", &pki.server.1);
    let ca = write("ca.pem", &pki.ca);
    let app = TestApp::spawn_tuned(Engine::Memory, |s| {
        s.tls_cert = Some(cert);
        s.tls_key = Some(key);
        s.tls_client_ca = Some(ca);
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
        .ca_certificate(Certificate::from_pem(&pki.ca))
        .domain_name("localhost");
    let with_identity = trusted
        .clone()
        .identity(Identity::from_pem(&pki.client.0, &pki.client.1));
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
