//! Flow steering rules: one NIC rule per local IP, "IPv4 destination = this local IP -> the rx
//! queue of the worker that owns it". A reply's destination address names its worker (see
//! `laddr`), so one exact-match rule per local IP steers every reply, whatever its ports.
//!
//! Owns: the list of rules, as plain values. May touch: nothing. Installing them on a port is
//! `dpdk::install_flows`; this module builds and checks the list, off the packet path (it
//! allocates).

use std::collections::HashMap;
use std::fmt;
use std::net::Ipv4Addr;

use crate::laddr::owners;

/// Packets to `local_ip` go to rx queue `queue`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FlowRule {
    pub local_ip: Ipv4Addr,
    pub queue: u16,
}

impl fmt::Display for FlowRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ipv4 dst {}/32 -> queue {}", self.local_ip, self.queue)
    }
}

/// A local IP given twice: two rules would match the same packets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateLocalIp {
    pub local_ip: Ipv4Addr,
    pub first_queue: u16,
    pub second_queue: u16,
}

impl fmt::Display for DuplicateLocalIp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "local IP {} is steered twice (to queue {} and to queue {}): each local IP belongs to one worker",
            self.local_ip, self.first_queue, self.second_queue
        )
    }
}

impl std::error::Error for DuplicateLocalIp {}

/// One rule per (local IP, worker queue), in the order given; refused if a local IP repeats.
pub fn rules(owned: &[(Ipv4Addr, u16)]) -> Result<Vec<FlowRule>, DuplicateLocalIp> {
    let mut seen: HashMap<Ipv4Addr, u16> = HashMap::with_capacity(owned.len());
    let mut rules = Vec::with_capacity(owned.len());
    for &(local_ip, queue) in owned {
        if let Some(&first_queue) = seen.get(&local_ip) {
            return Err(DuplicateLocalIp { local_ip, first_queue, second_queue: queue });
        }
        seen.insert(local_ip, queue);
        rules.push(FlowRule { local_ip, queue });
    }
    Ok(rules)
}

/// The rules for local IPs owned as `laddr::owners` assigns them: worker `w` (of
/// `worker_queues.len()`) receives on rx queue `worker_queues[w]`.
pub fn rules_for_workers<'a>(
    services: impl Iterator<Item = &'a [Ipv4Addr]> + Clone,
    worker_queues: &[u16],
) -> Result<Vec<FlowRule>, DuplicateLocalIp> {
    if worker_queues.is_empty() {
        return Ok(Vec::new());
    }
    let owned: Vec<(Ipv4Addr, u16)> = owners(services, worker_queues.len(), &[])
        .into_iter()
        .map(|(ip, w)| (Ipv4Addr::from(ip), worker_queues[w as usize]))
        .collect();
    rules(&owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> Ipv4Addr {
        Ipv4Addr::new(198, 18, 1, last)
    }

    #[test]
    fn one_rule_per_local_ip_in_order() {
        let got = rules(&[(ip(100), 1), (ip(101), 0), (ip(102), 1)]).unwrap();
        assert_eq!(
            got,
            [
                FlowRule { local_ip: ip(100), queue: 1 },
                FlowRule { local_ip: ip(101), queue: 0 },
                FlowRule { local_ip: ip(102), queue: 1 }
            ]
        );
        assert_eq!(rules(&[]).unwrap(), []);
    }

    #[test]
    fn duplicates_refused() {
        let err = rules(&[(ip(100), 1), (ip(101), 0), (ip(100), 0)]).unwrap_err();
        assert_eq!(err, DuplicateLocalIp { local_ip: ip(100), first_queue: 1, second_queue: 0 });
        assert!(err.to_string().contains("198.18.1.100"), "{err}");
        assert!(rules(&[(ip(7), 3), (ip(7), 3)]).is_err(), "even to the same queue");
    }

    #[test]
    fn description() {
        let rule = FlowRule { local_ip: ip(100), queue: 1 };
        assert_eq!(rule.to_string(), "ipv4 dst 198.18.1.100/32 -> queue 1");
    }

    #[test]
    fn split_between_workers_like_laddr() {
        let ips: Vec<Ipv4Addr> = (100..105).map(ip).collect();
        let got = rules_for_workers([ips.as_slice()].into_iter(), &[3, 5]).unwrap();
        let pairs: Vec<(Ipv4Addr, u16)> = got.iter().map(|r| (r.local_ip, r.queue)).collect();
        assert_eq!(pairs, [(ip(100), 3), (ip(101), 5), (ip(102), 3), (ip(103), 5), (ip(104), 3)]);
        assert!(rules_for_workers([ips.as_slice()].into_iter(), &[]).unwrap().is_empty());
        // An IP that two services share is one rule, to its one owner.
        let shared = [ip(1), ip(2)];
        assert_eq!(rules_for_workers([shared.as_slice(), &shared[..1]].into_iter(), &[0, 1]).unwrap().len(), 2);
    }
}
