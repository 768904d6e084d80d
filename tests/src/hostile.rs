//! Hostile servers: raw-socket HTTP/1.1 and WebSocket servers on 127.0.0.1 that
//! misbehave on purpose (silence, a head that never ends, endless `100 Continue`,
//! trickled and flooded bodies, a ping flood that never reads), so that a test can
//! check that a transport turns each misbehaviour into a typed error within its limits.
//!
//! They are deliberately not the emulator: the emulator is a well-behaved server with
//! injectable faults at the API level; these misbehave at the byte level, where no
//! well-behaved HTTP library would let a server go.
//!
//! A server is one accepting thread plus one thread per connection (at most
//! [`MAX_CONNECTIONS`]). Every thread stops by itself: when the client goes away, when
//! the [`HostileServer`] is dropped, and at the latest [`HARD_CAP`] after the server
//! started. Sockets get short read and write timeouts so that each loop looks at those
//! conditions every [`SLICE`], even while the client is stalled. A failed write or read
//! is the client leaving, which is the normal end of a hostile exchange: it ends the
//! connection quietly.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// No server thread lives longer than this after its server started.
pub const HARD_CAP: Duration = Duration::from_secs(30);

/// Connections a server accepts at most; later ones are closed at once.
pub const MAX_CONNECTIONS: usize = 8;

/// The longest a server thread goes without checking whether it should stop.
pub const SLICE: Duration = Duration::from_millis(50);

/// A request head longer than this ends the connection.
const MAX_HEAD: usize = 64 * 1024;

/// The size of one write of a flood.
const BATCH: usize = 64 * 1024;

/// What a hostile server does with each connection.
#[derive(Clone, Debug)]
pub enum Behaviour {
    /// Reads and discards whatever arrives and never writes. Over TLS, after the
    /// handshake; on a plain listener that an `https://` client talks to, this is a
    /// server that never answers the ClientHello.
    Silent,
    /// Reads the request head, writes these bytes (e.g. half a response head), then
    /// reads and discards and never writes again.
    PartialHead(Vec<u8>),
    /// Reads the request head, then writes `HTTP/1.1 100 Continue` every `every`, and
    /// never a final response.
    ContinueForever {
        /// The gap between two interim responses.
        every: Duration,
    },
    /// Reads the request head, writes `head`, then one body byte every `every` (in a
    /// chunk of its own when `chunked`), forever.
    Trickle {
        /// The response head, blank line included.
        head: String,
        /// Whether each byte is framed as a chunk.
        chunked: bool,
        /// The gap between two bytes; the first comes one gap after the head.
        every: Duration,
    },
    /// Reads the request head, writes `head`, then `body` as fast as the client reads.
    Flood {
        /// The response head, blank line included.
        head: String,
        /// The body.
        body: Body,
    },
    /// Reads the request head, then never reads again (nor writes): an upload stalls
    /// once the socket buffers are full.
    Deaf,
    /// Completes a WebSocket upgrade, then writes unmasked 125-byte Ping frames as fast
    /// as the socket takes them and never reads again (the client's Pongs pile up).
    WsPingFlood,
    /// Completes a WebSocket upgrade, then reads and discards whatever arrives and never
    /// writes.
    WsSilent,
}

/// A large body, described instead of held: `prefix`, `unit` `count` times, `suffix`.
#[derive(Clone, Debug)]
pub struct Body {
    /// The first bytes.
    pub prefix: Vec<u8>,
    /// The repeated part.
    pub unit: Vec<u8>,
    /// How many times `unit` is repeated.
    pub count: u64,
    /// The last bytes.
    pub suffix: Vec<u8>,
    /// Whether the body is sent with chunked transfer encoding (the head must say so).
    pub chunked: bool,
}

impl Body {
    /// `len` zero bytes (rounded down to whole KiB).
    pub fn zeros(len: u64, chunked: bool) -> Body {
        Body {
            prefix: Vec::new(),
            unit: vec![0; 1024],
            count: len / 1024,
            suffix: Vec::new(),
            chunked,
        }
    }

    /// A valid voice list (`{"voices":[…]}`) of about `len` bytes.
    pub fn voice_list(len: u64, chunked: bool) -> Body {
        let prefix = br#"{"voices":["#.to_vec();
        let unit =
            br#"{"voiceId":"magnus","displayName":"Magnus","tags":{"language":["english"]}},"#
                .to_vec();
        let suffix = br#"{"voiceId":"last","displayName":"Last"}]}"#.to_vec();
        let fixed = (prefix.len() + suffix.len()) as u64;
        Body {
            count: len.saturating_sub(fixed) / unit.len() as u64,
            prefix,
            unit,
            suffix,
            chunked,
        }
    }

