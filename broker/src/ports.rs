//! Free loopback ports for processes that are told their ports before they bind them: the
//! nodes of `sluice dev` with base port 0 (each node must know every voter's port), and the
//! multi-process clusters of the tests.
//!
//! Binding port 0 and closing again gives a port from the kernel's ephemeral range, the range
//! every outgoing connection on the machine takes its local port from, and every other bind to
//! port 0: between the pick and the node's own bind, any client may take it. So ports are
//! picked outside that range (`net.ipv4.ip_local_port_range`, from 10000 up), where the kernel
//! hands out no port by itself, checked free by binding them, and handed out once per process.
//! Where the range leaves too little room, the kernel's pick is used.

use std::collections::BTreeSet;
use std::io;
use std::net::{Ipv4Addr, TcpListener};
use std::sync::Mutex;

/// The lowest port picked (below it live well-known services).
const LOWEST: u16 = 10_000;
/// Fewer ports than this outside the ephemeral range: use the kernel's pick instead.
const ENOUGH: usize = 1_000;

/// Ports this process has handed out (binding one again would succeed until its user binds it).
static HANDED_OUT: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());

/// A loopback TCP port that nothing listens on now, outside the ephemeral range when it can be.
pub fn free_loopback_port() -> io::Result<u16> {
    let outside = outside_ephemeral();
    let mut handed = HANDED_OUT.lock().unwrap_or_else(|e| e.into_inner());
    let room: usize = outside.iter().map(ExactSizeIterator::len).sum();
    if room >= ENOUGH {
        for _ in 0..256 {
            let n = (uuid::Uuid::new_v4().as_u128() % room as u128) as usize;
            let port = outside.iter().cloned().flatten().nth(n).expect("n is within the room");
            if !handed.contains(&port) && TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok() {
                handed.insert(port);
                return Ok(port);
            }
        }
    }
    loop {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?.local_addr()?.port();
        if handed.insert(port) {
            return Ok(port);
        }
    }
}

/// The ports from [`LOWEST`] up that lie below and above the ephemeral range (end exclusive;
/// port 65535 is left out).
fn outside_ephemeral() -> [std::ops::Range<u16>; 2] {
    let (low, high) = ephemeral_range().unwrap_or((32_768, 60_999));
    let above = high.saturating_add(1).max(LOWEST);
    [LOWEST..low.max(LOWEST), above..u16::MAX]
}

/// `net.ipv4.ip_local_port_range`: the first and last port the kernel picks by itself.
fn ephemeral_range() -> Option<(u16, u16)> {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").ok()?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u16>().ok());
    let (low, high) = (parts.next()??, parts.next()??);
    (low <= high).then_some((low, high))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports_are_outside_the_ephemeral_range_distinct_and_free() {
        let (low, high) = ephemeral_range().expect("Linux reports its ephemeral range");
        let outside = outside_ephemeral();
        let room: usize = outside.iter().map(ExactSizeIterator::len).sum();
        let ports: Vec<u16> = (0..200).map(|_| free_loopback_port().unwrap()).collect();
        let distinct: BTreeSet<u16> = ports.iter().copied().collect();
        assert_eq!(distinct.len(), ports.len(), "each port handed out once");
        for port in ports {
            if room >= ENOUGH {
                assert!(port >= LOWEST && !(low..=high).contains(&port), "{port} in {low}-{high}");
            }
            TcpListener::bind((Ipv4Addr::LOCALHOST, port)).expect("the port is free");
        }
    }
}
