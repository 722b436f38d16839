//! The connections a replica serves, accepted from a listener that outlives
//! one server: the start-up health server's, then the full one's.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::net::{TcpListener, TcpStream};
use tokio_stream::Stream;

/// Connections from a listener that outlives one server: the start-up
/// health server, then the full one.
pub(super) struct Incoming(pub(super) Arc<TcpListener>);

impl Stream for Incoming {
    type Item = std::io::Result<TcpStream>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.0.poll_accept(cx).map(|accepted| {
            Some(accepted.map(|(stream, _)| {
                // Without it, a response larger than one write waits for the
                // peer's delayed ACK (~40 ms on Linux) before its second part.
                let _ = stream.set_nodelay(true);
                stream
            }))
        })
    }
}