    /// The body's length in bytes (without chunk framing).
    pub fn len(&self) -> u64 {
        self.prefix.len() as u64 + self.unit.len() as u64 * self.count + self.suffix.len() as u64
    }

    /// Whether the body has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response head: the status line, the headers, and the blank line.
pub fn head(status: &str, headers: &[(&str, &str)]) -> String {
    let mut head = format!("HTTP/1.1 {status}\r\n");
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head
}

/// A running hostile server on 127.0.0.1. Dropping it stops every thread it started
/// (and closes their sockets, which also frees a client stuck on one of them).
pub struct HostileServer {
    addr: SocketAddr,
    ca_der: Option<Vec<u8>>,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

/// What the threads of one server share.
struct Shared {
    stop: AtomicBool,
    deadline: Instant,
    written: AtomicU64,
    connections: AtomicU64,
}

impl Shared {
    fn alive(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }
}

impl HostileServer {
    /// A server that speaks plain TCP (HTTP/1.1, or WebSocket over HTTP/1.1).
    pub fn plain(behaviour: Behaviour) -> io::Result<HostileServer> {
        HostileServer::spawn(behaviour, None)
    }

    /// A server that completes a TLS handshake (a fresh CA and a leaf for `127.0.0.1`
    /// and `localhost`, ALPN `http/1.1` only, so hyper speaks HTTP/1.1 as the raw
    /// behaviours do), then behaves as told inside the TLS session.
    pub fn tls(behaviour: Behaviour) -> io::Result<HostileServer> {
        let (config, ca_der) = tls_material()?;
        let mut server = HostileServer::spawn(behaviour, Some(config))?;
        server.ca_der = Some(ca_der);
        Ok(server)
    }

    fn spawn(
        behaviour: Behaviour,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> io::Result<HostileServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        // Non-blocking, so that the accepting loop can look at `stop` and the deadline.
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            deadline: Instant::now() + HARD_CAP,
            written: AtomicU64::new(0),
            connections: AtomicU64::new(0),
        });
        let acceptor = {
            let shared = shared.clone();
            thread::Builder::new()
                .name(format!("hostile-{}", addr.port()))
                .spawn(move || accept_loop(&listener, &shared, &behaviour, tls.as_ref()))?
        };
        Ok(HostileServer {
            addr,
            ca_der: None,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `scheme://127.0.0.1:PORT`: any scheme, so that an `https://` client can be
    /// pointed at a plain server (one that never answers the ClientHello).
    pub fn url(&self, scheme: &str) -> String {
        format!("{scheme}://{}", self.addr)
    }

    /// The CA to trust, for a TLS server.
    pub fn ca_der(&self) -> Option<Vec<u8>> {
        self.ca_der.clone()
    }

    /// Bytes written to clients so far (payload and framing, over all connections).
    pub fn bytes_written(&self) -> u64 {
        self.shared.written.load(Ordering::Relaxed)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::Relaxed)
    }
}

impl Drop for HostileServer {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(acceptor) = self.acceptor.take() {
            // It joins the connection threads, each of which ends within a slice or two.
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(
    listener: &TcpListener,
    shared: &Arc<Shared>,
    behaviour: &Behaviour,
    tls: Option<&Arc<rustls::ServerConfig>>,
) {
    let mut handlers = Vec::new();
    while shared.alive() {
        match listener.accept() {
            Ok((tcp, _)) => {
                if handlers.len() >= MAX_CONNECTIONS {
                    continue; // dropped: closed at once
                }
                shared.connections.fetch_add(1, Ordering::Relaxed);
                let shared = shared.clone();
                let behaviour = behaviour.clone();
                let tls = tls.cloned();
                let handler = thread::Builder::new()
                    .name("hostile-conn".into())
                    .spawn(move || {
                        if let Some(conn) = Conn::new(tcp, tls, shared) {
                            serve(conn, &behaviour);
                        }
                    });
                // A thread that could not start is one connection not served: the
                // client sees it closed, which a test reports as what it is.
                if let Ok(handler) = handler {
                    handlers.push(handler);
                }
            }
            // Nothing pending (or a transient accept failure): look again shortly.
            Err(_) => thread::sleep(Duration::from_millis(5)),
        }
    }
    for handler in handlers {
        let _ = handler.join();
    }
}

/// The stream a connection runs on: TCP, or TLS over TCP.
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// What a read gave.
enum Got {
    Data(usize),
    /// Nothing within a slice.
    Nothing,
    /// The client closed or reset the connection.
    Gone,
}

/// One accepted connection.
struct Conn {
    io: Box<dyn Stream>,
    shared: Arc<Shared>,
}

impl Conn {
    fn new(
        tcp: TcpStream,
        tls: Option<Arc<rustls::ServerConfig>>,
        shared: Arc<Shared>,
    ) -> Option<Conn> {
        // Accepted sockets must block (with timeouts), whatever the listener does.
        tcp.set_nonblocking(false).ok()?;
        tcp.set_read_timeout(Some(SLICE)).ok()?;
        tcp.set_write_timeout(Some(SLICE)).ok()?;
        tcp.set_nodelay(true).ok()?;
        let io: Box<dyn Stream> = match tls {
            None => Box::new(tcp),
            // The handshake runs inside the first reads, slice by slice, like any read.
            Some(config) => Box::new(rustls::StreamOwned::new(
                rustls::ServerConnection::new(config).ok()?,
                tcp,
            )),
        };
        Some(Conn { io, shared })
    }

