//! The authorization matrix: every method of `ChatService` and
//! `UserDirectory` against every caller that must be turned away, each with
//! the status it gets. Broken tokens speak for the group's owner (or a
//! service), so the token is the only thing wrong; the table must name every
//! method of the compiled services, so a new RPC cannot ship without a row.

use std::collections::BTreeSet;

use prost::Message as _;
use serde_json::Value;
use tonic::Code;

mod calls;

use calls::{call, fixture, Fixture};

use crate::helpers::{both_engines_custom, Engine, TestApp};
use crate::support::tokens::{claims, hs256, now};

const ISSUER: &str = "https://auth.example.internal";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Service {
    Chat,
    Directory,
}

/// A caller that must be refused.
#[derive(Clone, Copy, Debug)]
enum Caller {
    NoToken,
    Malformed,
    BadSignature,
    Expired,
    NotYetValid,
    WrongAudience,
    WrongIssuer,
    UserOnDirectory,
    NonMember,
    NonOwner,
}

const CALLERS: [Caller; 10] = [
    Caller::NoToken,
    Caller::Malformed,
    Caller::BadSignature,
    Caller::Expired,
    Caller::NotYetValid,
    Caller::WrongAudience,
    Caller::WrongIssuer,
    Caller::UserOnDirectory,
    Caller::NonMember,
    Caller::NonOwner,
];

/// One method, and what a member outside the group and a member who is not
/// the owner (or the author) get; `None`: allowed, or not about a group.
pub(super) struct Row {
    pub(super) service: Service,
    pub(super) method: &'static str,
    non_member: Option<Code>,
    non_owner: Option<Code>,
}

const fn row(
    service: Service,
    method: &'static str,
    non_member: Option<Code>,
    non_owner: Option<Code>,
) -> Row {
    Row {
        service,
        method,
        non_member,
        non_owner,
    }
}

const HIDDEN: Option<Code> = Some(Code::NotFound);
const DENIED: Option<Code> = Some(Code::PermissionDenied);

#[rustfmt::skip]
const TABLE: &[Row] = &[
    row(Service::Chat, "GetChats", None, None),
    row(Service::Chat, "GetChat", HIDDEN, None),
    row(Service::Chat, "CreateChat", None, None),
    row(Service::Chat, "EditChat", HIDDEN, DENIED),
    row(Service::Chat, "AddChatMember", HIDDEN, None),
    // Removing another member; removing oneself is leaving, and allowed.
    row(Service::Chat, "RemoveChatMember", HIDDEN, DENIED),
    row(Service::Chat, "CreateChatInvite", HIDDEN, None),
    row(Service::Chat, "ListChatInvites", HIDDEN, None),
    // The owner's invite: only the owner and its creator may delete it.
    row(Service::Chat, "DeleteChatInvite", HIDDEN, DENIED),
    // Anyone holding a code may look at it and join with it.
    row(Service::Chat, "LookupInvite", None, None),
    row(Service::Chat, "UseInvite", None, None),
    row(Service::Chat, "MarkChatRead", HIDDEN, None),
    row(Service::Chat, "SetTyping", HIDDEN, None),
    row(Service::Chat, "SetDraft", HIDDEN, None),
    row(Service::Chat, "ChangeNotificationPreferences", HIDDEN, None),
    row(Service::Chat, "SendMessage", HIDDEN, None),
    row(Service::Chat, "GetHistory", HIDDEN, None),
    // The owner's message: only its author may edit it...
    row(Service::Chat, "EditMessage", HIDDEN, DENIED),
    // ...and only its author or the group's owner delete it.
    row(Service::Chat, "DeleteMessage", HIDDEN, DENIED),
    row(Service::Chat, "Subscribe", None, None),
    row(Service::Directory, "UpsertUsers", None, None),
];

fn expected(row: &Row, caller: Caller) -> Option<Code> {
    match caller {
        Caller::NoToken
        | Caller::Malformed
        | Caller::BadSignature
        | Caller::Expired
        | Caller::NotYetValid
        | Caller::WrongAudience
        | Caller::WrongIssuer => Some(Code::Unauthenticated),
        Caller::UserOnDirectory => {
            (row.service == Service::Directory).then_some(Code::PermissionDenied)
        }
        Caller::NonMember if row.service == Service::Chat => row.non_member,
        Caller::NonOwner if row.service == Service::Chat => row.non_owner,
        Caller::NonMember | Caller::NonOwner => None,
    }
}

