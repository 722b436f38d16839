//! A TCP proxy that can play a frozen network path: [`Proxy::freeze`] stops
//! forwarding on every connection it carries, in both directions, yet keeps
//! their sockets open, so each peer sees silence rather than a reset, as
//! when a path drops packets. Connections made afterwards pass normally, so
//! a peer that gives up and reconnects gets through.

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{JoinHandle, JoinSet};

pub struct Proxy {
    pub port: u16,
    /// Bumped by each freeze; a connection freezes on the first bump after
    /// it was accepted.
    freezes: watch::Sender<u64>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards each connection to `target`.
    pub async fn start(target: std::net::SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let port = listener.local_addr().expect("bound").port();
        let (freezes, _) = watch::channel(0);
        let accept = tokio::spawn(accept(listener, target, freezes.clone()));
        Self {
            port,
            freezes,
            accept,
        }
    }

    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://127.0.0.1:{}/", self.port)
    }

    /// Every connection open now stops forwarding, for good; the sockets
    /// stay open until the proxy is dropped.
    pub fn freeze(&self) {
        self.freezes.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    /// Ends the accept task, whose connection tasks (and sockets) go with it.
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn accept(listener: TcpListener, target: std::net::SocketAddr, freezes: watch::Sender<u64>) {
    let mut connections = JoinSet::new();
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            continue;
        };
        while connections.try_join_next().is_some() {}
        // Subscribed before the connection reaches the target, so a freeze
        // from then on is one this connection obeys.
        let mut frozen = freezes.subscribe();
        connections.spawn(async move {
            let Ok(mut server) = TcpStream::connect(target).await else {
                return;
            };
            tokio::select! {
                _ = copy_bidirectional(&mut client, &mut server) => {}
                _ = frozen.changed() => {
                    // The task keeps both sockets, never reading or writing
                    // them again: silence both ways, until the proxy goes.
                    std::future::pending::<()>().await;
                }
            }
        });
    }
}
