//! BIRD's control socket, spoken directly (what `birdc` does, without a process per call).
//!
//! The protocol is lines of text. On connect BIRD greets with `0001 BIRD 2.0.12 ready.`; a
//! command is one line; the reply is lines each starting with a four-digit code followed by
//! `-` (more lines follow) or a space (the last line of the reply), or with a space alone
//! (one more line of the code before). Codes 0xxx end a command that succeeded, 8xxx and 9xxx
//! one that failed; lines starting with `+` are spontaneous printouts and are skipped.
//!
//! Every call has a deadline: a BIRD that stops answering costs the caller that long at most.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

/// A reply whose text grows past this is refused (a `show protocols` of a few neighbours is
/// a few hundred bytes).
const MAX_REPLY: usize = 1 << 20;

/// One complete reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code of the last line: 0xxx success, 8xxx/9xxx failure.
    pub code: u16,
    /// Every line with the code it belongs to, codes and separators removed.
    pub lines: Vec<(u16, String)>,
}

impl Reply {
    pub fn failed(&self) -> bool {
        self.code >= 8000
    }

    /// The text of the reply, one line each, for messages.
    pub fn text(&self) -> String {
        self.lines.iter().map(|(_, l)| l.trim()).filter(|l| !l.is_empty()).collect::<Vec<_>>().join("; ")
    }
}

/// Reads one reply from the start of `buf`; `None` while it is incomplete, else the reply and
/// the bytes it took. A line that fits no form is an error.
pub fn parse_reply(buf: &str) -> Option<Result<(Reply, usize), String>> {
    let mut lines = Vec::new();
    let mut code = None;
    let mut used = 0;
    while let Some(end) = buf[used..].find('\n') {
        let line = &buf[used..used + end];
        used += end + 1;
        if line.starts_with('+') {
            continue;
        }
        if let Some(rest) = line.strip_prefix(' ') {
            match code {
                Some(c) => lines.push((c, rest.to_owned())),
                None => return Some(Err(format!("BIRD sent a continuation line first: {line:?}"))),
            }
            continue;
        }
        let head = line.get(..4).filter(|d| d.bytes().all(|b| b.is_ascii_digit()));
        let (Some(digits), Some(separator)) = (head, line.as_bytes().get(4)) else {
            return Some(Err(format!("BIRD sent a line without a reply code: {line:?}")));
        };
        let c: u16 = digits.parse().expect("four digits");
        code = Some(c);
        lines.push((c, line[5..].to_owned()));
        match separator {
            b' ' => return Some(Ok((Reply { code: c, lines }, used))),
            b'-' => {}
            _ => return Some(Err(format!("BIRD sent a line without a reply code: {line:?}"))),
        }
    }
    None
}

/// Sends `command` to the BIRD listening on `socket` and returns its reply; fails when BIRD
/// does not answer within `timeout` in all.
pub fn command(socket: &Path, command: &str, timeout: Duration) -> Result<Reply, String> {
    let deadline = Instant::now() + timeout;
    let mut stream =
        UnixStream::connect(socket).map_err(|e| format!("cannot reach BIRD at {}: {e}", socket.display()))?;
    let mut buf = String::new();
    let welcome = read_reply(&mut stream, &mut buf, deadline)?;
    if welcome.code != 1 {
        return Err(format!("BIRD greeted with {}: {}", welcome.code, welcome.text()));
    }
    stream.set_write_timeout(Some(remaining(deadline)?)).map_err(|e| e.to_string())?;
    stream.write_all(format!("{command}\n").as_bytes()).map_err(|e| format!("cannot send to BIRD: {e}"))?;
    read_reply(&mut stream, &mut buf, deadline)
}

fn remaining(deadline: Instant) -> Result<Duration, String> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        Err("BIRD did not answer in time".to_owned())
    } else {
        Ok(left)
    }
}

/// Reads until `buf` holds a whole reply, which it removes from `buf` and returns.
fn read_reply(stream: &mut UnixStream, buf: &mut String, deadline: Instant) -> Result<Reply, String> {
    let mut chunk = [0u8; 4096];
    loop {
        if let Some(parsed) = parse_reply(buf) {
            let (reply, used) = parsed?;
            buf.drain(..used);
            return Ok(reply);
        }
        if buf.len() > MAX_REPLY {
            return Err("BIRD's reply is too long".to_owned());
        }
        stream.set_read_timeout(Some(remaining(deadline)?)).map_err(|e| e.to_string())?;
        match stream.read(&mut chunk) {
            Ok(0) => return Err("BIRD closed its control socket".to_owned()),
            Ok(n) => buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return Err("BIRD did not answer in time".to_owned())
            }
            Err(e) => return Err(format!("cannot read from BIRD: {e}")),
        }
    }
}

/// `configure`: BIRD re-reads its files and changes what changed, without resetting sessions
/// of protocols whose configuration stayed the same.
pub fn configure(socket: &Path, timeout: Duration) -> Result<(), String> {
    let reply = command(socket, "configure", timeout)?;
    match reply.code {
        // Reconfigured; in progress; queued behind another; confirmed; nothing to do.
        3 | 4 | 5 | 18 | 19 | 20 => Ok(()),
        _ => Err(format!("BIRD refused its new configuration: {}", reply.text())),
    }
}

/// One row of `show protocols`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProtocolRow {
    pub name: String,
    /// `BGP`, `Static`, `BFD`, `Device`.
    pub proto: String,
    /// `up`, `start`, `down`, ...
    pub state: String,
    /// For BGP the session state (`Established`, `Active`, `Connect`, `Idle`, ...) and what
    /// went wrong last, as BIRD words it.
    pub info: String,
}

impl ProtocolRow {
    /// A BGP session that is up.
    pub fn established(&self) -> bool {
        self.state == "up" && self.info.starts_with("Established")
    }
}

/// The rows of a `show protocols` reply (table heading 2002 skipped).
pub fn parse_protocols(reply: &Reply) -> Vec<ProtocolRow> {
    reply
        .lines
        .iter()
        .filter(|(code, _)| *code == 1002)
        .filter_map(|(_, line)| {
            // Name Proto Table State Since Info: Since is one word ("13:03:15.462") in BIRD's
            // default time format, Info the rest of the line.
            let mut words = line.split_whitespace();
            let name = words.next()?.to_owned();
            let proto = words.next()?.to_owned();
            let _table = words.next()?;
            let state = words.next()?.to_owned();
            let _since = words.next();
            let info = words.collect::<Vec<_>>().join(" ");
            Some(ProtocolRow { name, proto, state, info })
        })
        .collect()
}

#[cfg(test)]
mod tests;
