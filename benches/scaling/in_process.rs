//! A second `Core` on an app's database, with the same calls as over gRPC:
//! the use-cases and their SQL without the transport.

use std::sync::Arc;

use osmium_chat::bus::local::LocalBus;
use osmium_chat::config::{LimitSettings, Secret, Settings};
use osmium_chat::domain::messages::Anchor;
use osmium_chat::domain::target::ChatTarget;
use osmium_chat::domain::values::{ChatWindow, Page};
use osmium_chat::domain::Core;
use osmium_chat::ephemeral::local::LocalEphemeral;
use osmium_chat::model::{Snowflakes, UserId};
use osmium_chat::startup::open_store;

use crate::{Result, SECRET};

/// A second `Core` on an app's database, as a second replica would have: the
/// use-cases and their SQL, without gRPC in front.
pub(crate) async fn core_on(url: &str) -> Result<Arc<Core>> {
    let settings = Settings {
        database_url: Some(Secret::new(url)),
        jwt_secret: Some(Secret::new(SECRET)),
        // Capacity is measured, not the per-user limits.
        limits: LimitSettings::without_rates(),
        ..Settings::default()
    };
    let store = open_store(&settings).await?;
    // A bench runs for minutes: a day's lease, never renewed, is plenty.
    let worker = store
        .lease_worker("bench", std::time::Duration::from_secs(86_400))
        .await?
        .ok_or("no snowflake worker number free")?;
    Ok(Core::new(
        store,
        Arc::new(LocalBus::default()),
        Arc::new(LocalEphemeral::default()),
        Snowflakes::new(worker),
        settings.limits(),
    ))
}

pub(crate) async fn core_get_chats(core: Arc<Core>, user: u64) -> Result<()> {
    let range = ChatWindow {
        page: Page::parse(Some(20)),
        ..ChatWindow::default()
    };
    let page = core
        .chats()
        .list(UserId(user), range)
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(page);
    Ok(())
}

pub(crate) async fn core_history(core: Arc<Core>, user: u64, peer: u64) -> Result<()> {
    let page = core
        .messages()
        .history(
            UserId(user),
            ChatTarget::Direct(UserId(peer)),
            Anchor::Latest,
            Page::parse(Some(50)),
        )
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(page);
    Ok(())
}

pub(crate) async fn core_get_chat(core: Arc<Core>, user: u64, peer: u64) -> Result<()> {
    let chat = core
        .chats()
        .get(UserId(user), ChatTarget::Direct(UserId(peer)))
        .await
        .map_err(|e| e.to_string())?;
    std::hint::black_box(chat);
    Ok(())
}
