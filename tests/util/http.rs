//! The one loopback HTTP server of the tests, and the fault servers built on it.
//!
//! [`Server`] is a real HTTP/1.1 server on 127.0.0.1, in-process: the code under test
//! talks to it through its real HTTP stack, and tests never touch the internet. Every
//! connection is served on its own thread and closed after one answer
//! (`Connection: close`). A library scan asks about many builds at once; a server with a
//! fixed pool (tiny_http 0.12) can leave a new connection queued behind threads parked
//! on idle keep-alive connections until the client times out. One thread per
//! connection cannot starve.
//!
//! Three ways to answer, from the most to the least structured:
//! - [`Server::start`]: a handler maps each [`Recorded`] request to a [`Reply`] (the
//!   stand-ins for Apple's TSS server and ipsw.me, `signing::FakeServer`);
//! - [`Server::streaming`]: the handler gets the parsed request and writes the answer
//!   itself (the `Range` file server of `remote::FileServer`, bodies cut midway);
//! - [`Server::raw`]: the handler gets the bare connection (TLS, trickling bytes,
//!   answering before the request is read — the network fault tests).
//!
//! Every parsed request is recorded, in the order answered.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use plist::{Dictionary, Value};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// The request target: path and query.
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The path, without the query.
    pub fn path(&self) -> &str {
        self.url.split('?').next().unwrap_or_default()
    }

    pub fn is_tss(&self) -> bool {
        self.url.starts_with("/TSS/")
    }

    /// The body as a plist dictionary (panics if it is not one: that is a test failure).
    pub fn plist(&self) -> Dictionary {
        Value::from_reader_xml(&self.body[..])
            .expect("the TSS request is an XML plist")
            .into_dictionary()
            .expect("the TSS request is a dictionary")
    }
}

/// What the server answers.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn ok(body: impl Into<Vec<u8>>) -> Self {
        Reply {
            status: 200,
            body: body.into(),
        }
    }

    pub fn status(status: u16) -> Self {
        Reply {
            status,
            body: b"error".to_vec(),
        }
    }
}

/// Read one HTTP/1.1 request: the request line, the headers, then `Content-Length`
/// bytes of body. `None` when the connection ends (or times out) before it is whole.
pub fn read_request(stream: &mut impl Read) -> Option<Recorded> {
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let url = parts.next()?.to_owned();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        if let Some((name, value)) = h.split_once(':') {
            headers.push((name.trim().to_owned(), value.trim().to_owned()));
        }
    }
    let length = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0);
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).ok()?;
    Some(Recorded {
        method,
        url,
        headers,
        body,
    })
}

/// Write `reply` as a whole HTTP/1.1 answer that closes the connection.
pub fn write_reply(stream: &mut impl Write, reply: &Reply) -> std::io::Result<()> {
    write!(
        stream,
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        reply.status,
        reply.body.len()
    )?;
    stream.write_all(&reply.body)?;
    stream.flush()
}

type Requests = Arc<Mutex<Vec<Recorded>>>;

