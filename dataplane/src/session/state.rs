//! The state machine that picks a session's timeout: LVS's TCP states (those with a timeout of
//! their own), and for UDP whether the flow is confirmed. The balancer sees both directions
//! (FULLNAT), so it follows the handshake from the backend's SYN+ACK and the teardown from FIN
//! or RST on either side.
//!
//! ```text
//!   client SYN ─> TcpSynSent ─(reply SYN+ACK, or client ACK after a reply)─> TcpEstablished
//!   TcpEstablished ─ client FIN ─> TcpFinWait ──── backend FIN ─┐
//!   TcpEstablished ─ backend FIN ─> TcpCloseWait ── client FIN ─┴─> TcpLastAck ─ ACK ─> TcpTimeWait
//!   RST from either side, in any TCP state ─> TcpClosing;  FIN before the handshake ─> TcpClosing
//!   UdpNew ─ a second client datagram ─> Udp
//! ```
//! A half-closed connection (`TcpFinWait`, `TcpCloseWait`) still carries data the open way: a
//! state only picks a timeout, it never stops a packet. A new client SYN once the client has
//! closed or the connection was reset (the client reusing its port) is reported as
//! `Touch::Reopen`: the caller removes the session and creates a new one, which may go to
//! another backend.
//!
//! Unconfirmed sessions (`TcpSynSent`, `UdpNew`: what a flood of spoofed sources creates) have
//! short timeouts and are the first a full table or port pool gives up (`State::unconfirmed`).

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

/// Where a session is in its life; each state has its own idle timeout (`Timeouts`). The
/// numbers are part of the sync protocol (`docs/sync-protocol.md`): never renumber.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum State {
    /// A confirmed flow of a protocol without handshake (UDP): the client sent more than one
    /// datagram. Refreshed by traffic either way.
    #[default]
    Udp = 0,
    /// Client SYN seen, handshake not finished.
    TcpSynSent = 1,
    TcpEstablished = 2,
    /// Reset by either side (or closed before the handshake finished).
    TcpClosing = 3,
    /// A UDP flow of one client datagram so far (answered or not).
    UdpNew = 4,
    /// The client sent FIN: the backend may still send.
    TcpFinWait = 5,
    /// The backend sent FIN: the client may still send.
    TcpCloseWait = 6,
    /// Both sides sent FIN: waiting for the last ACK.
    TcpLastAck = 7,
    /// Closed both ways and acknowledged: late segments still find the session.
    TcpTimeWait = 8,
}

impl State {
    /// Every state, at the index of its number.
    pub const ALL: [State; 9] = [
        State::Udp,
        State::TcpSynSent,
        State::TcpEstablished,
        State::TcpClosing,
        State::UdpNew,
        State::TcpFinWait,
        State::TcpCloseWait,
        State::TcpLastAck,
        State::TcpTimeWait,
    ];

    /// The state of a session created by a packet of protocol `proto` with `tcp_flags`:
    /// a SYN opens `TcpSynSent`; a FIN `TcpFinWait`, an RST `TcpClosing`; any other TCP packet
    /// is a flow picked up mid-stream (after a restart, say) and opens `TcpEstablished`. Other
    /// protocols open `UdpNew`. Whether to create sessions from non-SYN packets at all is the
    /// caller's policy.
    pub const fn initial(proto: u8, tcp_flags: u8) -> State {
        if proto != TCP {
            State::UdpNew
        } else if tcp_flags & RST != 0 {
            State::TcpClosing
        } else if tcp_flags & FIN != 0 {
            State::TcpFinWait
        } else if tcp_flags & SYN != 0 {
            State::TcpSynSent
        } else {
            State::TcpEstablished
        }
    }