    fn read_some(&mut self, buf: &mut [u8]) -> Got {
        match self.io.read(buf) {
            Ok(0) => Got::Gone,
            Ok(n) => Got::Data(n),
            Err(e) if is_wait(&e) => Got::Nothing,
            Err(_) => Got::Gone,
        }
    }

    /// Reads up to the end of a request head. `None`: the client left, the head was
    /// too long, or the server is stopping.
    fn read_head(&mut self) -> Option<Vec<u8>> {
        let mut head = Vec::new();
        let mut buf = [0u8; 4096];
        while self.shared.alive() && head.len() <= MAX_HEAD {
            match self.read_some(&mut buf) {
                Got::Data(n) => {
                    head.extend_from_slice(&buf[..n]);
                    // Whatever follows the head (a request body) is left unread: no
                    // behaviour needs it, and the kernel buffers a small one.
                    if let Some(end) = find(&head, b"\r\n\r\n") {
                        head.truncate(end + 4);
                        return Some(head);
                    }
                }
                Got::Nothing => {}
                Got::Gone => return None,
            }
        }
        None
    }

    /// Reads and discards for `duration` (`None`: until the client leaves). Whether the
    /// connection should go on: the client is still there and the server not stopping.
    fn drain(&mut self, duration: Option<Duration>) -> bool {
        let until = duration.map(|d| Instant::now() + d);
        let mut buf = [0u8; 16 * 1024];
        loop {
            if !self.shared.alive() {
                return false;
            }
            if until.is_some_and(|t| Instant::now() >= t) {
                return true;
            }
            if let Got::Gone = self.read_some(&mut buf) {
                return false;
            }
        }
    }

