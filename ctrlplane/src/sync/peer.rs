//! One peer's side of the sync protocol, as plain state with the time passed in: what to make
//! of a message it sent (epochs, replay, acknowledgements, its reliable stream), and what to
//! send it (records in batches, resends, hellos, acknowledgements, bulk transfers).
//!
//! - Epochs: a message from an older epoch of the peer is stale; one from a newer epoch means
//!   the peer restarted, and both directions start afresh.
//! - Replay: every message has its own `seq`; a window of the last 64 seqs refuses repeats.
//! - The reliable stream: sessions messages have a `data_seq`; the receiver acknowledges the
//!   highest contiguous one and a bitmap of the 64 after it, in every message it sends; the
//!   sender keeps at most `MAX_UNACKED` messages in flight and resends each after its timeout
//!   (doubling). Records wait in a queue of at most `MAX_QUEUED` for room in the window;
//!   beyond that they are counted as overflow and the peer is resynced by a bulk transfer.
//! - Bulk: a peer that wants our whole table says so in its hellos; we walk our table into the
//!   stream and end the walk with a message flagged `BULK_DONE`. We want every peer's table
//!   once, at our start.

use std::collections::VecDeque;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use super::wire::{flags, Body, Header, Hello, Message, SessionRecord, MAX_RECORDS};

/// Sessions messages in flight to one peer at most.
pub const MAX_UNACKED: usize = 256;
/// Records waiting for room in the window at most; more is overflow.
pub const MAX_QUEUED: usize = 1 << 18;
/// A batch goes out when full or this old.
pub const FLUSH_AFTER: Duration = Duration::from_millis(10);
/// Received data is acknowledged within this, by a hello if nothing else goes the peer's way.
pub const ACK_AFTER: Duration = Duration::from_millis(5);
const RTO_FIRST: Duration = Duration::from_millis(200);
const RTO_MAX: Duration = Duration::from_secs(2);
const WINDOW: u64 = 64;

/// Why a message from a peer changed nothing; each is counted under its own reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// From an older epoch of the peer.
    StaleEpoch,
    /// A `seq` seen before, or too old for the window.
    Replay,
    /// Data too far ahead of what was received in order (the sender will resend it).
    OutOfWindow,
}

impl Refused {
    pub fn reason(self) -> &'static str {
        match self {
            Refused::StaleEpoch => "stale_epoch",
            Refused::Replay => "replay",
            Refused::OutOfWindow => "out_of_window",
        }
    }
}

/// What a message from the peer brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Received {
    /// The peer restarted (or spoke for the first time): its old state here is gone.
    pub new_epoch: bool,
    /// Records to install; empty for a hello or a duplicate.
    pub records: Vec<SessionRecord>,
    /// The peer's bulk transfer to us is complete with this message.
    pub bulk_complete: bool,
}

/// Our bulk transfer to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkOut {
    Idle,
    /// Asked for (or needed after overflow): waiting for the next walk of the table.
    Wanted,
    /// The walk with this generation is feeding the peer.
    Walking(u32),
    /// The walk is over: the next message to the peer carries `BULK_DONE`.
    Finishing,
}

/// Counters of one peer, for metrics and status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    pub messages_in: u64,
    pub messages_out: u64,
    pub resends: u64,
    pub records_in: u64,
    pub records_out: u64,
    /// By reason: `stale_epoch`, `replay`, `out_of_window`, `overflow`, `dead`.
    pub dropped: Vec<(&'static str, u64)>,
}

impl PeerStats {
    pub(crate) fn drop(&mut self, reason: &'static str, n: u64) {
        match self.dropped.iter_mut().find(|(r, _)| *r == reason) {
            Some((_, count)) => *count += n,
            None => self.dropped.push((reason, n)),
        }
    }
}

/// This node, as the messages it sends name it.
#[derive(Debug, Clone, Copy)]
pub struct Local {
    pub node: u16,
    pub epoch: u64,
}

