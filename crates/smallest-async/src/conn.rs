//! Connections: TCP from the runtime, a `CONNECT` tunnel through the client's proxy,
//! TLS (futures-rustls, the roots of every transport), and a pool of idle HTTP/1.1
//! connections (hyper's connection API; each connection is driven by the call that
//! holds it, on the caller's task).

use std::collections::HashMap;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::{AsyncReadExt as _, AsyncWriteExt as _};
use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::ServerName;
use smallest_core::proxy::{Tunnel, TunnelState};
use smallest_core::{ClientOptions, Error};

use crate::HttpBody;
use crate::runtime::{AsyncIo, Runtime};
use std::future::Future as _;

pub(crate) use smallest_core::proxy::Target;

/// TCP to `target` (or to the proxy, then a tunnel to `target`), then TLS when the
/// target is encrypted. The caller bounds the whole with the connect limit.
pub(crate) async fn open(
    rt: &dyn Runtime,
    options: &ClientOptions,
    tls: &Arc<rustls::ClientConfig>,
    target: &Target,
) -> Result<Box<dyn AsyncIo>, Error> {
    let proxy = options
        .proxy()
        .filter(|p| p.applies_to(&target.host, target.port, target.tls));
    let io = match proxy {
        None => rt
            .connect(&target.host, target.port)
            .await
            .map_err(|e| Error::transport(false, e))?,
        Some(proxy) => {
            let tunnel = proxy.tunnel(&target.host, target.port);
            let mut io = rt
                .connect(proxy.host(), proxy.port())
                .await
                .map_err(|e| tunnel.unreachable(e))?;
            open_tunnel(&mut io, tunnel).await?;
            io
        }
    };
    if !target.tls {
        return Ok(io);
    }
    let name = ServerName::try_from(target.host.clone()).map_err(|e| {
        Error::Config(format!("{:?} is not a valid TLS server name: {e}", target.host).into())
    })?;
    let stream = futures_rustls::TlsConnector::from(tls.clone())
        .connect(name, io)
        .await
        .map_err(|e| Error::transport(false, e))?;
    Ok(Box::new(stream))
}

/// Writes the `CONNECT` and reads the proxy's answer.
async fn open_tunnel(io: &mut Box<dyn AsyncIo>, mut tunnel: Tunnel) -> Result<(), Error> {
    io.write_all(tunnel.request())
        .await
        .map_err(|e| Error::transport(false, e))?;
    io.flush().await.map_err(|e| Error::transport(false, e))?;
    let mut buf = [0u8; 1024];
    loop {
        let n = io
            .read(&mut buf)
            .await
            .map_err(|e| Error::transport(false, e))?;
        if n == 0 {
            return Err(tunnel.handle_eof());
        }
        if tunnel.handle_input(&buf[..n])? == TunnelState::Open {
            return Ok(());
        }
    }
}

/// A runtime stream with hyper's I/O traits. Reads go through a small buffer of its
/// own (hyper's read cursor cannot be handed to futures-io without `unsafe`).
pub(crate) struct HyperIo {
    io: Box<dyn AsyncIo>,
    scratch: Box<[u8]>,
    wrote: WriteClock,
}

impl HyperIo {
    fn new(io: Box<dyn AsyncIo>, wrote: WriteClock) -> Self {
        HyperIo {
            io,
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
            wrote,
        }
    }
}

/// When a connection last wrote bytes to its socket: what "a stalled write" is measured
/// by (bytes taken into hyper's buffer are not progress).
#[derive(Clone)]
pub(crate) struct WriteClock(Arc<Mutex<std::time::Instant>>);

impl WriteClock {
    fn new() -> Self {
        WriteClock(Arc::new(Mutex::new(std::time::Instant::now())))
    }

    fn tick(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = std::time::Instant::now();
    }

