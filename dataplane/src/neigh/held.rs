//! Packets parked while their neighbour is being resolved: one preallocated array with a fixed
//! number of places per neighbour slot, filled and drained in arrival order. Nothing allocates
//! after `new`.

#[derive(Debug)]
pub(super) struct Held<P> {
    per_slot: usize,
    /// Packets held over all slots at most: held packets are buffers a burst towards many
    /// unresolved neighbours must not take all of.
    limit: usize,
    total: usize,
    /// Packets in each slot's places.
    counts: Vec<usize>,
    places: Vec<Option<P>>,
}

impl<P> Held<P> {
    pub(super) fn new(slots: usize, per_slot: usize, limit: usize) -> Held<P> {
        let mut places = Vec::new();
        places.resize_with(slots * per_slot, || None);
        Held { per_slot, limit, total: 0, counts: vec![0; slots], places }
    }

    /// Parks `packet` for slot `i`, or hands it back if the slot's places, or all the places
    /// `limit` allows, are taken.
    pub(super) fn push(&mut self, i: usize, packet: P) -> Result<(), P> {
        let count = &mut self.counts[i];
        if *count >= self.per_slot || self.total >= self.limit {
            return Err(packet);
        }
        self.places[i * self.per_slot + *count] = Some(packet);
        *count += 1;
        self.total += 1;
        Ok(())
    }

    /// Empties slot `i`'s places, handing the packets to `f` oldest first.
    pub(super) fn drain(&mut self, i: usize, mut f: impl FnMut(P)) {
        let count = std::mem::take(&mut self.counts[i]);
        self.total -= count;
        for place in &mut self.places[i * self.per_slot..i * self.per_slot + count] {
            if let Some(packet) = place.take() {
                f(packet);
            }
        }
    }

    #[cfg(test)]
    pub(super) fn capacity(&self) -> (usize, usize) {
        (self.counts.capacity(), self.places.capacity())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(h: &mut Held<u32>, i: usize) -> Vec<u32> {
        let mut out = Vec::new();
        h.drain(i, |p| out.push(p));
        out
    }

    #[test]
    fn slots_keep_their_own_packets_in_order() {
        let mut h = Held::new(3, 2, 6);
        assert_eq!((h.push(1, 10), h.push(2, 20), h.push(1, 11)), (Ok(()), Ok(()), Ok(())));
        assert_eq!(h.push(1, 12), Err(12), "slot 1 is full");
        assert_eq!(drain(&mut h, 1), vec![10, 11]);
        assert_eq!(drain(&mut h, 1), vec![]);
        assert_eq!(drain(&mut h, 0), vec![]);
        assert_eq!(h.push(1, 13), Ok(()), "drained places are reused");
        assert_eq!(drain(&mut h, 2), vec![20]);
        assert_eq!(drain(&mut h, 1), vec![13]);
    }

    #[test]
    fn all_slots_together_hold_at_most_the_limit() {
        let mut h = Held::new(3, 2, 3);
        assert_eq!((h.push(0, 1), h.push(0, 2), h.push(1, 3)), (Ok(()), Ok(()), Ok(())));
        assert_eq!(h.push(2, 4), Err(4), "the limit, though slot 2 has room");
        assert_eq!(drain(&mut h, 0), vec![1, 2]);
        assert_eq!(h.push(2, 4), Ok(()), "room again");
    }
}
