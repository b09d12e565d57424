//! A backend's state as its checks see it: up or down, the successes and failures in a row
//! that move it (`rise`, `fall`), and the totals the API reports.

/// What one check found: `Ok`, or why it failed ("connection refused", "status 500", ...).
pub(super) type Outcome = Result<(), String>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Tally {
    /// New targets start down.
    pub(super) up: bool,
    ok_in_a_row: u32,
    failed_in_a_row: u32,
    pub(super) ok: u64,
    pub(super) failed: u64,
}

impl Tally {
    /// The same state and totals, with the runs towards `rise` and `fall` started afresh (the
    /// check changed: its earlier results say nothing of the new one).
    pub(super) fn restarted(&self) -> Tally {
        Tally { up: self.up, ok_in_a_row: 0, failed_in_a_row: 0, ok: self.ok, failed: self.failed }
    }

    /// Counts one check; returns the reason when the state flips: the new state is `self.up`.
    /// A `rise` or `fall` of 0 acts as 1.
    pub(super) fn record(&mut self, outcome: Outcome, rise: u32, fall: u32) -> Option<String> {
        match outcome {
            Ok(()) => {
                self.ok += 1;
                self.ok_in_a_row = self.ok_in_a_row.saturating_add(1);
                self.failed_in_a_row = 0;
                if !self.up && self.ok_in_a_row >= rise.max(1) {
                    self.up = true;
                    let plural = if self.ok_in_a_row == 1 { "" } else { "s" };
                    return Some(format!("{} check{plural} ok", self.ok_in_a_row));
                }
            }
            Err(reason) => {
                self.failed += 1;
                self.failed_in_a_row = self.failed_in_a_row.saturating_add(1);
                self.ok_in_a_row = 0;
                if self.up && self.failed_in_a_row >= fall.max(1) {
                    self.up = false;
                    return Some(reason);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fail() -> Outcome {
        Err("connection refused".to_owned())
    }

    #[test]
    fn rises_after_rise_successes_in_a_row() {
        let mut tally = Tally::default();
        assert_eq!(tally.record(Ok(()), 3, 2), None);
        assert_eq!(tally.record(fail(), 3, 2), None, "already down: no transition");
        assert_eq!(tally.record(Ok(()), 3, 2), None);
        assert_eq!(tally.record(Ok(()), 3, 2), None);
        assert_eq!(tally.record(Ok(()), 3, 2).as_deref(), Some("3 checks ok"));
        assert!(tally.up);
        assert_eq!(tally.record(Ok(()), 3, 2), None, "already up: no transition");
        assert_eq!((tally.ok, tally.failed), (5, 1));
    }

    #[test]
    fn falls_after_fall_failures_in_a_row_with_the_last_reason() {
        let mut tally = Tally::default();
        assert_eq!(tally.record(Ok(()), 1, 2).as_deref(), Some("1 check ok"));
        assert_eq!(tally.record(fail(), 1, 2), None);
        assert_eq!(tally.record(Ok(()), 1, 2), None, "a success resets the failures");
        assert_eq!(tally.record(fail(), 1, 2), None);
        let reason = tally.record(Err("timeout after 500ms".to_owned()), 1, 2);
        assert_eq!(reason.as_deref(), Some("timeout after 500ms"));
        assert!(!tally.up);
    }

    #[test]
    fn zero_rise_and_fall_act_as_one() {
        let mut tally = Tally::default();
        assert!(tally.record(Ok(()), 0, 0).is_some());
        assert!(tally.record(fail(), 0, 0).is_some());
    }
}