/// A valid token of this deployment (its issuer included) for `user`.
pub(super) fn token(user: u64, service: bool) -> String {
    let mut claims = claims(user);
    claims["iss"] = ISSUER.into();
    claims["name"] = format!("User {user}").into();
    if service {
        claims["role"] = "service".into();
    }
    hs256(&claims)
}

/// The token `caller` presents for `row`, if any.
fn token_of(caller: Caller, row: &Row, fx: &Fixture) -> Option<String> {
    let service = row.service == Service::Directory;
    let broken = |change: &dyn Fn(&mut Value)| {
        let mut claims = claims(fx.owner);
        claims["iss"] = ISSUER.into();
        if service {
            claims["role"] = "service".into();
        }
        change(&mut claims);
        hs256(&claims)
    };
    Some(match caller {
        Caller::NoToken => return None,
        Caller::Malformed => "not-a-jwt".into(),
        Caller::BadSignature => {
            let mut claims = claims(fx.owner);
            claims["iss"] = ISSUER.into();
            let other = b"another-secret-of-thirty-two-bytes-or-more";
            sign_with(&claims, other)
        }
        Caller::Expired => broken(&|c| c["exp"] = (now() - 3600).into()),
        Caller::NotYetValid => broken(&|c| c["nbf"] = (now() + 3600).into()),
        Caller::WrongAudience => broken(&|c| c["aud"] = "another-service".into()),
        Caller::WrongIssuer => broken(&|c| c["iss"] = "https://elsewhere.example".into()),
        Caller::UserOnDirectory => token(fx.outsider, false),
        Caller::NonMember => token(fx.outsider, false),
        Caller::NonOwner => token(fx.member, false),
    })
}

fn sign_with(claims: &Value, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .expect("signs")
}

async fn every_method_turns_away_every_caller_it_must_with_its_status(engine: Engine) {
    let app = TestApp::spawn_tuned(engine, |s| s.jwt_issuer = Some(ISSUER.into())).await;
    let channel = app.channel().await;
    let fx = fixture(&app, &channel).await;
    let mut wrong = Vec::new();
    let mut checked = 0;
    for row in TABLE {
        for caller in CALLERS {
            let Some(want) = expected(row, caller) else {
                continue;
            };
            let token = token_of(caller, row, &fx);
            let got = call(&channel, token.as_deref(), row, &fx).await;
            checked += 1;
            match got {
                Err(status) if status.code() == want => {}
                Err(status) => wrong.push(format!(
                    "{} as {caller:?}: {:?} ({}), expected {want:?}",
                    row.method,
                    status.code(),
                    status.message()
                )),
                Ok(()) => wrong.push(format!(
                    "{} as {caller:?}: OK, expected {want:?}",
                    row.method
                )),
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {checked} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert!(checked > TABLE.len() * 7, "every row had its token cells");
}

#[test]
fn the_matrix_names_every_method_of_the_services() {
    let set = prost_types::FileDescriptorSet::decode(osmium_chat::proto::FILE_DESCRIPTOR_SET)
        .expect("the compiled descriptor set");
    let mut served = BTreeSet::new();
    for file in set.file.iter().filter(|f| f.package() == "osmium.chat.v1") {
        for service in &file.service {
            for method in &service.method {
                served.insert(format!("{}/{}", service.name(), method.name()));
            }
        }
    }
    let name = |s: Service| match s {
        Service::Chat => "ChatService",
        Service::Directory => "UserDirectory",
    };
    let tabled: BTreeSet<String> = TABLE
        .iter()
        .map(|row| format!("{}/{}", name(row.service), row.method))
        .collect();
    assert_eq!(tabled.len(), TABLE.len(), "a method is listed twice");
    let missing: Vec<_> = served.difference(&tabled).collect();
    let unknown: Vec<_> = tabled.difference(&served).collect();
    assert!(
        missing.is_empty() && unknown.is_empty(),
        "methods without a row: {missing:?}; rows without a method: {unknown:?}"
    );
}

both_engines_custom!(every_method_turns_away_every_caller_it_must_with_its_status);