/// A loopback HTTP server; stops accepting when dropped (connections being served
/// finish on their own threads).
pub struct Server {
    pub addr: SocketAddr,
    requests: Requests,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Every connection to `listener` on its own thread, given to `conn` with the log.
    fn accept(
        listener: TcpListener,
        conn: impl Fn(TcpStream, &Requests) + Send + Sync + 'static,
    ) -> Server {
        let addr = listener.local_addr().expect("a bound listener");
        let requests: Requests = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let conn = Arc::new(conn);
        let thread = {
            let (requests, stop) = (Arc::clone(&requests), Arc::clone(&stop));
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let (conn, requests) = (Arc::clone(&conn), Arc::clone(&requests));
                    std::thread::spawn(move || conn(stream, &requests));
                }
            })
        };
        Server {
            addr,
            requests,
            stop,
            thread: Some(thread),
        }
    }

    fn bind(addr: &str) -> TcpListener {
        TcpListener::bind(addr).expect("bind a loopback port")
    }

    /// Hand every connection, unread, to `conn` (on its own thread). Nothing is recorded.
    pub fn raw(conn: impl Fn(TcpStream) + Send + Sync + 'static) -> Server {
        Self::accept(Self::bind("127.0.0.1:0"), move |stream, _| conn(stream))
    }

    /// Answer every request with `handler`'s reply, recording it; one request per
    /// connection.
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static) -> Server {
        Self::start_on("127.0.0.1:0", handler)
    }

    /// [`Server::start`] on a given address (a port that was free a moment ago).
    pub fn start_on(
        addr: &str,
        handler: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> Server {
        Self::streaming_on(addr, move |request, stream| {
            write_reply(stream, &handler(request))
        })
    }

    /// Parse and record every request, then let `respond` write the answer itself.
    pub fn streaming(
        respond: impl Fn(&Recorded, &mut TcpStream) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Server {
        Self::streaming_on("127.0.0.1:0", respond)
    }

    fn streaming_on(
        addr: &str,
        respond: impl Fn(&Recorded, &mut TcpStream) -> std::io::Result<()> + Send + Sync + 'static,
    ) -> Server {
        Self::accept(Self::bind(addr), move |mut stream, requests| {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
            let Some(request) = read_request(&mut stream) else {
                return;
            };
            // Recorded before the answer goes out: a client that has its answer must find
            // its request in the log (a test reads the log right after the call returns).
            requests.lock().unwrap().push(request.clone());
            let _ = respond(&request, &mut stream);
        })
    }

    /// A server playing both Apple (TSS) and ipsw.me.
    pub fn apple_and_ipswme(tss: Reply, ipswme: Reply) -> Server {
        Self::start(move |r| {
            if r.is_tss() {
                tss.clone()
            } else {
                ipswme.clone()
            }
        })
    }

    /// Keep serving until the test process ends; the address.
    pub fn detach(self) -> SocketAddr {
        let addr = self.addr;
        std::mem::forget(self);
        addr
    }

    /// `http://<addr><path>`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub fn tss_url(&self) -> String {
        tss_url(self.addr)
    }

    pub fn api_url(&self) -> String {
        api_url(self.addr)
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn tss_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(Recorded::is_tss)
            .collect()
    }

    pub fn ipswme_requests(&self) -> Vec<Recorded> {
        self.requests()
            .into_iter()
            .filter(|r| !r.is_tss())
            .collect()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The TSS URL (`--tss-url`) of Apple's stand-in at `addr`.
pub fn tss_url(addr: SocketAddr) -> String {
    format!("http://{addr}/TSS/controller?action=2")
}

/// The ipsw.me base URL (`--api-url`) of its stand-in at `addr`.
pub fn api_url(addr: SocketAddr) -> String {
    format!("http://{addr}/v4")
}

/// A server that accepts connections and never answers (they stay open while it lives).
pub struct SilentServer {
    pub addr: SocketAddr,
    _server: Server,
}

impl SilentServer {
    pub fn start() -> Self {
        let held = Arc::new(Mutex::new(Vec::new()));
        let server = Server::raw(move |stream| held.lock().unwrap().push(stream));
        SilentServer {
            addr: server.addr,
            _server: server,
        }
    }
}

/// A server that answers every connection at once with plain HTTP, whatever it was sent:
/// a TLS client gets bytes that are not a TLS handshake.
pub fn plain_http_responder() -> SocketAddr {
    Server::raw(|mut stream| {
        let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
    })
    .detach()
}

/// A loopback port with nothing listening (bound, then released).
pub fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// A test-only root CA (rcgen), for HTTPS loopback servers the binary trusts through
/// `--ca-file` and nothing else.
pub struct TestCa {
    pub issuer: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        TestCa {
            issuer: rcgen::CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap())
                .unwrap(),
        }
    }

    /// The root certificate as PEM, written to `dir/name`.
    pub fn write_pem(&self, dir: &std::path::Path, name: &str) -> std::path::PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, pem("CERTIFICATE", self.issuer.der())).unwrap();
        path
    }

    /// A server certificate for `names`, signed by this CA, and its key.
    pub fn server_cert(&self, names: &[&str]) -> ServerCert {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair};
        use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "ipswcheck test server");
        params.is_ca = IsCa::NoCa;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
        (cert.der().clone(), key)
    }
}

