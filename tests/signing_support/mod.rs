//! Loopback stand-ins for Apple's TSS server and ipsw.me, and manifests to ask about.
//!
//! Every server here is a real HTTP server on 127.0.0.1, in-process: the signing code
//! talks to it through its real HTTP stack, and tests never touch the internet.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use ipswcheck::manifest::BuildManifest;
use ipswcheck::signing::SigningOptions;
use plist::{Dictionary, Value};

/// One request as the server received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
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

/// A tiny_http server on 127.0.0.1:0 answering with `handler`, recording every request.
pub struct FakeServer {
    pub addr: SocketAddr,
    server: Arc<tiny_http::Server>,
    requests: Arc<Mutex<Vec<Recorded>>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeServer {
    pub fn start(handler: impl Fn(&Recorded) -> Reply + Send + 'static) -> Self {
        Self::start_on("127.0.0.1:0", handler)
    }

    pub fn start_on(addr: &str, handler: impl Fn(&Recorded) -> Reply + Send + 'static) -> Self {
        let server = Arc::new(tiny_http::Server::http(addr).expect("bind a loopback port"));
        let addr = server.server_addr().to_ip().expect("an IP listener");
        let requests = Arc::new(Mutex::new(Vec::new()));
        let thread = {
            let server = Arc::clone(&server);
            let requests = Arc::clone(&requests);
            std::thread::spawn(move || {
                for mut request in server.incoming_requests() {
                    let mut body = Vec::new();
                    let _ = request.as_reader().read_to_end(&mut body);
                    let recorded = Recorded {
                        method: request.method().to_string(),
                        url: request.url().to_owned(),
                        headers: request
                            .headers()
                            .iter()
                            .map(|h| (h.field.to_string(), h.value.to_string()))
                            .collect(),
                        body,
                    };
                    let reply = handler(&recorded);
                    requests.lock().unwrap().push(recorded);
                    let _ = request.respond(
                        tiny_http::Response::from_data(reply.body).with_status_code(reply.status),
                    );
                }
            })
        };
        FakeServer {
            addr,
            server,
            requests,
            thread: Some(thread),
        }
    }

    /// A server playing both Apple (TSS) and ipsw.me.
    pub fn apple_and_ipswme(tss: Reply, ipswme: Reply) -> Self {
        Self::start(move |r| {
            if r.is_tss() {
                tss.clone()
            } else {
                ipswme.clone()
            }
        })
    }

    pub fn tss_url(&self) -> String {
        format!("http://{}/TSS/controller?action=2", self.addr)
    }

    pub fn api_url(&self) -> String {
        format!("http://{}/v4", self.addr)
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

impl Drop for FakeServer {
    fn drop(&mut self) {
        self.server.unblock();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A server that accepts connections and never answers.
pub struct SilentServer {
    pub addr: SocketAddr,
    _held: Arc<Mutex<Vec<TcpStream>>>,
}

impl SilentServer {
    pub fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let held = Arc::new(Mutex::new(Vec::new()));
        let keep = Arc::clone(&held);
        // The thread lives until the test process ends; it only holds sockets open.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                keep.lock().unwrap().push(stream);
            }
        });
        SilentServer { addr, _held: held }
    }
}

/// A server that answers every connection at once with plain HTTP, whatever it was sent:
/// a TLS client gets bytes that are not a TLS handshake.
pub fn plain_http_responder() -> SocketAddr {
    use std::io::Write as _;
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for mut stream in listener.incoming().flatten() {
            let _ = stream.write_all(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n");
        }
    });
    addr
}

/// A loopback port with nothing listening (bound, then released).
pub fn refused_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap()
}

/// Options pointing at `tss_url`/`api_url`, with an empty hosts file and the given cache.
pub fn options(tss_url: String, api_url: String, cache_dir: Option<&Path>) -> SigningOptions {
    SigningOptions {
        offline: false,
        tss_url,
        api_url,
        timeout: std::time::Duration::from_secs(5),
        cache_dir: cache_dir.map(Path::to_path_buf),
        refresh: false,
        hosts_file: PathBuf::from("/nonexistent/ipswcheck-test/hosts"),
    }
}

