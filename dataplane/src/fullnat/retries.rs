//! Sessions waiting for an answer from their backend that Sluice asks for again on a timer
//! (the PROXY header of `proxied`, the SYN of `synproxied`): a bounded list, looked at at most
//! once a millisecond and only while it holds anything. An entry names its session by id and
//! creation time, so one whose slot went to another session is dropped, never acted on.

use crate::session::{Session, SessionId, SessionTable};

/// Entries followed at once; past that a session relies on its other ways of asking again.
const MAX_PENDING: usize = 4096;

#[derive(Debug, Clone, Copy)]
struct Pending {
    id: SessionId,
    created_ms: u64,
    due_ms: u64,
}

/// What became of an entry.
pub enum Due {
    /// Not due yet: keep it as it is.
    Wait,
    /// Asked again: look again in this many milliseconds.
    Again(u64),
    /// Answered, given up or gone: forget it.
    Done,
}

#[derive(Clone, Default)]
pub struct Retries {
    pending: Vec<Pending>,
    last_scan_ms: u64,
}

impl Retries {
    /// Follows session `s` (at `id`), due first at `due_ms`.
    pub fn add(&mut self, id: SessionId, s: &Session, due_ms: u64) {
        if self.pending.len() < MAX_PENDING {
            self.pending.push(Pending { id, created_ms: s.created_ms, due_ms });
        }
    }

    /// Makes session `id` due now.
    pub fn now(&mut self, id: SessionId, now_ms: u64) {
        if let Some(e) = self.pending.iter_mut().find(|e| e.id == id) {
            e.due_ms = now_ms;
            self.last_scan_ms = 0;
        }
    }

    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// Hands each entry whose session is still the one it was made for (and carries `extra` in
    /// `Session::extras`) to `visit`, with the table to end it in and whether its time has come,
    /// so that answered ones are forgotten at once.
    pub fn scan(
        &mut self,
        sessions: &mut SessionTable,
        extra: u8,
        now_ms: u64,
        mut visit: impl FnMut(&mut SessionTable, SessionId, Session, bool) -> Due,
    ) {
        if self.pending.is_empty() || now_ms == self.last_scan_ms {
            return;
        }
        self.last_scan_ms = now_ms;
        let mut i = 0;
        while i < self.pending.len() {
            let e = self.pending[i];
            let s = *sessions.get(e.id);
            if s.proto == 0 || s.created_ms != e.created_ms || s.extras & extra == 0 {
                self.pending.swap_remove(i);
                continue;
            }
            match visit(sessions, e.id, s, now_ms >= e.due_ms) {
                Due::Wait => i += 1,
                Due::Again(ms) => {
                    self.pending[i].due_ms = now_ms + ms;
                    i += 1;
                }
                Due::Done => {
                    self.pending.swap_remove(i);
                }
            }
        }
    }
}
