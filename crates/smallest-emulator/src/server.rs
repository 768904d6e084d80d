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
    let _ = tokio::time::timeout(GRACE + Duration::from_millis(500), all_closed.recv()).await;
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
    match tls {
        None => serve_io(tcp, state, shutdown).await,
        Some(acceptor) => {
            if let Ok(Ok(stream)) =
                tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await
            {
                serve_io(stream, state, shutdown).await;
            }
        }
    }
}

async fn serve_io<I>(io: I, state: Arc<State>, mut shutdown: watch::Receiver<bool>)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |req| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(routes::handle(state, req).await) }
    });
    let builder = auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(io), service);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = shutdown.changed() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(GRACE, conn.as_mut()).await;
        }
    }
}
