//! Connections: TCP from the runtime, a `CONNECT` tunnel through the client's proxy,
//! TLS (futures-rustls, the roots of every transport), and a pool of idle HTTP/1.1
//! connections (hyper's connection API; each connection's driver is one spawned task).

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, ready};

use futures_io::{AsyncRead, AsyncWrite};
use futures_util::{AsyncReadExt as _, AsyncWriteExt as _};
use hyper::client::conn::http1::SendRequest;
use rustls_pki_types::ServerName;
use smallest_core::proxy::{Proxy, Tunnel, TunnelState};
use smallest_core::{ClientOptions, Error};

use crate::HttpBody;
use crate::runtime::{AsyncIo, Runtime};

/// Where a connection goes: scheme, host, port.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub(crate) struct Target {
    pub(crate) tls: bool,
    pub(crate) host: String,
    pub(crate) port: u16,
}

impl Target {
    /// The target of an `http(s)`/`ws(s)` URI.
    pub(crate) fn of(uri: &http::Uri) -> Result<Target, Error> {
        let tls = matches!(uri.scheme_str(), Some("https" | "wss"));
        let host = uri
            .host()
            .ok_or_else(|| Error::Config(format!("the URI {uri} has no host").into()))?;
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host)
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Target { tls, host, port })
    }
}

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
            let mut io = rt
                .connect(proxy.host(), proxy.port())
                .await
                .map_err(|e| Error::transport(false, ProxyUnreachable::new(proxy, e)))?;
            open_tunnel(&mut io, proxy.tunnel(&target.host, target.port)).await?;
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

/// The proxy could not be reached.
#[derive(Debug)]
struct ProxyUnreachable(String, io::Error);

impl ProxyUnreachable {
    fn new(proxy: &Proxy, e: io::Error) -> Self {
        ProxyUnreachable(format!("{}:{}", proxy.host(), proxy.port()), e)
    }
}

impl fmt::Display for ProxyUnreachable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to the proxy {}: {}", self.0, self.1)
    }
}

impl std::error::Error for ProxyUnreachable {}

/// A runtime stream with hyper's I/O traits. Reads go through a small buffer of its
/// own (hyper's read cursor cannot be handed to futures-io without `unsafe`).
pub(crate) struct HyperIo {
    io: Box<dyn AsyncIo>,
    scratch: Box<[u8]>,
}

impl HyperIo {
    pub(crate) fn new(io: Box<dyn AsyncIo>) -> Self {
        HyperIo {
            io,
            scratch: vec![0; 16 * 1024].into_boxed_slice(),
        }
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
        Pin::new(&mut self.get_mut().io).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().io).poll_close(cx)
    }
}

/// Idle HTTP/1.1 connections, by target. A connection goes back only once its answer
/// was read whole; a stream's connection is never reused.
#[derive(Default)]
pub(crate) struct Pool {
    idle: Mutex<HashMap<Target, Vec<SendRequest<HttpBody>>>>,
}

/// The most idle connections kept per target.
const MAX_IDLE: usize = 16;

impl Pool {
    /// An idle connection to `target` that can take a request now.
    pub(crate) fn checkout(&self, target: &Target) -> Option<SendRequest<HttpBody>> {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.get_mut(target)?;
        while let Some(sender) = list.pop() {
            if sender.is_ready() {
                return Some(sender);
            }
        }
        None
    }

    /// Keeps `sender` for the next request to `target`.
    pub(crate) fn checkin(&self, target: Target, sender: SendRequest<HttpBody>) {
        if sender.is_closed() {
            return;
        }
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        let list = idle.entry(target).or_default();
        list.retain(|s| !s.is_closed());
        if list.len() < MAX_IDLE {
            list.push(sender);
        }
    }
}

/// A new HTTP/1.1 connection over `io`; its driver runs on the runtime.
pub(crate) async fn handshake(
    rt: &dyn Runtime,
    io: Box<dyn AsyncIo>,
) -> Result<SendRequest<HttpBody>, Error> {
    let (sender, connection) = hyper::client::conn::http1::Builder::new()
        .handshake(HyperIo::new(io))
        .await
        .map_err(|e| Error::transport(false, e))?;
    rt.spawn(Box::pin(async move {
        // The connection's end (the server closed it, or every handle was dropped) is
        // seen by the request that was using it.
        let _ = connection.await;
    }));
    Ok(sender)
}