    /// Writes all of `bytes`, however slowly the client reads. Whether the connection
    /// should go on (false when the client left or the server is stopping).
    fn send(&mut self, bytes: &[u8]) -> bool {
        let mut rest = bytes;
        while !rest.is_empty() {
            if !self.shared.alive() {
                return false;
            }
            match self.io.write(rest) {
                Ok(0) => return false,
                Ok(n) => {
                    self.shared.written.fetch_add(n as u64, Ordering::Relaxed);
                    rest = &rest[n..];
                }
                Err(e) if is_wait(&e) => {}
                Err(_) => return false,
            }
        }
        // TLS keeps records back until flushed; TCP's flush does nothing.
        loop {
            if !self.shared.alive() {
                return false;
            }
            match self.io.flush() {
                Ok(()) => return true,
                Err(e) if is_wait(&e) => {}
                Err(_) => return false,
            }
        }
    }
}

/// A socket timeout (or an interrupted call): try again after looking at the clock.
fn is_wait(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
    )
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn serve(mut conn: Conn, behaviour: &Behaviour) {
    match behaviour {
        Behaviour::Silent => {
            conn.drain(None);
        }
        Behaviour::Deaf => {
            if conn.read_head().is_some() {
                while conn.shared.alive() {
                    std::thread::sleep(Duration::from_millis(50));
                }
            }
        }
        Behaviour::PartialHead(bytes) => {
            if conn.read_head().is_some() && conn.send(bytes) {
                conn.drain(None);
            }
        }
        Behaviour::ContinueForever { every } => {
            if conn.read_head().is_some() {
                while conn.send(b"HTTP/1.1 100 Continue\r\n\r\n") && conn.drain(Some(*every)) {}
            }
        }
        Behaviour::Trickle {
            head,
            chunked,
            every,
        } => {
            if conn.read_head().is_some() && conn.send(head.as_bytes()) {
                let piece: &[u8] = if *chunked { b"1\r\n\0\r\n" } else { b"\0" };
                while conn.drain(Some(*every)) && conn.send(piece) {}
            }
        }
        Behaviour::Flood { head, body } => {
            if conn.read_head().is_some() && conn.send(head.as_bytes()) {
                flood(&mut conn, body);
            }
        }
        Behaviour::WsPingFlood => {
            if upgrade(&mut conn) {
                ping_flood(&mut conn);
            }
        }
        Behaviour::WsSilent => {
            if upgrade(&mut conn) {
                conn.drain(None);
            }
        }
    }
}

/// Writes `body`, in writes of about [`BATCH`] bytes, each a chunk when chunked.
fn flood(conn: &mut Conn, body: &Body) {
    let framed = |data: &[u8]| -> Vec<u8> {
        if body.chunked {
            let mut out = format!("{:x}\r\n", data.len()).into_bytes();
            out.extend_from_slice(data);
            out.extend_from_slice(b"\r\n");
            out
        } else {
            data.to_vec()
        }
    };
    if !body.prefix.is_empty() && !conn.send(&framed(&body.prefix)) {
        return;
    }
    let per_batch = (BATCH / body.unit.len().max(1)).max(1) as u64;
    let batch = framed(&body.unit.repeat(per_batch as usize));
    let mut left = body.count;
    while left >= per_batch {
        if !conn.send(&batch) {
            return;
        }
        left -= per_batch;
    }
    if left > 0 && !conn.send(&framed(&body.unit.repeat(left as usize))) {
        return;
    }
    if !body.suffix.is_empty() && !conn.send(&framed(&body.suffix)) {
        return;
    }
    if body.chunked && !conn.send(b"0\r\n\r\n") {
        return;
    }
    conn.drain(None);
}

/// Reads an upgrade request and answers `101` with the right `Sec-WebSocket-Accept`.
fn upgrade(conn: &mut Conn) -> bool {
    let Some(head) = conn.read_head() else {
        return false;
    };
    let text = String::from_utf8_lossy(&head);
    let key = text.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("sec-websocket-key")
            .then(|| value.trim().to_owned())
    });
    let Some(key) = key else {
        return false;
    };
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let answer = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-accept: {accept}\r\n\r\n"
    );
    conn.send(answer.as_bytes())
}

/// Unmasked Ping frames (FIN + opcode 9, 125 bytes of payload), back to back, until
/// the client goes away. Never reads: the client's Pongs stay in its own buffers.
fn ping_flood(conn: &mut Conn) {
    let mut frame = vec![0x89, 125];
    frame.extend_from_slice(&[b'p'; 125]);
    let batch = frame.repeat(BATCH / frame.len());
    while conn.send(&batch) {}
}

/// A fresh CA, a leaf for `127.0.0.1` and `localhost` signed by it, and the rustls
/// server configuration serving the leaf (the `ring` provider, passed explicitly: the
/// process-wide default may be unset or ambiguous).
fn tls_material() -> io::Result<(Arc<rustls::ServerConfig>, Vec<u8>)> {
    use rcgen::{
        BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
        KeyPair, KeyUsagePurpose,
    };
    use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

    let other = |e: &dyn std::fmt::Display| io::Error::other(format!("hostile TLS setup: {e}"));
    let ca_key = KeyPair::generate().map_err(|e| other(&e))?;
    let mut ca = CertificateParams::new(Vec::<String>::new()).map_err(|e| other(&e))?;
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(DnType::CommonName, "smallest-tests hostile CA");
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| other(&e))?;
    let issuer = Issuer::from_params(&ca, &ca_key);

    let leaf_key = KeyPair::generate().map_err(|e| other(&e))?;
    let mut leaf = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
        .map_err(|e| other(&e))?;
    leaf.distinguished_name
        .push(DnType::CommonName, "smallest-tests hostile server");
    leaf.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf_cert = leaf.signed_by(&leaf_key, &issuer).map_err(|e| other(&e))?;

    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(leaf_key.serialize_der()));
    let chain: Vec<CertificateDer<'static>> = vec![leaf_cert.der().clone()];
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| other(&e))?
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .map_err(|e| other(&e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((Arc::new(config), ca_cert.der().to_vec()))
}
