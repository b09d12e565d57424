//! The API server over a real Unix socket in a temporary directory: clients that stall do not
//! stall others, a malformed line is answered and the connection goes on, the socket file's
//! mode and lifetime, and the client's `call`.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::{json, Value};

use super::{call, ApiServer, Request, MAX_LINE};

/// A directory of its own under the system's temporary directory, removed on drop.
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    pub(crate) fn new() -> TempDir {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("sluice-api-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub(crate) fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn handle(request: Request) -> Result<Value, String> {
    match request {
        Request::Status => Ok(json!({"sessions": 3})),
        Request::Sessions { service: Some(name), .. } if name == "big" => Ok(json!("x".repeat(256 * 1024))),
        Request::Sessions { service, .. } => Err(format!("no service `{}`", service.unwrap_or_default())),
        other => Ok(json!(other.command())),
    }
}

/// Serves `server` on a thread, polling with short waits, until the returned flag is set.
fn serve(mut server: ApiServer) -> (Arc<AtomicBool>, JoinHandle<ApiServer>) {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    let thread = thread::spawn(move || {
        while !flag.load(Ordering::Relaxed) {
            server.poll(&mut handle, Duration::from_millis(20)).unwrap();
        }
        server
    });
    (stop, thread)
}

fn connect(path: &Path) -> (UnixStream, BufReader<UnixStream>) {
    let stream = UnixStream::connect(path).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn ask(stream: &mut UnixStream, reader: &mut BufReader<UnixStream>, line: &str) -> String {
    stream.write_all(line.as_bytes()).unwrap();
    let mut reply = String::new();
    reader.read_line(&mut reply).unwrap();
    reply
}

#[test]
fn a_silent_client_does_not_stall_another() {
    let dir = TempDir::new();
    let path = dir.join("sluice.sock");
    let (stop, thread) = serve(ApiServer::bind(&path).unwrap());

    // Connects and sends nothing; then one that sends half a line and stops.
    let _silent = UnixStream::connect(&path).unwrap();
    let mut partial = UnixStream::connect(&path).unwrap();
    partial.write_all(b"{\"cmd\":\"sta").unwrap();
    // Sends requests and never reads the replies, a large one among them.
    let mut deaf = UnixStream::connect(&path).unwrap();
    for _ in 0..50 {
        deaf.write_all(b"{\"cmd\":\"sessions\",\"service\":\"big\"}\n").unwrap();
    }

    let (mut stream, mut reader) = connect(&path);
    for _ in 0..3 {
        assert_eq!(
            ask(&mut stream, &mut reader, "{\"cmd\":\"status\"}\n"),
            "{\"ok\":true,\"data\":{\"sessions\":3}}\n"
        );
    }
    // The half line completes later and is answered.
    partial.write_all(b"tus\"}\n").unwrap();
    partial.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    BufReader::new(&partial).read_line(&mut reply).unwrap();
    assert_eq!(reply, "{\"ok\":true,\"data\":{\"sessions\":3}}\n");

    stop.store(true, Ordering::Relaxed);
    let server = thread.join().unwrap();
    assert_eq!(server.clients(), 4);
}

#[test]
fn a_malformed_line_is_answered_and_the_connection_goes_on() {
    let dir = TempDir::new();
    let path = dir.join("sluice.sock");
    let (stop, thread) = serve(ApiServer::bind(&path).unwrap());
    let (mut stream, mut reader) = connect(&path);

    assert_eq!(
        ask(&mut stream, &mut reader, "{\"cmd\":\"launch\"}\n"),
        "{\"ok\":false,\"error\":\"unknown cmd `launch` (expected one of status, services, backend, sessions, reload, drain-node, undrain-node)\"}\n"
    );
    assert_eq!(
        ask(&mut stream, &mut reader, "not json\r\n"),
        "{\"ok\":false,\"error\":\"bad JSON: expected ident at line 1 column 2\"}\n"
    );
    assert_eq!(
        ask(&mut stream, &mut reader, "{\"cmd\":\"sessions\",\"service\":\"x\"}\n"),
        "{\"ok\":false,\"error\":\"no service `x`\"}\n"
    );
    // Two requests in one write: two replies, in order.
    stream.write_all(b"{\"cmd\":\"reload\"}\n{\"cmd\":\"services\"}\n").unwrap();
    let mut first = String::new();
    let mut second = String::new();
    reader.read_line(&mut first).unwrap();
    reader.read_line(&mut second).unwrap();
    assert_eq!(
        (first.as_str(), second.as_str()),
        ("{\"ok\":true,\"data\":\"reload\"}\n", "{\"ok\":true,\"data\":\"services\"}\n")
    );

    // A last line without its newline is still answered when the client shuts its side.
    stream.write_all(b"{\"cmd\":\"status\"}").unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "{\"ok\":true,\"data\":{\"sessions\":3}}\n");

    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

#[test]
fn an_overlong_line_is_refused_and_the_connection_closed() {
    let dir = TempDir::new();
    let path = dir.join("sluice.sock");
    let (stop, thread) = serve(ApiServer::bind(&path).unwrap());
    let (mut stream, mut reader) = connect(&path);
    let long = vec![b'x'; MAX_LINE + 10_000];
    // The server may close before taking all of it: a failed write is fine here.
    let _ = stream.write_all(&long);
    let mut rest = String::new();
    let _ = reader.read_to_string(&mut rest);
    assert_eq!(rest, "{\"ok\":false,\"error\":\"request line longer than 65536 bytes\"}\n");
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

#[test]
fn the_socket_file_is_private_and_removed_on_drop() {
    let dir = TempDir::new();
    let path = dir.join("run/sluice/sluice.sock");
    let server = ApiServer::bind(&path).unwrap();
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&dir.join("run/sluice")), 0o755, "the directory bind made");
    drop(server);
    assert!(!path.exists());
}

#[test]
fn bind_replaces_a_stale_socket_but_not_a_live_server() {
    let dir = TempDir::new();
    let path = dir.join("sluice.sock");
    // A listener that went away without removing its file leaves a stale socket.
    drop(UnixListener::bind(&path).unwrap());
    assert!(path.exists());
    let server = ApiServer::bind(&path).unwrap();

    let err = ApiServer::bind(&path).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    assert!(err.to_string().contains("another server is listening on"), "{err}");
    drop(server);

    std::fs::write(&path, "not a socket").unwrap();
    let err = ApiServer::bind(&path).unwrap_err();
    assert!(err.to_string().ends_with("exists and is not a socket"), "{err}");
    assert!(path.exists(), "a file that is not a socket is left alone");
}

#[test]
fn call_gets_data_or_the_error() {
    let dir = TempDir::new();
    let path = dir.join("sluice.sock");
    let (stop, thread) = serve(ApiServer::bind(&path).unwrap());
    let timeout = Duration::from_secs(5);
    assert_eq!(call(&path, &Request::Status, timeout), Ok(json!({"sessions": 3})));
    assert_eq!(
        call(&path, &Request::Sessions { service: Some("nope".into()), limit: None }, timeout),
        Err("no service `nope`".into())
    );
    let big = call(&path, &Request::Sessions { service: Some("big".into()), limit: None }, timeout).unwrap();
    assert_eq!(big.as_str().map(str::len), Some(256 * 1024));
    stop.store(true, Ordering::Relaxed);
    thread.join().unwrap();
}

#[test]
fn call_says_when_the_daemon_is_not_there_or_silent() {
    let dir = TempDir::new();
    let path = dir.join("sluice.sock");
    let err = call(&path, &Request::Status, Duration::from_secs(1)).unwrap_err();
    assert!(err.starts_with(&format!("cannot connect to {}: ", path.display())), "{err}");
    assert!(err.ends_with("(is sluice running?)"), "{err}");

    // Bound but never polled: the connection is queued and no reply comes.
    let _server = ApiServer::bind(&path).unwrap();
    let err = call(&path, &Request::Status, Duration::from_millis(200)).unwrap_err();
    assert_eq!(err, format!("no reply from {} within 200ms", path.display()));
}