    pub(crate) fn last(&self) -> std::time::Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl hyper::rt::Read for HyperIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let want = buf.remaining().min(this.scratch.len());
        let n = ready!(Pin::new(&mut this.io).poll_read(cx, &mut this.scratch[..want]))?;
        buf.put_slice(&this.scratch[..n]);
        Poll::Ready(Ok(()))
    }
}

impl hyper::rt::Write for HyperIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let written = ready!(Pin::new(&mut this.io).poll_write(cx, buf))?;
        if written > 0 {
            this.wrote.tick();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

/// hyper's driver of one HTTP/1.1 connection: the future that moves its bytes.
type Driver = Pin<Box<hyper::client::conn::http1::Connection<HyperIo, HttpBody>>>;

/// One HTTP/1.1 connection, held by the call that uses it: the handle that sends a
/// request, and the connection's driver, which that call polls itself while it waits
/// (for the head, for the body, for an upload to be taken). No task is spawned and no
/// other thread is woken: the bytes move on the caller's task.
pub(crate) struct Lease {
    target: Target,
    pub(crate) sender: SendRequest<HttpBody>,
    driver: Driver,
    wrote: WriteClock,
    /// The driver finished: the connection is closed.
    ended: bool,
}

impl Lease {
    /// Moves the connection's bytes as far as they go now.
    pub(crate) fn poll_driver(&mut self, cx: &mut Context<'_>) {
        if !self.ended && self.driver.as_mut().poll(cx).is_ready() {
            self.ended = true;
        }
    }

    /// `future`, with this connection driven while it waits.
    pub(crate) async fn drive<F: std::future::Future>(&mut self, future: F) -> F::Output {
        let mut future = std::pin::pin!(future);
        std::future::poll_fn(|cx| {
            self.poll_driver(cx);
            future.as_mut().poll(cx)
        })
        .await
    }

    /// When the connection last wrote to its socket.
    pub(crate) fn write_clock(&self) -> WriteClock {
        self.wrote.clone()
    }

    /// Waits until the connection can take a request (a connection back from the pool
    /// finishes its previous exchange as it is driven here); `false` if it closed.
    pub(crate) async fn ready(&mut self) -> bool {
        std::future::poll_fn(|cx| {
            self.poll_driver(cx);
            self.sender.poll_ready(cx).map(|r| r.is_ok())
        })
        .await
    }

    /// Whether the connection can take another request after this one's answer.
    fn reusable(&self) -> bool {
        !self.ended && !self.sender.is_closed()
    }
}

/// Idle HTTP/1.1 connections, by target. A connection goes back only once its answer
/// was read whole; a stream's connection is never reused.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<Target, Vec<Lease>>>,
}

/// The most idle connections kept per target.
const MAX_IDLE: usize = 16;

impl Pool {
    /// An idle connection to `target`. One the server closed meanwhile is found out on
    /// its first use: hyper hands the request back unsent, and the caller connects anew.
    pub(crate) fn checkout(&self, target: &Target) -> Option<Lease> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(target)?;
        while let Some(lease) = list.pop() {
            if lease.reusable() {
                return Some(lease);
            }
        }
        None
    }

    /// Keeps `lease` for the next request to its target.
    pub(crate) fn checkin(&self, lease: Lease) {
        if !lease.reusable() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(lease.target.clone()).or_default();
        list.retain(Lease::reusable);
        if list.len() < MAX_IDLE {
            list.push(lease);
        }
    }
}

/// A new HTTP/1.1 connection over `io`.
pub(crate) async fn handshake(target: &Target, io: Box<dyn AsyncIo>) -> Result<Lease, Error> {
    let wrote = WriteClock::new();
    let (sender, driver) = hyper::client::conn::http1::Builder::new()
        .handshake(HyperIo::new(io, wrote.clone()))
        .await
        .map_err(|e| Error::transport(false, e))?;
    Ok(Lease {
        target: target.clone(),
        sender,
        driver: Box::pin(driver),
        wrote,
        ended: false,
    })
}
