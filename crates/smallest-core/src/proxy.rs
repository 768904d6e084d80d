//! HTTP proxies: which connections go through one, and the `CONNECT` exchange that
//! opens a tunnel through it — sans-IO, like the rest of the core.
//!
//! A [`Proxy`] tunnels the encrypted connections of a client (`https://` calls and
//! `wss://` live sessions): the transport opens TCP to the proxy, writes
//! [`Tunnel::request`], feeds what it reads to [`Tunnel::handle_input`] until the
//! tunnel is [`TunnelState::Open`], and then runs TLS to the API through it, so the
//! proxy sees only the host name and port, never the key or any content. Plain
//! `http://` base URLs (a loopback emulator, or an explicit opt-in) always connect
//! directly: the SDK does not send its key in clear text to a proxy.
//!
//! The client builders read the proxy from the environment unless told otherwise
//! ([`ClientBuilder::proxy`](crate::ClientBuilder::proxy),
//! [`ClientBuilder::without_proxy`](crate::ClientBuilder::without_proxy)), the way
//! curl does:
//!
//! - `https_proxy`, then `HTTPS_PROXY`, then `all_proxy`, then `ALL_PROXY` (an empty
//!   value counts as unset): `http://[user:password@]host[:port]` (port 80 when
//!   omitted), or `host:port`;
//! - `no_proxy`, then `NO_PROXY`: a comma-separated list of hosts that connect
//!   directly. `*` is every host; `example.com` or `.example.com` is that domain and
//!   every name under it; an IP address or a CIDR range (`10.0.0.0/8`, `::1/128`)
//!   matches addresses; `host:port` matches only that port. Loopback is not exempt by
//!   itself (as with curl): list `localhost,127.0.0.1,::1` to exempt it.
//!
//! The proxy's credentials are kept as a secret: they appear in no `Debug` output and
//! no error, and are sent only in the `Proxy-Authorization` header of the `CONNECT`.

use std::fmt;
use std::net::IpAddr;

use base64::Engine as _;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{BoxError, Error};

/// The most bytes of a proxy's answer head that are read before giving up.
pub const MAX_TUNNEL_HEAD: usize = 16 * 1024;

/// An HTTP proxy that tunnels connections with `CONNECT`, and the hosts it does not
/// apply to.
#[derive(Clone)]
pub struct Proxy {
    host: String,
    port: u16,
    /// `Basic base64(user:password)`, when the URL had credentials.
    authorization: Option<SecretString>,
    bypass: Vec<Bypass>,
}

/// One entry of a `NO_PROXY` list.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Bypass {
    All,
    /// A name (lower case, no leading dot) and every name under it; with a port, only
    /// that port.
    Domain(String, Option<u16>),
    /// An address range: the address and how many leading bits must match.
    Net(IpAddr, u8, Option<u16>),
}

impl Proxy {
    /// The proxy at `url`: `http://[user:password@]host[:port]` or `host[:port]` (port
    /// 80 when omitted). User and password may be percent-encoded.
    ///
    /// # Errors
    /// [`Error::Config`] for another scheme (`https://` and `socks5://` proxies are not
    /// supported), a missing host, a bad port, or a path. The message never contains
    /// the credentials.
    pub fn new(url: &str) -> Result<Proxy, Error> {
        let url = url.trim();
        let bad = |why: &str| {
            Error::Config(format!("proxy URL {:?}: {why}", without_credentials(url)).into())
        };
        let rest = match url.split_once("://") {
            None => url,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => {
                return Err(bad(&format!(
                    "the scheme {scheme:?} is not supported; use an http:// proxy (it tunnels \
                     TLS with CONNECT)"
                )));
            }
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#']) {
            return Err(bad("a proxy URL has no path; use http://host:port"));
        }
        let (userinfo, authority) = match rest.rsplit_once('@') {
            Some((userinfo, authority)) => (Some(userinfo), authority),
            None => (None, rest),
        };
        let (host, port) = split_host_port(authority).ok_or_else(|| {
            bad("expected host:port with a port from 1 to 65535 (e.g. http://proxy.internal:3128)")
        })?;
        if host.is_empty() {
            return Err(bad("the host is missing"));
        }
        let authorization = userinfo.map(|userinfo| {
            let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
            let decode = |s: &str| percent_encoding::percent_decode_str(s).collect::<Vec<u8>>();
            let mut credentials = decode(user);
            credentials.push(b':');
            credentials.extend(decode(password));
            let encoded = base64::engine::general_purpose::STANDARD.encode(&credentials);
            SecretString::from(format!("Basic {encoded}"))
        });
        Ok(Proxy {
            host: host.to_owned(),
            port: port.unwrap_or(80),
            authorization,
            bypass: Vec::new(),
        })
    }