pub fn server_options(server: &FakeServer, cache_dir: Option<&Path>) -> SigningOptions {
    options(server.tss_url(), server.api_url(), cache_dir)
}

pub const TICKET_PLIST: &str = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n\
<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n\
<plist version=\"1.0\">\n<dict>\n\t<key>ApImg4Ticket</key>\n\t<data>MIIKbDADFgFJMIIKYw==</data>\n</dict>\n</plist>\n";

/// `STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING=<ticket plist>`.
pub fn signed_body() -> String {
    format!("STATUS=0&MESSAGE=SUCCESS&REQUEST_STRING={TICKET_PLIST}")
}

/// `STATUS=<code>&MESSAGE=<message>`.
pub fn status_body(code: i64, message: &str) -> String {
    format!("STATUS={code}&MESSAGE={message}")
}

pub const NOT_ELIGIBLE: &str = "This device isn't eligible for the requested build.";

/// An ipsw.me v4 device body listing `build` with the given flag and SHA-1, plus another.
pub fn ipswme_body(product_type: &str, build: &str, signed: bool, sha1: &str) -> String {
    serde_json::json!({
        "name": "iPhone 7",
        "identifier": product_type,
        "boards": [{"boardconfig": "d101ap", "platform": "t8010", "cpid": 32784, "bdid": 12}],
        "firmwares": [
            {"identifier": product_type, "version": "15.8", "buildid": "19H370",
             "sha1sum": "ffffffffffffffffffffffffffffffffffffffff", "md5sum": "00", "sha256sum": "00",
             "filesize": 5_000_000_000u64, "url": "https://updates.cdn-apple.com/x.ipsw",
             "releasedate": "2023-01-23T18:00:00Z", "uploaddate": "2023-01-23T18:00:00Z", "signed": true},
            {"identifier": product_type, "version": "15.4", "buildid": build,
             "sha1sum": sha1, "md5sum": "00", "sha256sum": "00",
             "filesize": 4_900_000_000u64, "url": "https://updates.cdn-apple.com/y.ipsw",
             "releasedate": "2022-03-14T17:00:00Z", "uploaddate": "2022-03-14T17:00:00Z", "signed": signed}
        ]
    })
    .to_string()
}

/// `../shared/<rel>` from the crate root. When it is absent the test is skipped with a
/// message — unless `CI=true`, where missing reference data is a failure.
pub fn shared(rel: &str) -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel);
    if path.exists() {
        return Some(path);
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!(
            "{} is missing (CI=true: reference data is required)",
            path.display()
        );
    }
    eprintln!("skipped: {} is not available", path.display());
    None
}

pub fn shared_manifest(rel: &str) -> Option<BuildManifest> {
    let bytes = std::fs::read(shared(rel)?).unwrap();
    Some(BuildManifest::from_bytes(&bytes).expect("a real manifest parses"))
}

