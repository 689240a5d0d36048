//! How busy a simulated instance was: the share of its request slots in use, averaged over
//! time, which the simulation reports as the instance's CPU use (the `cpu` signal).

/// Busy slots over time, measured between two reads.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Utilisation {
    busy: u32,
    changed_ns: u64,
    slot_ns: f64,
    read_ns: u64,
    read_slot_ns: f64,
}

impl Utilisation {
    /// Starts measuring at `now_ns`, nothing busy.
    pub(crate) fn starting_at(now_ns: u64) -> Self {
        Self {
            changed_ns: now_ns,
            read_ns: now_ns,
            ..Self::default()
        }
    }

    /// Slots busy now.
    pub(crate) fn busy(&self) -> u32 {
        self.busy
    }

    /// `busy` slots are in use from `now_ns` on.
    pub(crate) fn set_busy(&mut self, now_ns: u64, busy: u32) {
        self.advance(now_ns);
        self.busy = busy;
    }

    /// The mean share of `slots` in use since the previous read (or the start), if any time
    /// passed; starts the next measurement.
    pub(crate) fn read(&mut self, now_ns: u64, slots: u32) -> Option<f64> {
        self.advance(now_ns);
        let elapsed = now_ns.saturating_sub(self.read_ns);
        let used = self.slot_ns - self.read_slot_ns;
        self.read_ns = now_ns;
        self.read_slot_ns = self.slot_ns;
        (elapsed > 0 && slots > 0).then(|| used / (elapsed as f64 * f64::from(slots)))
    }

    fn advance(&mut self, now_ns: u64) {
        let elapsed = now_ns.saturating_sub(self.changed_ns);
        self.slot_ns += f64::from(self.busy) * elapsed as f64;
        self.changed_ns = now_ns.max(self.changed_ns);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn averages_busy_slots_between_reads() {
        let mut u = Utilisation::starting_at(1_000);
        u.set_busy(1_000, 2);
        u.set_busy(1_500, 4);
        // 500 ns at 2 of 4 slots, 500 ns at 4 of 4: 0.75.
        assert_eq!(u.read(2_000, 4), Some(0.75));
        u.set_busy(2_500, 0);
        // 500 ns at 4, 500 ns at 0.
        assert_eq!(u.read(3_000, 4), Some(0.5));
        assert_eq!(u.read(3_000, 4), None);
        assert_eq!(u.busy(), 0);
    }
}
