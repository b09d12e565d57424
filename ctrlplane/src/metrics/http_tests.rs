//! The metrics HTTP server over 127.0.0.1 (an ephemeral port): the replies to each kind of
//! request, and a scraper that connects and never sends does not hold up another.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{MetricsServer, MAX_REQUEST};

const BODY: &str = "# HELP sluice_build_info b\n# TYPE sluice_build_info gauge\nsluice_build_info{version=\"t\"} 1\n";

struct Running {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    renders: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn start() -> Running {
        let mut server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let addr = server.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let renders = Arc::new(AtomicUsize::new(0));
        let (flag, count) = (stop.clone(), renders.clone());
        let thread = thread::spawn(move || {
            let mut render = || {
                count.fetch_add(1, Ordering::Relaxed);
                BODY.to_owned()
            };
            while !flag.load(Ordering::Relaxed) {
                server.poll(&mut render, Duration::from_millis(20)).unwrap();
            }
        });
        Running { addr, stop, renders, thread: Some(thread) }
    }

    /// Sends `request` and reads the whole reply (the server closes after it).
    fn exchange(&self, request: &[u8]) -> String {
        let mut stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        stream.write_all(request).unwrap();
        let mut reply = String::new();
        stream.read_to_string(&mut reply).unwrap();
        reply
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn status_line(reply: &str) -> &str {
    reply.split("\r\n").next().unwrap()
}

#[test]
fn get_metrics_returns_the_exposition() {
    let server = Running::start();
    let reply = server.exchange(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\n\r\n");
    let expected = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{BODY}",
        BODY.len()
    );
    assert_eq!(reply, expected);
    // A query string is ignored; HEAD has the headers only; HTTP/1.0 is served too.
    assert_eq!(status_line(&server.exchange(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")), "HTTP/1.1 200 OK");
    let head = server.exchange(b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(head.ends_with(&format!("Content-Length: {}\r\nConnection: close\r\n\r\n", BODY.len())), "{head}");
    assert_eq!(server.renders.load(Ordering::Relaxed), 3);
}

#[test]
fn other_requests_get_their_status() {
    let server = Running::start();
    assert_eq!(status_line(&server.exchange(b"GET /other HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
    assert_eq!(status_line(&server.exchange(b"GET / HTTP/1.1\r\n\r\n")), "HTTP/1.1 404 Not Found");
    let post = server.exchange(b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(status_line(&post), "HTTP/1.1 405 Method Not Allowed");
    assert!(post.contains("\r\nAllow: GET, HEAD\r\n"), "{post}");
    // A body the server never reads does not cut the reply short.
    let with_body = server.exchange(b"PUT /metrics HTTP/1.1\r\nContent-Length: 5000\r\n\r\n").len();
    assert!(with_body > 0);
    let mut put = b"PUT /metrics HTTP/1.1\r\nContent-Length: 20000\r\n\r\n".to_vec();
    put.extend_from_slice(&[b'x'; 20_000]);
    assert_eq!(status_line(&server.exchange(&put)), "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(status_line(&server.exchange(b"hello there\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    assert_eq!(status_line(&server.exchange(b"GET /metrics SPDY/3\r\n\r\n")), "HTTP/1.1 400 Bad Request");
    assert_eq!(status_line(&server.exchange(b"\x16\x03\x01\x02\x00\x01\n\n")), "HTTP/1.1 400 Bad Request");
    let huge = format!("GET /metrics HTTP/1.1\r\nX-Pad: {}\r\n\r\n", "a".repeat(MAX_REQUEST));
    assert_eq!(status_line(&server.exchange(huge.as_bytes())), "HTTP/1.1 431 Request Header Fields Too Large");
    assert_eq!(server.renders.load(Ordering::Relaxed), 0, "nothing rendered for a refused request");
}

#[test]
fn a_silent_scraper_does_not_hold_up_another() {
    let server = Running::start();
    let _silent = TcpStream::connect(server.addr).unwrap();
    let mut partial = TcpStream::connect(server.addr).unwrap();
    partial.write_all(b"GET /metr").unwrap();
    for _ in 0..3 {
        assert_eq!(status_line(&server.exchange(b"GET /metrics HTTP/1.1\r\n\r\n")), "HTTP/1.1 200 OK");
    }
    // The partial request completes and is served.
    partial.write_all(b"ics HTTP/1.1\r\n\r\n").unwrap();
    partial.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reply = String::new();
    partial.read_to_string(&mut reply).unwrap();
    assert_eq!(status_line(&reply), "HTTP/1.1 200 OK");
}
