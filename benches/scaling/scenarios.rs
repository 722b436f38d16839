//! The claims on Postgres (a small and a large schema, each served by its
//! own app) and the memory engine's figures for information.

use std::time::Instant;

use osmium_chat::proto::chats;
use prost::Message as _;

use crate::bulk::{
    bulk_id_base, connect, direct_chat_id, fill_chat, load_other_data, table_sizes,
    CHAT_MESSAGE_IDS,
};
use crate::in_process::{core_get_chat, core_get_chats, core_history, core_on};
use crate::report::Report;
use crate::service::{
    get_chat, get_chat_call, get_chats, get_chats_call, history_call, latest_history, send, App,
    Client,
};
use crate::stats::{call, check, send_throughput, single, Stats};
use crate::{
    postgres, Result, FEW_UNREAD, FEW_UNREAD_PEER, GETCHATS_PEERS, GETCHATS_USER, HISTORY_LARGE,
    HISTORY_LARGE_PEER, HISTORY_SMALL, HISTORY_SMALL_PEER, HISTORY_USER, MANY_UNREAD,
    MANY_UNREAD_PEER, READER, RECIPIENT, SENDER,
};

/// The 20 conversations of `GETCHATS_USER`, through the API; returns a client acting as them.
pub(crate) async fn getchats_user(app: &App) -> Result<Client> {
    app.upsert_users(std::iter::once(GETCHATS_USER).chain(GETCHATS_PEERS))
        .await?;
    let mut client = app.client(GETCHATS_USER).await?;
    for peer in GETCHATS_PEERS {
        send(&mut client, peer, &format!("hello {peer}")).await?;
        let mut peer_client = app.client(peer).await?;
        send(&mut peer_client, GETCHATS_USER, "hello back").await?;
    }
    let page = get_chats(&mut client, 20).await?;
    check("GetChats returns 20 conversations", page.chats.len() == 20)?;
    Ok(client)
}

