//! `[cluster]`: the nodes this one shares its sessions with.
//!
//! Checked here: the node id (1..=65535), the sync address (one of this node's interface
//! addresses, so that sync leaves through the exception path from an address peers know),
//! peers (none twice, none this node's own address), the port, the key file's path (absolute;
//! the file itself is read at start, as a missing key is a start-up error, not a config one),
//! and the timers (a peer must be given at least two hellos before it counts as dead).

use std::path::PathBuf;

use toml::Spanned;

use super::diagnostic::Report;
use super::model::{Cluster, Interface};
use super::raw;
use super::value::{at, bounded, duration, ipv4, require, FirstSeen};

pub fn cluster(
    report: &mut Report,
    table: &Spanned<raw::Cluster>,
    interfaces: &[Interface],
    with_bgp: bool,
) -> Option<Cluster> {
    const TABLE: &str = "[cluster]";
    let header = at(table);
    let written = table.get_ref();
    let node = require(report, &written.node, "node", table, TABLE)
        .and_then(|value| bounded(report, value, "cluster.node", 1, u32::from(u16::MAX)))
        .map(|n| n as u16);
    let address = require(report, &written.address, "address", table, TABLE).and_then(|text| {
        let address = ipv4(report, text, "cluster address")?;
        if !interfaces.iter().any(|i| i.addresses.iter().any(|net| net.addr == address)) {
            let message = format!("cluster address {address} is none of this node's interface addresses");
            report.error(at(text), message);
            return None;
        }
        Some(address)
    });
    let mut peers = Vec::new();
    let mut seen = FirstSeen::default();
    match &written.peers {
        None => report.error(header, "missing key `peers` in [cluster]"),
        Some(list) => {
            if list.get_ref().is_empty() {
                report.warning(at(list), "cluster.peers is empty: this node syncs with nobody");
            }
            for text in list.get_ref() {
                let Some(peer) = ipv4(report, text, "cluster peer") else { continue };
                if Some(peer) == address {
                    report.error(at(text), format!("cluster peer {peer} is this node's own cluster address"));
                } else if seen.claim(report, peer, at(text), format_args!("cluster peer {peer}")) {
                    peers.push(peer);
                }
            }
        }
    }
    let port = match &written.port {
        Some(value) => bounded(report, value, "cluster.port", 1, u32::from(u16::MAX)).map(|p| p as u16),
        None => Some(Cluster::DEFAULT_PORT),
    };
    let key_file = match &written.key_file {
        Some(text) if !text.get_ref().starts_with('/') => {
            report.error(at(text), format!("cluster.key_file must be an absolute path, got {:?}", text.get_ref()));
            None
        }
        Some(text) => Some(PathBuf::from(text.get_ref())),
        None => Some(PathBuf::from("/etc/sluice/cluster.key")),
    };
    let hello = written.hello.as_ref().map_or(Some(std::time::Duration::from_millis(100)), |v| duration(report, v));
    let dead_after =
        written.dead_after.as_ref().map_or(Some(std::time::Duration::from_millis(500)), |v| duration(report, v));
    if let (Some(hello), Some(dead)) = (hello, dead_after) {
        if dead < hello * 2 {
            let place = written.dead_after.as_ref().map_or(header, at);
            let message = format!(
                "cluster.dead_after ({dead:?}) must be at least twice cluster.hello ({hello:?}): one lost hello must not kill a peer"
            );
            report.error(place, message);
            return None;
        }
    }
    if !with_bgp {
        report.warning(
            header,
            "[cluster] without [bgp]: sessions are synced, but no node takes over another's local IPs",
        );
    }
    Some(Cluster {
        node: node?,
        address: address?,
        peers,
        port: port?,
        key_file: key_file?,
        hello: hello?,
        dead_after: dead_after?,
    })
}

#[cfg(test)]
mod tests;