    /// The proxy the environment names (see the [module docs](self)), with its
    /// `NO_PROXY` list; `None` when no variable names one.
    ///
    /// # Errors
    /// [`Error::Config`] naming the variable when its value is not a usable proxy URL.
    pub fn from_env() -> Result<Option<Proxy>, Error> {
        Proxy::from_vars(|name| std::env::var(name).ok())
    }

    /// [`from_env`](Self::from_env) over any source of variables (`get` returns a
    /// variable's value), for tests and for programs that keep their settings
    /// elsewhere.
    ///
    /// # Errors
    /// As [`from_env`](Self::from_env).
    pub fn from_vars(get: impl Fn(&str) -> Option<String>) -> Result<Option<Proxy>, Error> {
        let first = |names: &[&'static str]| {
            names.iter().find_map(|&name| {
                get(name)
                    .filter(|v| !v.trim().is_empty())
                    .map(|v| (name, v))
            })
        };
        let Some((name, url)) = first(&["https_proxy", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"])
        else {
            return Ok(None);
        };
        let proxy = Proxy::new(&url).map_err(|e| match e {
            Error::Config(message) => Error::Config(format!("{name}: {message}").into()),
            other => other,
        })?;
        Ok(Some(match first(&["no_proxy", "NO_PROXY"]) {
            Some((_, list)) => proxy.no_proxy(&list),
            None => proxy,
        }))
    }

    /// Adds the hosts of a `NO_PROXY`-style list (see the [module docs](self)) to
    /// those that connect directly. Entries that are not host names, addresses or
    /// ranges are ignored.
    #[must_use]
    pub fn no_proxy(mut self, list: &str) -> Self {
        self.bypass.extend(
            list.split([',', ' ', '\t'])
                .map(str::trim)
                .filter(|e| !e.is_empty())
                .filter_map(Bypass::parse),
        );
        self
    }

    /// The proxy's host (a name or an address, without brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The proxy's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether a connection to `host:port` (`tls`: an `https`/`wss` one) goes
    /// through this proxy: encrypted, and not in the `NO_PROXY` list.
    pub fn applies_to(&self, host: &str, port: u16, tls: bool) -> bool {
        tls && !self.bypass.iter().any(|b| b.matches(host, port))
    }

    /// The proxy to use for `uri`, if any (see [`applies_to`](Self::applies_to)).
    pub fn for_uri<'a>(proxy: Option<&'a Proxy>, uri: &http::Uri) -> Option<&'a Proxy> {
        let proxy = proxy?;
        let target = Target::of(uri).ok()?;
        proxy
            .applies_to(&target.host, target.port, target.tls)
            .then_some(proxy)
    }

    /// The `CONNECT` exchange that opens a tunnel to `host:port` through this proxy.
    pub fn tunnel(&self, host: &str, port: u16) -> Tunnel {
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut request = format!("CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n");
        if let Some(authorization) = &self.authorization {
            request.push_str("Proxy-Authorization: ");
            request.push_str(authorization.expose_secret());
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        Tunnel {
            request: SecretString::from(request),
            head: Vec::new(),
            target,
            proxy: self.address(),
            state: TunnelState::Waiting,
        }
    }

    /// `host:port`, bracketed for IPv6: how errors name the proxy.
    fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for Proxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Proxy")
            .field("address", &self.address())
            .field(
                "credentials",
                &self.authorization.as_ref().map(|_| crate::redact::REDACTED),
            )
            .field("no_proxy", &self.bypass)
            .finish()
    }
}