pub(crate) async fn postgres_scenarios(report: &mut Report, iters: usize) -> Result<()> {
    let t0 = Instant::now();
    let small_url = postgres::fresh_schema_url().await;
    let large_url = postgres::fresh_schema_url().await;
    let small = App::start(Some(small_url.clone())).await?;
    let large = App::start(Some(large_url.clone())).await?;
    let small_core = core_on(&small_url).await?;
    let large_core = core_on(&large_url).await?;
    let small_db = connect(&small_url).await?;
    let db = connect(&large_url).await?;
    report.notes.push(format!(
        "postgres, two apps and two cores up in {:.1}s",
        t0.elapsed().as_secs_f64()
    ));

    // The same 20 conversations in both databases, made through the API.
    let chats_small = getchats_user(&small).await?;
    let chats_large = getchats_user(&large).await?;

    // The measured chats of claims 2 and 3, created through the API (one
    // message each, or ten for the few-unread chat), then filled with SQL.
    large
        .upsert_users([
            HISTORY_USER,
            HISTORY_SMALL_PEER,
            HISTORY_LARGE_PEER,
            READER,
            FEW_UNREAD_PEER,
            MANY_UNREAD_PEER,
            SENDER,
            RECIPIENT,
        ])
        .await?;
    small.upsert_users([SENDER, RECIPIENT]).await?;
    let mut history = large.client(HISTORY_USER).await?;
    send(&mut history, HISTORY_SMALL_PEER, "newest").await?;
    send(&mut history, HISTORY_LARGE_PEER, "newest").await?;
    let mut reader = large.client(READER).await?;
    let mut few = large.client(FEW_UNREAD_PEER).await?;
    for i in 0..FEW_UNREAD {
        send(&mut few, READER, &format!("unread {i}")).await?;
    }
    let mut many = large.client(MANY_UNREAD_PEER).await?;
    send(&mut many, READER, "newest unread").await?;

    let t1 = Instant::now();
    let base = bulk_id_base();
    load_other_data(&db, base).await?;
    let history_small_chat = direct_chat_id(&db, HISTORY_USER, HISTORY_SMALL_PEER).await?;
    let history_large_chat = direct_chat_id(&db, HISTORY_USER, HISTORY_LARGE_PEER).await?;
    let many_unread_chat = direct_chat_id(&db, READER, MANY_UNREAD_PEER).await?;
    let mut next_id = base + CHAT_MESSAGE_IDS;
    let pair = |a: u64, b: u64| [a as i64, b as i64];
    fill_chat(
        &db,
        history_small_chat,
        next_id,
        HISTORY_SMALL - 1,
        &pair(HISTORY_USER, HISTORY_SMALL_PEER),
    )
    .await?;
    next_id += HISTORY_SMALL as i64;
    fill_chat(
        &db,
        history_large_chat,
        next_id,
        HISTORY_LARGE - 1,
        &pair(HISTORY_USER, HISTORY_LARGE_PEER),
    )
    .await?;
    next_id += HISTORY_LARGE as i64;
    fill_chat(
        &db,
        many_unread_chat,
        next_id,
        MANY_UNREAD - 1,
        &[MANY_UNREAD_PEER as i64],
    )
    .await?;
    db.batch_execute("VACUUM ANALYZE").await?;
    small_db.batch_execute("VACUUM ANALYZE").await?;
    report.notes.push(format!(
        "bulk load + VACUUM ANALYZE in {:.1}s",
        t1.elapsed().as_secs_f64()
    ));
    report
        .notes
        .push(format!("small db: {}", table_sizes(&small_db).await?));
    report
        .notes
        .push(format!("large db: {}", table_sizes(&db).await?));

    // What the API now says about the measured chats.
    let h_small = latest_history(&mut history, HISTORY_SMALL_PEER).await?;
    let h_large = latest_history(&mut history, HISTORY_LARGE_PEER).await?;
    check(
        "history pages of 50",
        h_small.messages.len() == 50 && h_large.messages.len() == 50,
    )?;
    let c_few = get_chat(&mut reader, FEW_UNREAD_PEER).await?;
    let c_many = get_chat(&mut reader, MANY_UNREAD_PEER).await?;
    let unread = |c: &chats::Chat| c.chat.as_ref().map_or(0, |c| c.unread_count) as usize;
    check(
        "unread counts 10 and 50k",
        unread(&c_few) == FEW_UNREAD && unread(&c_many) == MANY_UNREAD,
    )?;
    let page_small = get_chats(&mut chats_small.clone(), 20).await?;
    let page_large = get_chats(&mut chats_large.clone(), 20).await?;
    report.notes.push(format!(
        "unread counts {} vs {}; history pages {} vs {} messages; response bytes: \
         GetChats {}/{}, GetHistory {}/{}, GetChat {}/{}",
        unread(&c_few),
        unread(&c_many),
        h_small.messages.len(),
        h_large.messages.len(),
        page_small.encoded_len(),
        page_large.encoded_len(),
        h_small.encoded_len(),
        h_large.encoded_len(),
        c_few.encoded_len(),
        c_many.encoded_len(),
    ));

    // 1. GetChats: the same page in a nearly empty and in a large database.
    report
        .claim(
            iters,
            "GetChats large/small",
            (
                "GetChats limit 20, nearly empty db",
                "GetChats limit 20, +200k members/msgs",
            ),
            (
                call(|| get_chats_call(chats_small.clone())),
                call(|| get_chats_call(chats_large.clone())),
            ),
            (
                call(|| core_get_chats(small_core.clone(), GETCHATS_USER)),
                call(|| core_get_chats(large_core.clone(), GETCHATS_USER)),
            ),
        )
        .await?;

    // 2. GetHistory: latest 50 of 100 vs of 100k messages (one user, two chats).
    report
        .claim(
            iters,
            "GetHistory large/small",
            (
                "GetHistory latest 50, chat of 100",
                "GetHistory latest 50, chat of 100k",
            ),
            (
                call(|| history_call(history.clone(), HISTORY_SMALL_PEER)),
                call(|| history_call(history.clone(), HISTORY_LARGE_PEER)),
            ),
            (
                call(|| core_history(large_core.clone(), HISTORY_USER, HISTORY_SMALL_PEER)),
                call(|| core_history(large_core.clone(), HISTORY_USER, HISTORY_LARGE_PEER)),
            ),
        )
        .await?;

    // 3. GetChat: 10 vs 50k unread (one user, two chats).
    report
        .claim(
            iters,
            "GetChat unread 50k/10",
            ("GetChat, 10 unread", "GetChat, 50k unread"),
            (
                call(|| get_chat_call(reader.clone(), FEW_UNREAD_PEER)),
                call(|| get_chat_call(reader.clone(), MANY_UNREAD_PEER)),
            ),
            (
                call(|| core_get_chat(large_core.clone(), READER, FEW_UNREAD_PEER)),
                call(|| core_get_chat(large_core.clone(), READER, MANY_UNREAD_PEER)),
            ),
        )
        .await?;

    // 4. Information: sequential SendMessage in a direct chat.
    for (app, label) in [(&small, "nearly empty db"), (&large, "large db")] {
        let (times, rate) = send_throughput(app).await?;
        report.notes.push(format!(
            "SendMessage throughput, postgres, {label}: {rate:.0} msg/s (sequential, one client)"
        ));
        let label = format!("SendMessage DM, {label}");
        report
            .rows
            .push(Stats::new(&label, "postgres", "grpc", times));
    }
    Ok(())
}

/// The small side of each claim, and SendMessage, on the memory engine (gRPC only).
pub(crate) async fn memory_scenarios(report: &mut Report, iters: usize) -> Result<()> {
    let app = App::start(None).await?;
    let chats_client = getchats_user(&app).await?;
    app.upsert_users([
        HISTORY_USER,
        HISTORY_SMALL_PEER,
        READER,
        FEW_UNREAD_PEER,
        SENDER,
        RECIPIENT,
    ])
    .await?;
    let mut history = app.client(HISTORY_USER).await?;
    for i in 0..HISTORY_SMALL {
        send(&mut history, HISTORY_SMALL_PEER, &format!("history {i}")).await?;
    }
    let mut few = app.client(FEW_UNREAD_PEER).await?;
    for i in 0..FEW_UNREAD {
        send(&mut few, READER, &format!("unread {i}")).await?;
    }
    let reader = app.client(READER).await?;

    let times = single(iters, || get_chats_call(chats_client.clone())).await?;
    report.rows.push(Stats::new(
        "GetChats limit 20, 20 conversations",
        "memory",
        "grpc",
        times,
    ));
    let times = single(iters, || history_call(history.clone(), HISTORY_SMALL_PEER)).await?;
    report.rows.push(Stats::new(
        "GetHistory latest 50, chat of 100",
        "memory",
        "grpc",
        times,
    ));
    let times = single(iters, || get_chat_call(reader.clone(), FEW_UNREAD_PEER)).await?;
    report
        .rows
        .push(Stats::new("GetChat, 10 unread", "memory", "grpc", times));
    let (times, rate) = send_throughput(&app).await?;
    report.notes.push(format!(
        "SendMessage throughput, memory: {rate:.0} msg/s (sequential, one client)"
    ));
    report
        .rows
        .push(Stats::new("SendMessage DM", "memory", "grpc", times));
    Ok(())
}
