//! What an http check says and what it reads back: the request, and the status line of the
//! reply. Pure functions over bytes, so that every reply a backend could send is testable
//! without a socket. Nothing here may panic on what a backend sends.

use std::net::SocketAddrV4;

/// `GET {path} HTTP/1.0` with the headers every check sends. Bytes of `path` that would end
/// or split the request line (controls, space, DEL, non-ASCII) are percent-encoded.
pub(super) fn request(path: &str, backend: SocketAddrV4) -> Vec<u8> {
    let mut out = Vec::with_capacity(96 + path.len());
    out.extend_from_slice(b"GET ");
    for &b in path.as_bytes() {
        if b <= b' ' || b >= 0x7f {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]);
        } else {
            out.push(b);
        }
    }
    out.extend_from_slice(b" HTTP/1.0\r\nHost: ");
    out.extend_from_slice(backend.to_string().as_bytes());
    out.extend_from_slice(b"\r\nUser-Agent: sluice-health\r\nConnection: close\r\n\r\n");
    out
}

/// What the bytes read so far say about the status line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum StatusLine {
    /// No line end yet: read more.
    Incomplete,
    /// `HTTP/x.y NNN ...`: the three digits of the status code.
    Status([u8; 3]),
    /// A complete first line that is not a status line.
    Malformed,
}

/// Looks for the status line at the start of `reply`. With `closed`, the peer has finished
/// and whatever was read is the whole line.
pub(super) fn status_line(reply: &[u8], closed: bool) -> StatusLine {
    let line = match reply.iter().position(|&b| b == b'\n') {
        Some(end) => &reply[..end],
        None if closed => reply,
        None => return StatusLine::Incomplete,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    parse(line).map_or(StatusLine::Malformed, StatusLine::Status)
}

/// `HTTP/<digit>.<digit> SP <3 digits> [SP reason]`, as RFC 9112 section 4 has it.
fn parse(line: &[u8]) -> Option<[u8; 3]> {
    let rest = line.strip_prefix(b"HTTP/")?;
    let (version, rest) = split_at_checked(rest, 3)?;
    if !(version[0].is_ascii_digit() && version[1] == b'.' && version[2].is_ascii_digit()) {
        return None;
    }
    let rest = rest.strip_prefix(b" ")?;
    let (code, rest) = split_at_checked(rest, 3)?;
    if !code.iter().all(u8::is_ascii_digit) || !(rest.is_empty() || rest[0] == b' ') {
        return None;
    }
    Some([code[0], code[1], code[2]])
}

/// `slice::split_at_checked`, which is newer than the workspace's minimum Rust.
fn split_at_checked(bytes: &[u8], at: usize) -> Option<(&[u8], &[u8])> {
    (bytes.len() >= at).then(|| bytes.split_at(at))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backend() -> SocketAddrV4 {
        "198.18.1.2:8080".parse().unwrap()
    }

    #[test]
    fn request_has_the_documented_form() {
        let text = String::from_utf8(request("/healthz", backend())).unwrap();
        assert_eq!(
            text,
            "GET /healthz HTTP/1.0\r\nHost: 198.18.1.2:8080\r\nUser-Agent: sluice-health\r\nConnection: close\r\n\r\n"
        );
    }

    #[test]
    fn request_line_cannot_be_split_by_the_path() {
        let text = String::from_utf8(request("/a b\r\nX: y\u{e9}", backend())).unwrap();
        assert!(text.starts_with("GET /a%20b%0D%0AX:%20y%C3%A9 HTTP/1.0\r\n"), "{text}");
    }

    #[test]
    fn status_codes_are_read_from_well_formed_lines() {
        assert_eq!(status_line(b"HTTP/1.1 200 OK\r\nServer: x\r\n", false), StatusLine::Status(*b"200"));
        assert_eq!(status_line(b"HTTP/1.0 503\r\n", false), StatusLine::Status(*b"503"));
        assert_eq!(status_line(b"HTTP/1.0 404 Not Found\n", false), StatusLine::Status(*b"404"));
        assert_eq!(status_line(b"HTTP/1.0 204 No Content", true), StatusLine::Status(*b"204"));
    }

    #[test]
    fn partial_lines_ask_for_more() {
        for partial in [&b""[..], b"H", b"HTTP/1.1 2", b"HTTP/1.1 200 OK\r"] {
            assert_eq!(status_line(partial, false), StatusLine::Incomplete, "{partial:?}");
        }
    }

    #[test]
    fn anything_else_is_malformed_and_never_panics() {
        let bad: [&[u8]; 9] = [
            b"\n",
            b"SSH-2.0-OpenSSH\r\n",
            b"HTTP/1.1 20\r\n",
            b"HTTP/1.1 2000 OK\r\n",
            b"HTTP/1.1  200 OK\r\n",
            b"HTTP/x.1 200 OK\r\n",
            b"HTTP/1.1 2x0 OK\r\n",
            b"\xff\xfe\x00\x01\n",
            b"HTTP/1.1",
        ];
        for reply in bad {
            assert_eq!(status_line(reply, true), StatusLine::Malformed, "{reply:?}");
        }
        assert_eq!(status_line(b"", true), StatusLine::Malformed);
        // Every prefix of a reply, complete or not, is handled.
        let reply = b"HTTP/1.1 200 OK\r\n";
        for end in 0..=reply.len() {
            let _ = status_line(&reply[..end], false);
            let _ = status_line(&reply[..end], true);
        }
    }
}