struct Pending {
    data_seq: u64,
    flags: u16,
    records: Vec<SessionRecord>,
    sent_at: Instant,
    rto: Duration,
}

pub struct Peer {
    pub address: Ipv4Addr,
    /// Learned from its messages.
    pub node: Option<u16>,
    pub epoch: Option<u64>,
    pub last_heard: Option<Instant>,
    /// What its last hello said.
    pub hello: Hello,
    pub stats: PeerStats,
    /// Replay window: the highest seq seen and bits for the 64 before it.
    rx_seq: u64,
    rx_seen: u64,
    /// Its reliable stream: everything up to `rx_ack` received, and bits for the 64 after.
    rx_ack: u64,
    rx_bits: u64,
    ack_due: Option<Instant>,
    /// Our stream to it.
    tx_seq: u64,
    tx_data: u64,
    unacked: VecDeque<Pending>,
    queue: VecDeque<(SessionRecord, bool)>,
    batch_since: Option<Instant>,
    next_hello: Option<Instant>,
    pub bulk_out: BulkOut,
    /// We want its table (from our start until its bulk transfer is complete).
    pub want_bulk: bool,
    /// The data_seq of its `BULK_DONE`, until everything before it has arrived.
    bulk_done_at: Option<u64>,
    /// Records for it were lost (overflow, or skipped while it was dead): resync when possible.
    pub needs_resync: bool,
    /// Its epoch got our whole table already: later `WANT_BULK`s (sent before it had all of it)
    /// start nothing.
    bulk_served: bool,
}

impl Peer {
    pub fn new(address: Ipv4Addr) -> Peer {
        Peer {
            address,
            node: None,
            epoch: None,
            last_heard: None,
            hello: Hello::default(),
            stats: PeerStats::default(),
            rx_seq: 0,
            rx_seen: 0,
            rx_ack: 0,
            rx_bits: 0,
            ack_due: None,
            tx_seq: 0,
            tx_data: 0,
            unacked: VecDeque::new(),
            queue: VecDeque::new(),
            batch_since: None,
            next_hello: None,
            bulk_out: BulkOut::Idle,
            want_bulk: true,
            bulk_done_at: None,
            needs_resync: false,
            bulk_served: false,
        }
    }

    /// Heard from within `dead_after`.
    pub fn alive(&self, now: Instant, dead_after: Duration) -> bool {
        self.last_heard.is_some_and(|t| now.saturating_duration_since(t) < dead_after)
    }

    /// Records waiting or in flight.
    pub fn backlog(&self) -> usize {
        self.queue.len() + self.unacked.iter().map(|p| p.records.len()).sum::<usize>()
    }

    /// Takes an authenticated message from the peer (`local` is this node).
    pub fn receive(&mut self, message: &Message, local: Local, now: Instant) -> Result<Received, Refused> {
        let h = &message.header;
        let mut received = Received::default();
        match self.epoch {
            Some(known) if h.epoch < known => {
                self.stats.drop(Refused::StaleEpoch.reason(), 1);
                return Err(Refused::StaleEpoch);
            }
            Some(known) if h.epoch == known => {}
            _ => {
                self.restart(h.epoch, h.node);
                received.new_epoch = true;
            }
        }
        if !self.fresh_seq(h.seq) {
            self.stats.drop(Refused::Replay.reason(), 1);
            return Err(Refused::Replay);
        }
        self.node = Some(h.node);
        self.last_heard = Some(now);
        self.stats.messages_in += 1;
        if h.peer_epoch == local.epoch {
            self.acknowledged(h.ack, h.ack_bits);
        }
        match &message.body {
            Body::Hello(hello) => {
                self.hello = hello.clone();
                if h.flags & flags::WANT_BULK != 0 && self.bulk_out == BulkOut::Idle && !self.bulk_served {
                    self.bulk_out = BulkOut::Wanted;
                }
            }
            Body::Sessions(records) => {
                if !self.take_data(h.data_seq)? {
                    // A resend of what arrived already: acknowledge it again, apply nothing.
                    self.ack_due.get_or_insert(now + ACK_AFTER);
                    return Ok(received);
                }
                self.ack_due.get_or_insert(now + ACK_AFTER);
                self.stats.records_in += records.len() as u64;
                received.records = records.clone();
                if h.flags & flags::BULK_DONE != 0 {
                    self.bulk_done_at = Some(h.data_seq);
                }
            }
        }
        if let Some(at) = self.bulk_done_at {
            if self.rx_ack >= at {
                self.bulk_done_at = None;
                if self.want_bulk {
                    self.want_bulk = false;
                    received.bulk_complete = true;
                }
            }
        }
        Ok(received)
    }

