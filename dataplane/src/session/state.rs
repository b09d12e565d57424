//! The TCP state machine that picks a session's timeout: LVS's, simplified to the states that
//! have a timeout of their own. The balancer sees both directions (FULLNAT), so it follows the
//! handshake from the backend's SYN+ACK and the teardown from FIN or RST on either side.
//!
//! ```text
//!   client SYN ──> TcpSynSent ──(reply SYN+ACK, or client ACK after any reply)──> TcpEstablished
//!                      │                                                             │
//!                      └────────────── FIN or RST from either side ──────────────────┴─> TcpClosing
//! ```
//! Nothing leaves `TcpClosing` but expiry. A new client SYN on a closing session (the client
//! reusing its port) is reported as `Touch::Reopen`: the caller removes the session and creates
//! a new one, which may go to another backend.

use super::Direction;

/// TCP header flag bits, as in the 13th byte of the TCP header.
pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

use tcp_flags::{ACK, FIN, RST, SYN};

/// The IP protocol number of TCP (`wire::ipv4::protocol::TCP`); every other protocol is
/// tracked like UDP.
const TCP: u8 = 6;

/// Where a session is in its life; each state has its own idle timeout (`Timeouts`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum State {
    /// Any non-TCP protocol: refreshed by traffic either way, no handshake.
    #[default]
    Udp = 0,
    TcpSynSent = 1,
    TcpEstablished = 2,
    TcpClosing = 3,
}

impl State {
    pub const ALL: [State; 4] = [State::Udp, State::TcpSynSent, State::TcpEstablished, State::TcpClosing];

    /// The state of a session created by a packet of protocol `proto` with `tcp_flags`:
    /// a SYN opens `TcpSynSent`; FIN or RST `TcpClosing`; any other TCP packet is a flow
    /// picked up mid-stream (after a restart, say) and opens `TcpEstablished`. Whether to
    /// create sessions from non-SYN packets at all is the caller's policy.
    pub const fn initial(proto: u8, tcp_flags: u8) -> State {
        if proto != TCP {
            State::Udp
        } else if tcp_flags & (FIN | RST) != 0 {
            State::TcpClosing
        } else if tcp_flags & SYN != 0 {
            State::TcpSynSent
        } else {
            State::TcpEstablished
        }
    }

    /// For listings and metric labels.
    pub const fn name(self) -> &'static str {
        match self {
            State::Udp => "udp",
            State::TcpSynSent => "syn_sent",
            State::TcpEstablished => "established",
            State::TcpClosing => "closing",
        }
    }

    #[inline(always)]
    pub(super) const fn index(self) -> usize {
        self as usize
    }
}

/// What `SessionTable::touch` found.
#[must_use = "a Reopen asks the caller to remove the session and create a new one"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    /// Recorded: counters, last seen, and the state transition if any.
    Ok,
    /// A client SYN on a closing session: the client reuses its port for a new connection.
    /// Nothing was recorded; remove the session and create a new one for this packet.
    Reopen,
}

/// The state after a packet in `dir` with `flags`, or `None` for a reopen.
/// `reply_seen`: whether a packet came back from the backend before this one.
#[inline]
pub(super) fn next_state(state: State, dir: Direction, flags: u8, reply_seen: bool) -> Option<State> {
    let syn_only = flags & (SYN | ACK | RST) == SYN;
    Some(match state {
        State::Udp => State::Udp,
        State::TcpClosing if dir == Direction::Forward && syn_only => return None,
        State::TcpClosing => State::TcpClosing,
        _ if flags & (FIN | RST) != 0 => State::TcpClosing,
        State::TcpSynSent => {
            let synack = dir == Direction::Reply && flags & (SYN | ACK) == SYN | ACK;
            let client_ack = dir == Direction::Forward && flags & (SYN | ACK) == ACK && reply_seen;
            if synack || client_ack {
                State::TcpEstablished
            } else {
                State::TcpSynSent
            }
        }
        State::TcpEstablished => State::TcpEstablished,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use Direction::{Forward, Reply};

    #[test]
    fn initial_states() {
        assert_eq!(State::initial(17, 0), State::Udp);
        assert_eq!(State::initial(1, 0), State::Udp);
        assert_eq!(State::initial(TCP, SYN), State::TcpSynSent);
        assert_eq!(State::initial(TCP, ACK), State::TcpEstablished);
        assert_eq!(State::initial(TCP, ACK | FIN), State::TcpClosing);
        assert_eq!(State::initial(TCP, RST), State::TcpClosing);
    }

    #[test]
    fn handshake_by_synack_then_close() {
        let s = State::TcpSynSent;
        assert_eq!(next_state(s, Forward, SYN, false), Some(State::TcpSynSent), "retransmitted SYN");
        let s = next_state(s, Reply, SYN | ACK, false).unwrap();
        assert_eq!(s, State::TcpEstablished);
        assert_eq!(next_state(s, Forward, ACK, true), Some(State::TcpEstablished));
        assert_eq!(next_state(s, Forward, SYN, true), Some(State::TcpEstablished));
        let s = next_state(s, Reply, FIN | ACK, true).unwrap();
        assert_eq!(s, State::TcpClosing);
        assert_eq!(next_state(s, Forward, FIN | ACK, true), Some(State::TcpClosing));
        assert_eq!(next_state(s, Forward, ACK, true), Some(State::TcpClosing));
        assert_eq!(next_state(s, Reply, SYN, true), Some(State::TcpClosing), "only the client reopens");
        assert_eq!(next_state(s, Forward, SYN, true), None, "client reuses its port");
    }

    #[test]
    fn client_ack_establishes_only_after_a_reply() {
        let s = State::TcpSynSent;
        assert_eq!(next_state(s, Forward, ACK, false), Some(State::TcpSynSent));
        assert_eq!(next_state(s, Forward, ACK, true), Some(State::TcpEstablished));
        assert_eq!(next_state(s, Forward, SYN | ACK, true), Some(State::TcpSynSent));
        assert_eq!(next_state(s, Reply, ACK, true), Some(State::TcpSynSent));
    }

    #[test]
    fn rst_closes_from_any_tcp_state() {
        for s in [State::TcpSynSent, State::TcpEstablished, State::TcpClosing] {
            for dir in [Forward, Reply] {
                assert_eq!(next_state(s, dir, RST, true), Some(State::TcpClosing));
                assert_eq!(next_state(s, dir, RST | ACK, false), Some(State::TcpClosing));
            }
        }
    }

    #[test]
    fn udp_ignores_flags() {
        for flags in [0, SYN, FIN, RST, 0xff] {
            assert_eq!(next_state(State::Udp, Forward, flags, false), Some(State::Udp));
        }
    }
}
