//! `Subscribe` over gRPC: the domain's update feed
//! ([`crate::domain::streams`]), each delivery rendered into an
//! `UpdateEnvelope` only as it is sent, and the reason a feed ends turned
//! into the status the client reads.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio_stream::Stream;
use tonic::Status;

use crate::domain::Core;
use crate::domain::UpdateFeed;
use crate::error::Result;
use crate::model::UserId;
use crate::proto::service::UpdateEnvelope;

/// What the client reads: the feed, rendered lazily.
pub struct UpdateStream {
    feed: UpdateFeed,
}

impl Stream for UpdateStream {
    type Item = Result<UpdateEnvelope, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.feed).poll_next(cx).map(|item| {
            item.map(|next| {
                next.map(|delivery| UpdateEnvelope {
                    seq: delivery.seq,
                    update: Some(delivery.render()),
                })
                .map_err(Status::from)
            })
        })
    }
}

pub async fn open(
    core: Arc<Core>,
    user: UserId,
    since: Option<u64>,
    stopping: watch::Receiver<bool>,
) -> Result<UpdateStream> {
    let feed = core.updates().subscribe(user, since, stopping).await?;
    Ok(UpdateStream { feed })
}