/// A small manifest for `product_type` with one Erase identity per board
/// `(device_class, chip_id, board_id)`. Its components exercise every rule of the request
/// builder: what goes in, what is skipped, and the empty Digest of a Trusted entry.
pub fn synthetic_manifest(
    build: &str,
    product_type: &str,
    boards: &[(&str, u32, u32)],
) -> BuildManifest {
    let component = |digest: Option<u8>, trusted: Option<bool>, info: Dictionary| {
        let mut d = Dictionary::new();
        if let Some(b) = digest {
            d.insert("Digest".into(), Value::Data(vec![b; 48]));
        }
        if let Some(t) = trusted {
            d.insert("Trusted".into(), t.into());
        }
        d.insert("Info".into(), Value::Dictionary(info));
        Value::Dictionary(d)
    };
    let info = |path: Option<&str>, rules: bool, ftab: bool| {
        let mut i = Dictionary::new();
        if let Some(p) = path {
            i.insert("Path".into(), p.into());
        }
        if rules {
            i.insert("RestoreRequestRules".into(), Value::Array(vec![]));
        }
        if ftab {
            i.insert("IsFTAB".into(), true.into());
        }
        i
    };
    let identities = boards
        .iter()
        .enumerate()
        .map(|(n, (class, chip, board))| {
            let mut m = Dictionary::new();
            let mut ibss = component(
                Some(1),
                Some(true),
                info(Some("Firmware/dfu/iBSS.im4p"), true, false),
            );
            ibss.as_dictionary_mut()
                .unwrap()
                .insert("BuildString".into(), "iBoot-7459.102.5~1".into());
            m.insert("iBSS".into(), ibss);
            m.insert(
                "OS".into(),
                component(Some(2), Some(true), info(Some("os.dmg"), false, false)),
            );
            m.insert(
                "AOP".into(),
                component(Some(3), Some(false), info(Some("aop.im4p"), true, false)),
            );
            m.insert(
                "ftap".into(),
                component(None, Some(true), info(None, true, false)),
            );
            m.insert(
                "Diags".into(),
                component(Some(4), Some(true), info(Some("diag.im4p"), true, false)),
            );
            m.insert(
                "BaseSystem".into(),
                component(Some(5), Some(true), info(Some("bs.dmg"), true, false)),
            );
            m.insert(
                "Ap,ExclaveOS".into(),
                component(Some(6), Some(true), info(Some("x.im4p"), true, false)),
            );
            m.insert(
                "SE,UpdatePayload".into(),
                component(Some(7), Some(true), info(Some("se.bin"), true, false)),
            );
            m.insert(
                "Rap,RTKitOS".into(),
                component(Some(8), Some(true), info(Some("ftab.bin"), true, true)),
            );
            m.insert(
                "Loose".into(),
                component(Some(9), None, info(Some("loose.bin"), false, false)),
            );
            let mut bb = Dictionary::new();
            bb.insert("PSI-PartialDigest".into(), Value::Data(vec![0; 28]));
            bb.insert(
                "Info".into(),
                Value::Dictionary(info(Some("bb.bbfw"), false, false)),
            );
            m.insert("BasebandFirmware".into(), Value::Dictionary(bb));

            let mut id = Dictionary::new();
            id.insert("ApChipID".into(), format!("{chip:#06x}").into());
            id.insert("ApBoardID".into(), format!("{board:#04x}").into());
            id.insert("ApSecurityDomain".into(), "0x01".into());
            id.insert("UniqueBuildID".into(), Value::Data(vec![n as u8 + 1; 20]));
            id.insert("Ap,OSLongVersion".into(), format!("15.4.{build}").into());
            id.insert("BbChipID".into(), Value::Integer(0x1a0e1u64.into()));
            id.insert(
                "BbProvisioningManifestKeyHash".into(),
                Value::Data(vec![1; 32]),
            );
            let mut idinfo = Dictionary::new();
            idinfo.insert("DeviceClass".into(), (*class).into());
            idinfo.insert("RestoreBehavior".into(), "Erase".into());
            idinfo.insert("Variant".into(), "Customer Erase Install (IPSW)".into());
            id.insert("Info".into(), Value::Dictionary(idinfo));
            id.insert("Manifest".into(), Value::Dictionary(m));
            Value::Dictionary(id)
        })
        .collect();
    let mut root = Dictionary::new();
    root.insert("ProductVersion".into(), "15.4".into());
    root.insert("ProductBuildVersion".into(), build.into());
    root.insert(
        "SupportedProductTypes".into(),
        Value::Array(vec![product_type.into()]),
    );
    root.insert("BuildIdentities".into(), Value::Array(identities));
    let mut xml = Vec::new();
    Value::Dictionary(root).to_writer_xml(&mut xml).unwrap();
    BuildManifest::from_bytes(&xml).expect("the synthetic manifest parses")
}