impl Bypass {
    fn parse(entry: &str) -> Option<Bypass> {
        if entry == "*" {
            return Some(Bypass::All);
        }
        if let Some((addr, bits)) = entry.split_once('/') {
            let addr: IpAddr = addr.trim_matches(['[', ']']).parse().ok()?;
            let bits: u8 = bits.parse().ok()?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            return (bits <= max).then_some(Bypass::Net(addr, bits, None));
        }
        let (host, port) = split_host_port(entry)?;
        let host = host.trim_start_matches("*.").trim_start_matches('.');
        if host.is_empty() {
            return None;
        }
        Some(match host.parse::<IpAddr>() {
            Ok(addr) => Bypass::Net(addr, if addr.is_ipv4() { 32 } else { 128 }, port),
            Err(_) => Bypass::Domain(host.to_ascii_lowercase(), port),
        })
    }

    fn matches(&self, host: &str, port: u16) -> bool {
        let port_ok = |p: &Option<u16>| p.is_none_or(|p| p == port);
        match self {
            Bypass::All => true,
            Bypass::Domain(domain, p) => {
                let host = host.trim_end_matches('.').to_ascii_lowercase();
                port_ok(p)
                    && (host == *domain
                        || host
                            .strip_suffix(domain.as_str())
                            .is_some_and(|head| head.ends_with('.')))
            }
            Bypass::Net(net, bits, p) => {
                port_ok(p)
                    && host
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| in_net(ip, *net, *bits))
            }
        }
    }
}

/// Whether `ip` is in `net/bits` (an IPv4-mapped IPv6 address counts as IPv4).
fn in_net(ip: IpAddr, net: IpAddr, bits: u8) -> bool {
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match (canonical(ip), canonical(net)) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = u32::MAX
                .checked_shl(32 - u32::from(bits.min(32)))
                .unwrap_or(0);
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = u128::MAX
                .checked_shl(128 - u32::from(bits.min(128)))
                .unwrap_or(0);
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; `None` for a bad
/// port.
fn split_host_port(authority: &str) -> Option<(&str, Option<u16>)> {
    let port = |p: &str| p.parse::<u16>().ok().filter(|p| *p != 0);
    if let Some(rest) = authority.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        return match after.strip_prefix(':') {
            None if after.is_empty() => Some((host, None)),
            None => None,
            Some(p) => Some((host, Some(port(p)?))),
        };
    }
    if authority.matches(':').count() > 1 {
        // A bare IPv6 address has no port.
        return Some((authority, None));
    }
    match authority.split_once(':') {
        None => Some((authority, None)),
        Some((host, p)) => Some((host, Some(port(p)?))),
    }
}

/// `url` with any `user:password@` replaced, for error messages.
fn without_credentials(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let rest = match rest.rsplit_once('@') {
        Some((_, authority)) => format!("{}@{authority}", crate::redact::REDACTED),
        None => rest.to_owned(),
    };
    if scheme.is_empty() {
        rest
    } else {
        format!("{scheme}://{rest}")
    }
}

/// Where a connection goes: encrypted or not, the host (a name or an address, without
/// the brackets of IPv6) and the port (443 or 80 when the URI has none).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Target {
    /// `https` or `wss`.
    pub tls: bool,
    /// The host.
    pub host: String,
    /// The port.
    pub port: u16,
}

impl Target {
    /// The target of an `http(s)` or `ws(s)` URI.
    ///
    /// # Errors
    /// [`Error::Config`] for a URI without a host.
    pub fn of(uri: &http::Uri) -> Result<Target, Error> {
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

/// Where a [`Tunnel`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelState {
    /// The proxy has not answered yet: read more and hand it over.
    Waiting,
    /// The tunnel is open: everything written now reaches the target (start TLS).
    Open,
}

/// One `CONNECT` exchange: the request to write, and the reading of the proxy's
/// answer. Made by [`Proxy::tunnel`].
pub struct Tunnel {
    /// The whole request; a secret, for it may carry the proxy's credentials.
    request: SecretString,
    head: Vec<u8>,
    target: String,
    proxy: String,
    state: TunnelState,
}

impl Tunnel {
    /// The bytes to write to the proxy, once, before reading.
    pub fn request(&self) -> &[u8] {
        self.request.expose_secret().as_bytes()
    }