    /// For listings and metric labels (LVS's names, lower case).
    pub const fn name(self) -> &'static str {
        match self {
            State::Udp => "udp",
            State::UdpNew => "udp_new",
            State::TcpSynSent => "syn_sent",
            State::TcpEstablished => "established",
            State::TcpFinWait => "fin_wait",
            State::TcpCloseWait => "close_wait",
            State::TcpLastAck => "last_ack",
            State::TcpTimeWait => "time_wait",
            State::TcpClosing => "closing",
        }
    }

    /// Whether the flow has yet to show it is real: no finished handshake, or one datagram.
    /// These go first when the table or a port pool is full.
    #[inline(always)]
    pub const fn unconfirmed(self) -> bool {
        matches!(self, State::TcpSynSent | State::UdpNew)
    }

    /// How far along its life a state is, for merging what two nodes saw: a state never goes
    /// back to a lower rank (a record sent before a FIN seen here is stale).
    pub const fn rank(self) -> u8 {
        match self {
            State::UdpNew | State::TcpSynSent => 0,
            State::Udp | State::TcpEstablished => 1,
            State::TcpFinWait | State::TcpCloseWait => 2,
            State::TcpLastAck => 3,
            State::TcpTimeWait => 4,
            State::TcpClosing => 5,
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
    /// A client SYN on a connection the client closed or that was reset: the client reuses its
    /// port for a new connection. Nothing was recorded; remove the session and create a new
    /// one for this packet.
    Reopen,
}

/// Whether a packet with `flags` leaves `state` as it is whichever way it goes and whatever
/// was seen before: what `next_state` answers for UDP and for an established connection
/// without FIN or RST, told in two compares (tested against it below).
#[inline(always)]
pub(super) fn keeps(state: State, flags: u8) -> bool {
    state == State::Udp || (state == State::TcpEstablished && flags & (FIN | RST) == 0)
}

/// The state after a packet in `dir` with `flags`, or `None` for a reopen.
/// `reply_seen`: whether a packet came back from the backend before this one;
/// `forward_seen`: whether the client sent one before this one.
#[inline]
pub(super) fn next_state(
    state: State,
    dir: Direction,
    flags: u8,
    reply_seen: bool,
    forward_seen: bool,
) -> Option<State> {
    use Direction::{Forward, Reply};
    let syn_only = flags & (SYN | ACK | RST) == SYN;
    let fin = flags & FIN != 0;
    Some(match state {
        State::Udp => State::Udp,
        State::UdpNew if dir == Forward && forward_seen => State::Udp,
        State::UdpNew => State::UdpNew,
        State::TcpClosing | State::TcpTimeWait | State::TcpLastAck | State::TcpFinWait
            if dir == Forward && syn_only =>
        {
            return None
        }
        _ if flags & RST != 0 => State::TcpClosing,
        State::TcpClosing => State::TcpClosing,
        State::TcpSynSent if fin => State::TcpClosing,
        State::TcpSynSent => {
            let synack = dir == Reply && flags & (SYN | ACK) == SYN | ACK;
            let client_ack = dir == Forward && flags & (SYN | ACK) == ACK && reply_seen;
            if synack || client_ack {
                State::TcpEstablished
            } else {
                State::TcpSynSent
            }
        }
        State::TcpEstablished if fin => match dir {
            Forward => State::TcpFinWait,
            Reply => State::TcpCloseWait,
        },
        State::TcpEstablished => State::TcpEstablished,
        State::TcpFinWait if fin && dir == Reply => State::TcpLastAck,
        State::TcpFinWait => State::TcpFinWait,
        State::TcpCloseWait if fin && dir == Forward => State::TcpLastAck,
        State::TcpCloseWait => State::TcpCloseWait,
        // Both FINs are out: the next segment without FIN is the last ACK (a retransmitted FIN
        // keeps waiting).
        State::TcpLastAck if !fin && flags & ACK != 0 => State::TcpTimeWait,
        State::TcpLastAck => State::TcpLastAck,
        State::TcpTimeWait => State::TcpTimeWait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use tcp_flags::PSH;
    use Direction::{Forward, Reply};

    #[test]
    fn what_keeps_a_state_is_what_the_state_machine_keeps() {
        let mut kept = 0;
        for state in State::ALL {
            for flags in 0..=u8::MAX {
                if !keeps(state, flags) {
                    continue;
                }
                kept += 1;
                for dir in [Forward, Reply] {
                    for (reply_seen, forward_seen) in [(false, false), (false, true), (true, false), (true, true)] {
                        assert_eq!(
                            next_state(state, dir, flags, reply_seen, forward_seen),
                            Some(state),
                            "{state:?} {flags:#x}"
                        );
                    }
                }
            }
        }
        // UDP whatever the flags, established without FIN or RST: a quarter of the flags.
        assert_eq!(kept, 256 + 64);
    }

    fn next(s: State, dir: Direction, flags: u8) -> Option<State> {
        next_state(s, dir, flags, true, true)
    }

    #[test]
    fn initial_states() {
        assert_eq!(State::initial(17, 0), State::UdpNew);
        assert_eq!(State::initial(1, 0), State::UdpNew);
        assert_eq!(State::initial(TCP, SYN), State::TcpSynSent);
        assert_eq!(State::initial(TCP, ACK), State::TcpEstablished);
        assert_eq!(State::initial(TCP, ACK | FIN), State::TcpFinWait);
        assert_eq!(State::initial(TCP, RST), State::TcpClosing);
    }

    #[test]
    fn numbers_and_names_are_stable() {
        for (i, s) in State::ALL.iter().enumerate() {
            assert_eq!(s.index(), i);
        }
        let names: Vec<_> = State::ALL.iter().map(|s| s.name()).collect();
        assert_eq!(
            names,
            ["udp", "syn_sent", "established", "closing", "udp_new", "fin_wait", "close_wait", "last_ack", "time_wait"]
        );
        let unconfirmed: Vec<_> = State::ALL.into_iter().filter(|s| s.unconfirmed()).collect();
        assert_eq!(unconfirmed, [State::TcpSynSent, State::UdpNew]);
    }

    #[test]
    fn handshake_by_synack() {
        let s = State::TcpSynSent;
        assert_eq!(next_state(s, Forward, SYN, false, true), Some(s), "retransmitted SYN");
        let s = next_state(s, Reply, SYN | ACK, false, true).unwrap();
        assert_eq!(s, State::TcpEstablished);
        assert_eq!(next(s, Forward, ACK), Some(State::TcpEstablished));
        assert_eq!(next(s, Forward, SYN), Some(State::TcpEstablished), "no reopen of a live connection");
    }

    #[test]
    fn client_closes_first_and_the_backend_keeps_sending() {
        let s = next(State::TcpEstablished, Forward, FIN | ACK).unwrap();
        assert_eq!(s, State::TcpFinWait);
        for (dir, flags) in [(Reply, ACK), (Reply, PSH | ACK), (Forward, ACK), (Forward, FIN | ACK)] {
            assert_eq!(next(s, dir, flags), Some(State::TcpFinWait), "{dir:?} {flags:#x}: half-closed");
        }
        let s = next(s, Reply, FIN | ACK).unwrap();
        assert_eq!(s, State::TcpLastAck);
        assert_eq!(next(s, Reply, FIN | ACK), Some(State::TcpLastAck), "retransmitted FIN");
        let s = next(s, Forward, ACK).unwrap();
        assert_eq!(s, State::TcpTimeWait);
        assert_eq!(next(s, Forward, ACK), Some(State::TcpTimeWait));
        assert_eq!(next(s, Reply, SYN), Some(State::TcpTimeWait), "only the client reopens");
        assert_eq!(next(s, Forward, SYN), None, "client reuses its port");
    }

    #[test]
    fn backend_closes_first_and_the_client_keeps_sending() {
        let s = next(State::TcpEstablished, Reply, FIN | ACK).unwrap();
        assert_eq!(s, State::TcpCloseWait);
        assert_eq!(next(s, Forward, PSH | ACK), Some(State::TcpCloseWait));
        assert_eq!(next(s, Forward, SYN), Some(State::TcpCloseWait), "the client has not closed");
        let s = next(s, Forward, FIN | ACK).unwrap();
        assert_eq!(s, State::TcpLastAck);
        assert_eq!(next(s, Reply, ACK), Some(State::TcpTimeWait));
    }

    #[test]
    fn a_closed_client_reopens_with_a_syn() {
        for s in [State::TcpFinWait, State::TcpLastAck, State::TcpTimeWait, State::TcpClosing] {
            assert_eq!(next(s, Forward, SYN), None, "{s:?}");
            assert!(next(s, Forward, SYN | ACK).is_some(), "{s:?}: not a new connection");
        }
    }

    #[test]
    fn client_ack_establishes_only_after_a_reply() {
        let s = State::TcpSynSent;
        assert_eq!(next_state(s, Forward, ACK, false, true), Some(State::TcpSynSent));
        assert_eq!(next_state(s, Forward, ACK, true, true), Some(State::TcpEstablished));
        assert_eq!(next_state(s, Forward, SYN | ACK, true, true), Some(State::TcpSynSent));
        assert_eq!(next_state(s, Reply, ACK, true, true), Some(State::TcpSynSent));
        assert_eq!(next_state(s, Forward, FIN, true, true), Some(State::TcpClosing), "closed before it opened");
    }

    #[test]
    fn rst_closes_from_any_tcp_state() {
        let tcp = State::ALL.into_iter().filter(|s| !matches!(s, State::Udp | State::UdpNew));
        for s in tcp {
            for dir in [Forward, Reply] {
                assert_eq!(next_state(s, dir, RST, true, true), Some(State::TcpClosing));
                assert_eq!(next_state(s, dir, RST | ACK, false, false), Some(State::TcpClosing));
            }
        }
    }

    #[test]
    fn udp_is_confirmed_by_a_second_client_datagram() {
        let s = State::UdpNew;
        assert_eq!(next_state(s, Forward, 0, false, false), Some(State::UdpNew), "the first datagram");
        assert_eq!(next_state(s, Reply, 0, false, true), Some(State::UdpNew), "an answer alone does not");
        assert_eq!(next_state(s, Forward, 0, true, true), Some(State::Udp));
        for flags in [0, SYN, FIN, RST, 0xff] {
            assert_eq!(next(State::Udp, Forward, flags), Some(State::Udp));
        }
    }

    #[test]
    fn ranks_never_fall_along_the_machine() {
        for s in State::ALL {
            for dir in [Forward, Reply] {
                for flags in 0..=0x3fu8 {
                    if let Some(to) = next(s, dir, flags) {
                        assert!(to.rank() >= s.rank(), "{s:?} -> {to:?} on {dir:?} {flags:#x}");
                    }
                }
            }
        }
    }
}
