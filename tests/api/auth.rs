//! Identity: bearer tokens, roles, and registration from the `name` claim.

use osmium_chat::proto::chats;
use osmium_chat::proto::service::UpsertUsers;
use osmium_chat::proto::types;
use tonic::Code;

use crate::helpers::{assert_code, both_engines, dm, next_user_id, saved, TestApp, AUDIENCE};

async fn calls_without_a_valid_token_are_unauthenticated(app: TestApp) {
    let mut anonymous = osmium_chat::proto::service::chat_service_client::ChatServiceClient::new(
        app.channel().await,
    );
    assert_code(
        anonymous.get_chats(chats::GetChats::default()).await,
        Code::Unauthenticated,
        "authorization",
    );

    let mut garbage = app.client_with_token("not-a-jwt").await;
    assert_code(
        garbage.get_chats(chats::GetChats::default()).await,
        Code::Unauthenticated,
        "token",
    );

    let forged =
        osmium_chat::auth::issue(b"another secret", AUDIENCE, 5, None, false, 60).expect("signs");
    let mut forged = app.client_with_token(&forged).await;
    assert_code(
        forged.get_chats(chats::GetChats::default()).await,
        Code::Unauthenticated,
        "token",
    );

    let elsewhere = osmium_chat::auth::issue(
        crate::helpers::SECRET.as_bytes(),
        "another-service",
        5,
        None,
        false,
        60,
    )
    .expect("signs");
    let mut elsewhere = app.client_with_token(&elsewhere).await;
    assert_code(
        elsewhere.get_chats(chats::GetChats::default()).await,
        Code::Unauthenticated,
        "token",
    );
}

async fn only_service_tokens_may_upsert_users(app: TestApp) {
    let user_token = app.token(7, None, false);
    let value = format!("Bearer {user_token}").parse().expect("ascii");
    let mut as_user =
        osmium_chat::proto::service::user_directory_client::UserDirectoryClient::with_interceptor(
            app.channel().await,
            crate::helpers::Bearer(value),
        );
    let users = UpsertUsers {
        users: vec![types::User {
            id: 7,
            name: "Mallory".into(),
            ..Default::default()
        }],
    };
    assert_code(
        as_user.upsert_users(users.clone()).await,
        Code::PermissionDenied,
        "service",
    );

    let mut directory = app.directory().await;
    directory.upsert_users(users).await.expect("a service may");
    assert_code(
        directory
            .upsert_users(UpsertUsers {
                users: vec![
                    types::User {
                        id: 8,
                        name: "A".into(),
                        ..Default::default()
                    },
                    types::User {
                        id: 8,
                        name: "B".into(),
                        ..Default::default()
                    },
                ],
            })
            .await,
        Code::InvalidArgument,
        "users[1].id",
    );
    assert_code(
        directory
            .upsert_users(UpsertUsers {
                users: vec![types::User {
                    id: 9,
                    name: " ".into(),
                    ..Default::default()
                }],
            })
            .await,
        Code::InvalidArgument,
        "users[0].name",
    );
}

async fn a_name_claim_registers_the_caller_on_first_use(app: TestApp) {
    let newcomer = next_user_id();
    let mut ann = app.user("Ann").await;
    // Unknown without a name claim.
    assert_code(
        ann.client
            .get_chat(chats::GetChat {
                chat_ref: dm(newcomer),
            })
            .await,
        Code::NotFound,
        "not found",
    );

    let mut client = app
        .client_with_token(&app.token(newcomer, Some("Newcomer"), false))
        .await;
    client
        .get_chat(chats::GetChat { chat_ref: saved() })
        .await
        .expect("registered and served");
    let chat = ann
        .client
        .get_chat(chats::GetChat {
            chat_ref: dm(newcomer),
        })
        .await
        .expect("now known")
        .into_inner();
    assert_eq!(chat.users[0].name, "Newcomer");
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    exp: u64,
    aud: String,
}

#[tokio::test]
async fn tokens_signed_with_a_configured_public_key_are_chosen_by_kid() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).expect("an ed25519 key");
    let dir = std::env::temp_dir().join(format!(
        "osmium-keys-{}-{}",
        std::process::id(),
        next_user_id()
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    std::fs::write(dir.join("2026-11.pem"), key.public_key_pem()).expect("written");
    let app = crate::helpers::TestApp::spawn_tuned(crate::helpers::Engine::Memory, |s| {
        s.jwt_public_keys = Some(dir.clone());
    })
    .await;
    let ann = app.user("Ann").await;
    let sign = |kid: &str| {
        let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
        header.kid = Some(kid.to_owned());
        let claims = Claims {
            sub: ann.id.to_string(),
            exp: osmium_chat::model::clock::now_ms() / 1000 + 60,
            aud: AUDIENCE.to_owned(),
        };
        let signing = jsonwebtoken::EncodingKey::from_ed_pem(key.serialize_pem().as_bytes())
            .expect("pkcs8 key");
        jsonwebtoken::encode(&header, &claims, &signing).expect("signs")
    };
    let mut client = app.client_with_token(&sign("2026-11")).await;
    client
        .get_chats(chats::GetChats::default())
        .await
        .expect("verified by the key named in kid");
    let mut unknown = app.client_with_token(&sign("2025-01")).await;
    assert_code(
        unknown.get_chats(chats::GetChats::default()).await,
        Code::Unauthenticated,
        "key id",
    );
    let _ = std::fs::remove_dir_all(&dir);
}

both_engines!(
    calls_without_a_valid_token_are_unauthenticated,
    only_service_tokens_may_upsert_users,
    a_name_claim_registers_the_caller_on_first_use,
);

#[tokio::test]
async fn aud_may_be_an_array_nbf_must_have_passed_and_a_required_iss_must_match() {
    use crate::support::tokens::{claims, hs256, now};
    const ISSUER: &str = "https://auth.example.internal";
    let app = crate::helpers::TestApp::spawn_tuned(crate::helpers::Engine::Memory, |s| {
        s.jwt_issuer = Some(ISSUER.into());
    })
    .await;
    // Registered by the name claim: the directory's service token has no iss.
    let user = crate::helpers::next_user_id();
    let call = |token: String| {
        let app = &app;
        async move {
            app.client_with_token(&token)
                .await
                .get_chats(chats::GetChats::default())
                .await
        }
    };
    let mut valid = claims(user);
    valid["iss"] = ISSUER.into();
    valid["name"] = "Ann".into();
    valid["aud"] = serde_json::json!(["gateway", AUDIENCE]);
    call(hs256(&valid)).await.expect("aud array holding ours");

    let mut early = valid.clone();
    early["nbf"] = (now() + 3600).into();
    assert_code(call(hs256(&early)).await, Code::Unauthenticated, "nbf");
    let mut started = valid.clone();
    started["nbf"] = (now() - 10).into();
    call(hs256(&started)).await.expect("nbf in the past");

    let mut foreign = valid.clone();
    foreign["iss"] = "https://elsewhere.example".into();
    assert_code(call(hs256(&foreign)).await, Code::Unauthenticated, "iss");
    let mut anonymous = valid.clone();
    anonymous.as_object_mut().expect("an object").remove("iss");
    assert_code(call(hs256(&anonymous)).await, Code::Unauthenticated, "iss");
    let mut others = valid;
    others["aud"] = serde_json::json!(["gateway", "billing"]);
    assert_code(call(hs256(&others)).await, Code::Unauthenticated, "aud");
}
