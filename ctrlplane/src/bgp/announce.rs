//! Which /32 routes the node announces, and for each one it does not, why.
//!
//! - A VIP is announced while at least one of its services has its `min_active` quorum, the
//!   node is not drained, not stopping, and every worker polls.
//! - A local IP (with `announce_local_ips`) is announced while every worker polls, also while
//!   the node is drained or stopping: backends' replies to the node's existing sessions must
//!   keep finding it until the data path stops.
//! - With `[cluster]`, every peer's local IP is announced too, as a backup (BIRD lengthens its
//!   AS path), so that the router sends a dead peer's replies here the moment the peer's own
//!   route goes; this node holds copies of the peer's sessions to forward them.
//! - A node that has not yet received the tables of its live peers announces nothing (so that a
//!   joining node breaks no flow the router moves to it).
//! - A worker that stopped polling takes everything down: a dead data path keeps no route.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

/// What a route stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RouteKind {
    Vip,
    LocalIp,
    /// Another node's local IP, announced as a backup.
    PeerLocalIp,
}

impl RouteKind {
    pub fn name(self) -> &'static str {
        match self {
            RouteKind::Vip => "vip",
            RouteKind::LocalIp => "local_ip",
            RouteKind::PeerLocalIp => "peer_local_ip",
        }
    }
}

/// Why a route this node could announce is not announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Withdrawn {
    /// No service of the VIP has its quorum of healthy backends.
    NoQuorum,
    /// `sluicectl drain-node`.
    Drained,
    /// SIGTERM: the node is on its way out.
    Stopping,
    /// A worker stopped polling.
    WorkerStalled,
    /// The node waits for its peers' session tables.
    Syncing,
}

impl Withdrawn {
    pub fn name(self) -> &'static str {
        match self {
            Withdrawn::NoQuorum => "no_quorum",
            Withdrawn::Drained => "drained",
            Withdrawn::Stopping => "stopping",
            Withdrawn::WorkerStalled => "worker_stalled",
            Withdrawn::Syncing => "syncing",
        }
    }
}

impl fmt::Display for Withdrawn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One /32 the node could announce: announced when `withdrawn` is `None`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Candidate {
    pub address: Ipv4Addr,
    pub kind: RouteKind,
    pub withdrawn: Option<Withdrawn>,
}

impl Candidate {
    pub fn announced(&self) -> bool {
        self.withdrawn.is_none()
    }

    /// `198.18.10.10/32`.
    pub fn prefix(&self) -> String {
        format!("{}/32", self.address)
    }
}

/// The node-wide conditions that withdraw routes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NodeState {
    pub drained: bool,
    pub stopping: bool,
    pub stalled: bool,
    pub syncing: bool,
}

impl NodeState {
    /// What withdraws every route of the node, if anything.
    fn everything(self) -> Option<Withdrawn> {
        if self.stalled {
            Some(Withdrawn::WorkerStalled)
        } else if self.syncing {
            Some(Withdrawn::Syncing)
        } else {
            None
        }
    }
}