    /// A new epoch of the peer: both streams start again.
    fn restart(&mut self, epoch: u64, node: u16) {
        self.epoch = Some(epoch);
        self.node = Some(node);
        self.rx_seq = 0;
        self.rx_seen = 0;
        self.rx_ack = 0;
        self.rx_bits = 0;
        self.bulk_done_at = None;
        self.tx_data = 0;
        self.unacked.clear();
        self.queue.clear();
        self.batch_since = None;
        self.bulk_out = BulkOut::Idle;
        self.bulk_served = false;
        self.needs_resync = false;
    }

    /// The replay window: true for a seq not seen before and not too old.
    fn fresh_seq(&mut self, seq: u64) -> bool {
        if seq > self.rx_seq {
            let shift = seq - self.rx_seq;
            self.rx_seen = if shift >= WINDOW { 0 } else { self.rx_seen << shift };
            // Bit 0 stands for the previous highest seq.
            if self.rx_seq != 0 && shift <= WINDOW {
                self.rx_seen |= 1 << (shift - 1);
            }
            self.rx_seq = seq;
            return true;
        }
        let back = self.rx_seq - seq;
        if back == 0 || back > WINDOW {
            return false;
        }
        let bit = 1u64 << (back - 1);
        if self.rx_seen & bit != 0 {
            return false;
        }
        self.rx_seen |= bit;
        true
    }

    /// Records `data_seq` of the peer's stream: true if new, false if a duplicate.
    fn take_data(&mut self, data_seq: u64) -> Result<bool, Refused> {
        if data_seq <= self.rx_ack {
            return Ok(false);
        }
        let offset = data_seq - self.rx_ack - 1;
        if offset >= WINDOW {
            self.stats.drop(Refused::OutOfWindow.reason(), 1);
            return Err(Refused::OutOfWindow);
        }
        let bit = 1u64 << offset;
        if self.rx_bits & bit != 0 {
            return Ok(false);
        }
        self.rx_bits |= bit;
        while self.rx_bits & 1 != 0 {
            self.rx_bits >>= 1;
            self.rx_ack += 1;
        }
        Ok(true)
    }

    /// The peer's acknowledgement of our stream.
    fn acknowledged(&mut self, ack: u64, bits: u64) {
        self.unacked.retain(|p| {
            let covered =
                p.data_seq <= ack || (p.data_seq - ack - 1 < WINDOW && bits & (1 << (p.data_seq - ack - 1)) != 0);
            !covered
        });
    }

    /// Queues a record for the peer (`bulk`: part of a bulk transfer). Beyond `MAX_QUEUED` it is
    /// counted as overflow and the peer will be resynced.
    pub fn push(&mut self, record: SessionRecord, bulk: bool, now: Instant) {
        if self.queue.len() >= MAX_QUEUED {
            self.stats.drop("overflow", 1);
            self.needs_resync = true;
            return;
        }
        self.queue.push_back((record, bulk));
        self.batch_since.get_or_insert(now);
    }

    /// Counts records not sent to a dead peer; it is resynced when it is back.
    pub fn skip(&mut self, n: u64) {
        if n > 0 {
            self.stats.drop("dead", n);
            self.needs_resync = true;
        }
    }