    /// Hands over bytes read from the proxy.
    ///
    /// # Errors
    /// [`Error::Transport`] (never sent, with a [`ProxyError`] as its source) when the
    /// proxy refused the tunnel (any status but 2xx), sent a malformed answer, an
    /// answer head longer than [`MAX_TUNNEL_HEAD`], or bytes after its answer (the
    /// target's TLS must speak first).
    pub fn handle_input(&mut self, data: &[u8]) -> Result<TunnelState, Error> {
        if self.state == TunnelState::Open {
            return if data.is_empty() {
                Ok(TunnelState::Open)
            } else {
                Err(self.fail(None, "sent bytes after opening the tunnel".to_owned()))
            };
        }
        self.head.extend_from_slice(data);
        let Some(end) = memchr::memmem::find(&self.head, b"\r\n\r\n") else {
            if self.head.len() > MAX_TUNNEL_HEAD {
                return Err(self.fail(
                    None,
                    format!("sent an answer head longer than {MAX_TUNNEL_HEAD} bytes"),
                ));
            }
            return Ok(TunnelState::Waiting);
        };
        if end + 4 != self.head.len() {
            return Err(self.fail(None, "sent bytes after its answer to CONNECT".to_owned()));
        }
        let head = String::from_utf8_lossy(&self.head[..end]).into_owned();
        let status_line = head.lines().next().unwrap_or_default();
        let mut words = status_line.splitn(3, ' ');
        let version = words.next().unwrap_or_default();
        let status = words.next().and_then(|s| s.parse::<u16>().ok());
        let reason = crate::redact::printable(words.next().unwrap_or_default(), 120);
        let Some(status) =
            status.filter(|s| (100..600).contains(s) && version.starts_with("HTTP/1."))
        else {
            let line = crate::redact::printable(status_line, 120);
            return Err(self.fail(
                None,
                format!("answered CONNECT with {line:?}, not HTTP/1.x"),
            ));
        };
        if !(200..300).contains(&status) {
            return Err(self.fail(
                Some(status),
                format!("refused the tunnel: {status} {reason}"),
            ));
        }
        self.state = TunnelState::Open;
        Ok(TunnelState::Open)
    }

    /// The proxy could not be reached (`cause`: the TCP connection's failure): never
    /// sent, and worth a retry.
    pub fn unreachable(&self, cause: impl fmt::Display) -> Error {
        self.fail(None, format!("could not be reached: {cause}"))
    }

    /// The proxy closed the connection before its answer was complete.
    pub fn handle_eof(&self) -> Error {
        self.fail(
            None,
            "closed the connection before answering CONNECT".to_owned(),
        )
    }

    fn fail(&self, status: Option<u16>, what: String) -> Error {
        Error::Transport {
            request_sent: false,
            source: BoxError::from(ProxyError {
                proxy: self.proxy.clone(),
                target: self.target.clone(),
                status,
                what,
            }),
        }
    }
}

impl fmt::Debug for Tunnel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tunnel")
            .field("proxy", &self.proxy)
            .field("target", &self.target)
            .field("state", &self.state)
            .finish_non_exhaustive()
    }
}

/// A proxy would not open a tunnel: the source of an [`Error::Transport`] that was
/// never sent.
#[derive(Clone, Debug)]
pub struct ProxyError {
    proxy: String,
    target: String,
    status: Option<u16>,
    what: String,
}

impl ProxyError {
    /// The proxy's status, when it answered with one.
    pub fn status(&self) -> Option<u16> {
        self.status
    }

    /// Whether trying again may help: the proxy's gateway failures (502, 503, 504)
    /// and a broken answer may; a refusal (403, 407 …) will not.
    pub fn is_retryable(&self) -> bool {
        self.status.is_none_or(|s| matches!(s, 502..=504))
    }