/// The candidates, in address order: `vips` as (address, whether one of its services has
/// quorum), one entry per service (a VIP several services share is announced when any has
/// quorum); `local_ips` and the peers' `backups` only when `announce_local_ips`.
pub fn plan(
    vips: impl IntoIterator<Item = (Ipv4Addr, bool)>,
    local_ips: impl IntoIterator<Item = Ipv4Addr>,
    backups: impl IntoIterator<Item = Ipv4Addr>,
    announce_local_ips: bool,
    node: NodeState,
) -> Vec<Candidate> {
    let mut quorum: BTreeMap<Ipv4Addr, bool> = BTreeMap::new();
    for (vip, has_quorum) in vips {
        *quorum.entry(vip).or_default() |= has_quorum;
    }
    let mut out: Vec<Candidate> = quorum
        .into_iter()
        .map(|(address, has_quorum)| {
            let withdrawn = if let Some(why) = node.everything() {
                Some(why)
            } else if node.stopping {
                Some(Withdrawn::Stopping)
            } else if node.drained {
                Some(Withdrawn::Drained)
            } else if !has_quorum {
                Some(Withdrawn::NoQuorum)
            } else {
                None
            };
            Candidate { address, kind: RouteKind::Vip, withdrawn }
        })
        .collect();
    if announce_local_ips {
        let mut locals: Vec<Ipv4Addr> = local_ips.into_iter().collect();
        locals.sort_unstable();
        locals.dedup();
        let withdrawn = node.everything();
        let mut peers: Vec<Ipv4Addr> = backups.into_iter().filter(|ip| !locals.contains(ip)).collect();
        peers.sort_unstable();
        peers.dedup();
        out.extend(locals.into_iter().map(|address| Candidate { address, kind: RouteKind::LocalIp, withdrawn }));
        out.extend(peers.into_iter().map(|address| Candidate { address, kind: RouteKind::PeerLocalIp, withdrawn }));
    }
    out.sort_unstable();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 10);
    const VIP2: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 11);
    const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 1);
    const PEER_LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 2);

    fn announced(c: &[Candidate]) -> Vec<String> {
        c.iter().filter(|c| c.announced()).map(Candidate::prefix).collect()
    }

    fn why(c: &[Candidate], address: Ipv4Addr) -> Option<Withdrawn> {
        c.iter().find(|c| c.address == address).expect("candidate").withdrawn
    }

    #[test]
    fn a_vip_goes_with_the_quorum_of_its_services() {
        let c = plan([(VIP, true), (VIP2, false)], [LOCAL], [], true, NodeState::default());
        assert_eq!(announced(&c), ["198.18.10.10/32", "198.18.11.1/32"]);
        assert_eq!(why(&c, VIP2), Some(Withdrawn::NoQuorum));
        // Two services on one VIP: either one's quorum keeps it.
        let c = plan([(VIP, false), (VIP, true)], [], [], true, NodeState::default());
        assert_eq!(announced(&c), ["198.18.10.10/32"]);
        assert_eq!(c.len(), 1, "one candidate per address");
    }

    #[test]
    fn draining_and_stopping_keep_local_ips_for_the_replies() {
        for (node, reason) in [
            (NodeState { drained: true, ..NodeState::default() }, Withdrawn::Drained),
            (NodeState { stopping: true, ..NodeState::default() }, Withdrawn::Stopping),
            (NodeState { drained: true, stopping: true, ..NodeState::default() }, Withdrawn::Stopping),
        ] {
            let c = plan([(VIP, true)], [LOCAL], [], true, node);
            assert_eq!(announced(&c), ["198.18.11.1/32"], "{node:?}");
            assert_eq!(why(&c, VIP), Some(reason));
        }
        let c = plan([(VIP, false)], [], [], true, NodeState { drained: true, ..NodeState::default() });
        assert_eq!(why(&c, VIP), Some(Withdrawn::Drained), "the operator's action is what the status shows");
    }

    #[test]
    fn a_stalled_worker_takes_everything_down() {
        let node = NodeState { stalled: true, drained: true, ..NodeState::default() };
        let c = plan([(VIP, true)], [LOCAL], [PEER_LOCAL], true, node);
        assert!(announced(&c).is_empty());
        assert!(c.iter().all(|c| c.withdrawn == Some(Withdrawn::WorkerStalled)));
    }

    #[test]
    fn local_ips_only_when_asked_and_once_each() {
        let c = plan([(VIP, true)], [LOCAL, LOCAL], [PEER_LOCAL], false, NodeState::default());
        assert_eq!(announced(&c), ["198.18.10.10/32"]);
        let c = plan([(VIP, true)], [LOCAL, LOCAL], [], true, NodeState::default());
        assert_eq!(announced(&c), ["198.18.10.10/32", "198.18.11.1/32"]);
        assert_eq!(c[1].kind, RouteKind::LocalIp);
    }

    #[test]
    fn peers_local_ips_are_backups_and_a_syncing_node_announces_nothing() {
        let c = plan([(VIP, true)], [LOCAL], [PEER_LOCAL, LOCAL, PEER_LOCAL], true, NodeState::default());
        assert_eq!(announced(&c), ["198.18.10.10/32", "198.18.11.1/32", "198.18.11.2/32"]);
        assert_eq!(c[2].kind, RouteKind::PeerLocalIp);
        assert_eq!(c.len(), 3, "a peer's address that is ours too is ours");
        let draining =
            plan([(VIP, true)], [LOCAL], [PEER_LOCAL], true, NodeState { stopping: true, ..NodeState::default() });
        assert_eq!(announced(&draining), ["198.18.11.1/32", "198.18.11.2/32"], "backups stay with the local IPs");
        let syncing =
            plan([(VIP, true)], [LOCAL], [PEER_LOCAL], true, NodeState { syncing: true, ..NodeState::default() });
        assert!(announced(&syncing).is_empty());
        assert!(syncing.iter().all(|c| c.withdrawn == Some(Withdrawn::Syncing)));
    }
}