/// A server certificate and its private key.
pub type ServerCert = (
    rustls::pki_types::CertificateDer<'static>,
    rustls::pki_types::PrivateKeyDer<'static>,
);

/// PEM armour (RFC 7468) around `der`.
pub fn pem(label: &str, der: &[u8]) -> String {
    const TABLE: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = String::new();
    for chunk in der.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(TABLE[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                b64.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).unwrap());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// A TLS server configuration presenting `cert`.
pub fn tls_config(cert: ServerCert) -> Arc<rustls::ServerConfig> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Arc::new(
        rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.0], cert.1)
            .unwrap(),
    )
}

/// A byte stream a handler reads a request from and writes its answer to: a bare TCP
/// connection or TLS over one.
pub trait ReadWrite: Read + Write {}
impl<T: Read + Write> ReadWrite for T {}

impl Server {
    /// HTTPS with `cert` on a fresh loopback port: each connection's handshake, then
    /// `conn` with the TLS stream (on its own thread). Nothing is recorded.
    pub fn tls(
        cert: ServerCert,
        conn: impl Fn(&mut dyn ReadWrite) + Send + Sync + 'static,
    ) -> Server {
        let config = tls_config(cert);
        Server::raw(move |tcp| {
            let _ = tcp.set_read_timeout(Some(Duration::from_secs(10)));
            let Ok(session) = rustls::ServerConnection::new(Arc::clone(&config)) else {
                return;
            };
            let mut tls = rustls::StreamOwned::new(session, tcp);
            conn(&mut tls);
        })
    }
}

/// How a test server sends an answer.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pace {
    /// All of it at once.
    Serve,
    /// The status line and headers one byte a second (then nothing more).
    SlowHeaders,
    /// The headers and the first `n` bytes of the body at once, then the rest one byte a
    /// second, for as long as anyone listens.
    Trickle(usize),
    /// Nothing for `wait`, then the headers, then the body at `rate` bytes a second (a
    /// fifth of that every 200 ms): slow, but never stalled for longer than `wait`.
    Late { wait: Duration, rate: usize },
}

/// The byte range `start..end` of a file of `size` bytes that `request` asks for
/// (`Range: bytes=…`; the whole file without one).
pub fn asked_range(request: &Recorded, size: u64) -> (u64, u64) {
    request
        .header("range")
        .and_then(|r| super::remote::parse_range(r, size))
        .flatten()
        .unwrap_or((0, size))
}

/// Answer with `range` of `bytes` (`206`, `Content-Range`, a strong ETag), at `pace`.
pub fn answer_range(out: &mut dyn ReadWrite, bytes: &[u8], range: (u64, u64), pace: Pace) {
    let body = &bytes[range.0 as usize..range.1 as usize];
    let head = format!(
        "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes {}-{}/{}\r\n\
         Content-Length: {}\r\nETag: \"v1\"\r\nConnection: close\r\n\r\n",
        range.0,
        range.1 - 1,
        bytes.len(),
        body.len()
    );
    let slowly = |out: &mut dyn ReadWrite, bytes: &[u8]| {
        for b in bytes {
            if out.write_all(&[*b]).and_then(|()| out.flush()).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
    };
    match pace {
        Pace::Serve => {
            let _ = out
                .write_all(head.as_bytes())
                .and_then(|()| out.write_all(body))
                .and_then(|()| out.flush());
        }
        Pace::SlowHeaders => slowly(out, head.as_bytes()),
        Pace::Late { wait, rate } => {
            std::thread::sleep(wait);
            if out.write_all(head.as_bytes()).is_err() {
                return;
            }
            for piece in body.chunks((rate / 5).max(1)) {
                if out.write_all(piece).and_then(|()| out.flush()).is_err() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        Pace::Trickle(n) => {
            let n = n.min(body.len());
            if out
                .write_all(head.as_bytes())
                .and_then(|()| out.write_all(&body[..n]))
                .and_then(|()| out.flush())
                .is_err()
            {
                return;
            }
            slowly(out, &body[n..]);
        }
    }
}