    /// The first `ProxyError` in an error's source chain.
    pub fn find<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a ProxyError> {
        std::iter::successors(Some(error), |e| e.source()).find_map(|e| e.downcast_ref())
    }
}

impl fmt::Display for ProxyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the proxy {} {} (tunnel to {})",
            self.proxy, self.what, self.target
        )?;
        if self.status == Some(407) {
            f.write_str("; put its credentials in the proxy URL: http://user:password@host:port")?;
        }
        Ok(())
    }
}

impl std::error::Error for ProxyError {}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
        }
    }

    #[test]
    fn urls_parse_and_credentials_stay_secret() {
        let p = Proxy::new("http://us%40er:p%3Ass@proxy.internal:3128/").unwrap();
        assert_eq!((p.host(), p.port()), ("proxy.internal", 3128));
        let debug = format!("{p:?}");
        assert!(
            !debug.contains("p%3Ass") && !debug.contains("cDpzcw"),
            "{debug}"
        );
        let request =
            String::from_utf8(p.tunnel("api.smallest.ai", 443).request().to_vec()).unwrap();
        // base64("us@er:p:ss")
        assert!(
            request.contains("Proxy-Authorization: Basic dXNAZXI6cDpzcw==\r\n"),
            "{request}"
        );
        assert!(
            request.starts_with(
                "CONNECT api.smallest.ai:443 HTTP/1.1\r\nHost: api.smallest.ai:443\r\n"
            )
        );
        assert!(request.ends_with("\r\n\r\n"));

        let p = Proxy::new("127.0.0.1:8080").unwrap();
        assert_eq!((p.host(), p.port()), ("127.0.0.1", 8080));
        let p = Proxy::new("http://[::1]").unwrap();
        assert_eq!((p.host(), p.port()), ("::1", 80));
        let request = String::from_utf8(p.tunnel("::1", 8443).request().to_vec()).unwrap();
        assert!(
            request.starts_with("CONNECT [::1]:8443 HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn bad_urls_are_refused_without_their_credentials() {
        for (url, says) in [
            ("https://u:secretpw@p:443", "not supported"),
            ("socks5://p:1080", "not supported"),
            ("http://p:0", "port"),
            ("http://p:99999", "port"),
            ("http://u:secretpw@:3128", "host"),
            ("http://p:3128/path", "no path"),
        ] {
            let e = Proxy::new(url).unwrap_err().to_string();
            assert!(e.contains(says), "{url}: {e}");
            assert!(!e.contains("secretpw"), "{url}: {e}");
        }
    }

    #[test]
    fn the_environment_is_read_like_curl() {
        assert!(Proxy::from_vars(vars(&[])).unwrap().is_none());
        assert!(
            Proxy::from_vars(vars(&[("HTTPS_PROXY", " ")]))
                .unwrap()
                .is_none()
        );
        // HTTP_PROXY does not apply: only encrypted connections are proxied.
        assert!(
            Proxy::from_vars(vars(&[("HTTP_PROXY", "http://p:1")]))
                .unwrap()
                .is_none()
        );
        let p = Proxy::from_vars(vars(&[
            ("https_proxy", "http://lower:1"),
            ("HTTPS_PROXY", "http://upper:2"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p.host(), "lower");
        let p = Proxy::from_vars(vars(&[
            ("ALL_PROXY", "http://all:3"),
            ("NO_PROXY", "example.com"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(p.host(), "all");
        assert!(!p.applies_to("api.example.com", 443, true));
        assert!(p.applies_to("api.smallest.ai", 443, true));
        let e = Proxy::from_vars(vars(&[("HTTPS_PROXY", "ftp://x")])).unwrap_err();
        assert!(e.to_string().contains("HTTPS_PROXY"), "{e}");
    }

    #[test]
    fn no_proxy_lists_match_names_addresses_ranges_and_ports() {
        let p = Proxy::new("http://p:3128").unwrap().no_proxy(
            ".internal, example.com,10.0.0.0/8 ,[::1], 192.168.1.5:8443,*.wild.org, ,bogus/99",
        );
        let direct = |host: &str, port: u16| !p.applies_to(host, port, true);
        assert!(direct("svc.internal", 443));
        assert!(direct("internal", 443));
        assert!(!direct("notinternal", 443));
        assert!(direct("EXAMPLE.com.", 443));
        assert!(direct("a.b.example.com", 443));
        assert!(!direct("badexample.com", 443));
        assert!(direct("10.20.30.40", 443));
        assert!(!direct("11.0.0.1", 443));
        assert!(direct("::1", 443));
        assert!(direct("::ffff:10.1.2.3", 443));
        assert!(direct("192.168.1.5", 8443));
        assert!(!direct("192.168.1.5", 443));
        assert!(direct("x.wild.org", 443));
        assert!(!direct("api.smallest.ai", 443));
        // Plain connections never use the proxy.
        assert!(!p.applies_to("api.smallest.ai", 80, false));
        let all = Proxy::new("p:1").unwrap().no_proxy("*");
        assert!(!all.applies_to("anything", 443, true));
        let uri: http::Uri = "wss://api.smallest.ai/waves/v1/tts/live".parse().unwrap();
        let p = Proxy::new("p:1").unwrap();
        assert!(Proxy::for_uri(Some(&p), &uri).is_some());
        let uri: http::Uri = "http://127.0.0.1:9/x".parse().unwrap();
        assert!(Proxy::for_uri(Some(&p), &uri).is_none());
        let target = Target::of(&"wss://[::1]/live".parse().unwrap()).unwrap();
        assert_eq!(
            (target.tls, target.host.as_str(), target.port),
            (true, "::1", 443)
        );
    }

    #[test]
    fn the_answer_opens_the_tunnel_or_says_why_not() {
        let proxy = Proxy::new("http://p:3128").unwrap();
        let mut t = proxy.tunnel("api.smallest.ai", 443);
        assert_eq!(
            t.handle_input(b"HTTP/1.1 200 Connection").unwrap(),
            TunnelState::Waiting
        );
        assert_eq!(
            t.handle_input(b" established\r\nVia: x\r\n\r\n").unwrap(),
            TunnelState::Open
        );

        let refused = |answer: &[u8]| {
            let mut t = proxy.tunnel("api.smallest.ai", 443);
            let e = t.handle_input(answer).unwrap_err();
            assert!(matches!(
                e,
                Error::Transport {
                    request_sent: false,
                    ..
                }
            ));
            let Error::Transport { source, .. } = &e else {
                unreachable!()
            };
            let proxy_error = ProxyError::find(source.as_ref()).unwrap().clone();
            // The call machines retry a tunnel refusal only when the proxy may recover.
            assert_eq!(crate::retry::is_retryable(&e), proxy_error.is_retryable());
            (e.to_string(), proxy_error)
        };
        let (text, e) = refused(b"HTTP/1.1 407 Proxy Authentication Required\r\n\r\n");
        assert_eq!(e.status(), Some(407));
        assert!(!e.is_retryable());
        assert!(
            text.contains("407") && text.contains("user:password@"),
            "{text}"
        );
        let (_, e) = refused(b"HTTP/1.1 502 Bad Gateway\r\n\r\n");
        assert!(e.is_retryable());
        let (text, _) = refused(b"HTTP/1.1 403 \x1b[31mred\x07\r\n\r\n");
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        let (text, _) = refused(b"SSH-2.0-OpenSSH\r\n\r\n");
        assert!(text.contains("not HTTP/1.x"), "{text}");
        let (text, _) = refused(b"HTTP/1.1 200 OK\r\n\r\n\x16\x03");
        assert!(text.contains("after its answer"), "{text}");
        let mut t = proxy.tunnel("h", 443);
        let e = t
            .handle_input(&vec![b'a'; MAX_TUNNEL_HEAD + 1])
            .unwrap_err();
        assert!(e.to_string().contains("longer than"), "{e}");
        assert!(t.handle_eof().to_string().contains("closed the connection"));
        let e = t.unreachable("connection refused");
        assert!(crate::retry::is_retryable(&e));
        assert!(
            e.to_string()
                .contains("could not be reached: connection refused"),
            "{e}"
        );
    }
}