    /// Counts updates the workers lost before they reached the engine; the peer is resynced.
    pub fn skip_lost(&mut self, n: u64) {
        self.stats.drop("lost", n);
        self.needs_resync = true;
    }

    /// Room for another walk's records.
    pub fn has_room(&self) -> bool {
        self.queue.len() < MAX_QUEUED / 2
    }

    /// The walk feeding the peer is over.
    pub fn walk_done(&mut self) {
        if matches!(self.bulk_out, BulkOut::Walking(_)) {
            self.bulk_out = BulkOut::Finishing;
        }
    }

    /// What to send the peer now: due batches, resends, a hello when due or when an
    /// acknowledgement is owed. `hello` is this node's hello body.
    pub fn outgoing(&mut self, local: Local, hello: &Hello, every: Duration, now: Instant) -> Vec<Message> {
        let mut out = Vec::new();
        // Resends first: the oldest data holds the peer's window.
        for i in 0..self.unacked.len() {
            if self.unacked[i].sent_at + self.unacked[i].rto <= now {
                let (data_seq, flags, records) = {
                    let p = &mut self.unacked[i];
                    p.sent_at = now;
                    p.rto = (p.rto * 2).min(RTO_MAX);
                    (p.data_seq, p.flags, p.records.clone())
                };
                self.stats.resends += 1;
                out.push(self.message(local, flags, data_seq, Body::Sessions(records)));
            }
        }
        // New batches while the window has room: full ones, everything once the oldest record
        // waited `FLUSH_AFTER`, and the end of a bulk transfer.
        let due = self.batch_since.is_some_and(|t| now.saturating_duration_since(t) >= FLUSH_AFTER);
        while self.unacked.len() < MAX_UNACKED {
            let finishing = self.bulk_out == BulkOut::Finishing;
            if !(self.queue.len() >= MAX_RECORDS || (due && !self.queue.is_empty()) || finishing) {
                break;
            }
            let n = self.queue.len().min(MAX_RECORDS);
            let mut flags = 0;
            let mut records = Vec::with_capacity(n);
            for (record, bulk) in self.queue.drain(..n) {
                if bulk {
                    flags |= flags::BULK;
                }
                records.push(record);
            }
            if finishing && self.queue.is_empty() {
                flags |= flags::BULK_DONE;
                self.bulk_out = BulkOut::Idle;
                self.bulk_served = true;
            }
            self.tx_data += 1;
            let data_seq = self.tx_data;
            self.stats.records_out += records.len() as u64;
            self.unacked.push_back(Pending { data_seq, flags, records: records.clone(), sent_at: now, rto: RTO_FIRST });
            out.push(self.message(local, flags, data_seq, Body::Sessions(records)));
        }
        if self.queue.is_empty() {
            self.batch_since = None;
        }
        let hello_due = self.next_hello.is_none_or(|t| now >= t);
        let ack_owed = self.ack_due.is_some_and(|t| now >= t) && out.is_empty();
        if hello_due || ack_owed {
            self.next_hello = Some(now + every);
            let body = Body::Hello(hello.clone());
            let want = if self.want_bulk { flags::WANT_BULK } else { 0 };
            out.push(self.message(local, want, 0, body));
        }
        if !out.is_empty() {
            self.ack_due = None;
        }
        self.stats.messages_out += out.len() as u64;
        out
    }

    fn message(&mut self, local: Local, flags: u16, data_seq: u64, body: Body) -> Message {
        self.tx_seq += 1;
        Message {
            header: Header {
                flags,
                node: local.node,
                epoch: local.epoch,
                peer_epoch: self.epoch.unwrap_or(0),
                seq: self.tx_seq,
                data_seq,
                ack: self.rx_ack,
                ack_bits: self.rx_bits,
            },
            body,
        }
    }
}

#[cfg(test)]
mod tests;
