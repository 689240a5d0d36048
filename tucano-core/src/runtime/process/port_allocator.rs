//! Port allocation for process instances without a bind-then-drop race between instances.
//!
//! Ports come from a range outside the kernel's ephemeral range (so outgoing connections never
//! hold them), are reserved until the instance exits (so two instances of one runtime never
//! share one), and are probed with a bind just before use (so a port another program listens
//! on is skipped). A program that grabs the port in the instant between probe and child bind
//! makes the child fail to bind; the runtime then retries on another port.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;

/// Default ports for instances: below Linux's default ephemeral range (32768–60999).
pub const DEFAULT_PORT_RANGE: RangeInclusive<u16> = 20000..=32000;

/// Hands out ports from a range and remembers which are in use.
#[derive(Debug)]
pub struct PortAllocator {
    host: IpAddr,
    range: RangeInclusive<u16>,
    next: u16,
    reserved: HashSet<u16>,
}

impl PortAllocator {
    /// An allocator for `range` on `host`, starting at a random port so that several
    /// runtimes on one machine rarely probe the same ports.
    pub fn new(host: IpAddr, range: RangeInclusive<u16>) -> Self {
        let span = u32::from(*range.end()).saturating_sub(u32::from(*range.start())) + 1;
        let offset = rand::random_range(0..span.max(1));
        let next = (u32::from(*range.start()) + offset).min(u32::from(u16::MAX)) as u16;
        Self {
            host,
            range,
            next,
            reserved: HashSet::new(),
        }
    }

    /// Reserves a port nobody listens on now, or `None` if every port of the range is taken.
    pub fn reserve(&mut self) -> Option<u16> {
        let (start, end) = (*self.range.start(), *self.range.end());
        if start > end {
            return None;
        }
        let span = usize::from(end - start) + 1;
        for _ in 0..span {
            let port = self.next;
            self.next = if port >= end { start } else { port + 1 };
            if self.reserved.contains(&port) || !self.is_free(port) {
                continue;
            }
            self.reserved.insert(port);
            return Some(port);
        }
        None
    }

    /// Gives a port back.
    pub fn release(&mut self, port: u16) {
        self.reserved.remove(&port);
    }

    /// True when nothing listens on `port` now.
    pub fn is_free(&self, port: u16) -> bool {
        TcpListener::bind(SocketAddr::new(self.host, port)).is_ok()
    }

    /// How many ports are reserved.
    pub fn reserved(&self) -> usize {
        self.reserved.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const LOCALHOST: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

    #[test]
    fn never_hands_out_a_reserved_port_twice() {
        let mut ports = PortAllocator::new(LOCALHOST, 40100..=40109);
        let mut seen = HashSet::new();
        while let Some(port) = ports.reserve() {
            assert!((40100..=40109).contains(&port));
            assert!(seen.insert(port), "{port} handed out twice");
        }
        assert!(seen.len() <= 10);
        assert_eq!(ports.reserved(), seen.len());
        let first = *seen.iter().next().unwrap();
        ports.release(first);
        assert_eq!(ports.reserve(), Some(first));
    }

    #[test]
    fn skips_a_port_someone_listens_on() {
        let listener = TcpListener::bind((LOCALHOST, 0)).unwrap();
        let taken = listener.local_addr().unwrap().port();
        let mut ports = PortAllocator::new(LOCALHOST, taken..=taken);
        assert_eq!(ports.reserve(), None);
        drop(listener);
        assert_eq!(ports.reserve(), Some(taken));
    }

    #[test]
    fn empty_range_gives_none() {
        #[allow(clippy::reversed_empty_ranges)]
        let mut ports = PortAllocator::new(LOCALHOST, 10..=5);
        assert_eq!(ports.reserve(), None);
    }
}
