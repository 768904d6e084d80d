//! The accept loop: plain TCP or TLS, HTTP/1.1 and HTTP/2 on every connection (ALPN over TLS,
//! protocol sniffing in clear text), graceful shutdown through a watch channel.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_rustls::TlsAcceptor;

use crate::faults::{ConnControl, KillableTcp};
use crate::routes;
use crate::state::State;

/// How long open connections get to finish their requests after shutdown was asked for.
const GRACE: Duration = Duration::from_secs(2);
/// Longest TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves until `shutdown` turns true (or its sender is dropped), then tells `stopped`.
pub(crate) async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    stopped: watch::Sender<bool>,
) {
    // Every connection task holds a clone of `alive`; when all are gone, `all_closed` yields None.
    let (alive, mut all_closed) = mpsc::channel::<()>(1);
    if !*shutdown.borrow_and_update() {
        loop {
            tokio::select! {
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        break;
                    }
                }
                accepted = listener.accept() => match accepted {
                    Ok((tcp, _)) => {
                        let conn = connection(tcp, tls.clone(), Arc::clone(&state), shutdown.clone(), alive.clone());
                        tokio::spawn(conn);
                    }
                    // Out of file descriptors or similar: back off instead of spinning.
                    Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
                },
            }
        }
    }
    drop(listener);
    drop(alive);
    // Open WebSocket sessions (on connections hyper handed over) close with `1001`.
    state.ws.shutdown();
    let _ = tokio::time::timeout(GRACE + Duration::from_millis(500), async {
        all_closed.recv().await;
        state.ws.closed().await;
    })
    .await;
    let _ = stopped.send(true);
}

async fn connection(
    tcp: TcpStream,
    tls: Option<TlsAcceptor>,
    state: Arc<State>,
    shutdown: watch::Receiver<bool>,
    _alive: mpsc::Sender<()>,
) {
    let _ = tcp.set_nodelay(true);
    // Lets an injected fault reset this connection (`crate::faults`).
    let control = ConnControl::new(tcp.peer_addr().ok());
    let tcp = KillableTcp::new(tcp, Arc::clone(&control));
    match tls {
        None => serve_io(tcp, state, shutdown, control).await,
        Some(acceptor) => {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                serve_io(stream, state, shutdown, control).await;
            }
        }
    }
}

async fn serve_io<I>(
    io: I,
    state: Arc<State>,
    mut shutdown: watch::Receiver<bool>,
    control: Arc<ConnControl>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let killed = Arc::clone(&control);
    let service = service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        let state = Arc::clone(&state);
        req.extensions_mut().insert(Arc::clone(&control));
        async move { Ok::<_, Infallible>(routes::handle(state, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        // A fault reset the connection: dropping it closes the socket with a TCP reset.
        () = killed.killed() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, conn.as_mut()).await;
        }
    }
}
