//! The appliance's side of `[bgp]`: what this node asks BIRD to announce, from the model
//! (VIP quorums, local IPs) and the node's own state (drained by the operator, stopping,
//! a worker stalled), and what the API and metrics show of it. The speaker thread
//! (`ctrlplane::bgp`) does the talking to BIRD.

use std::net::Ipv4Addr;
use std::path::PathBuf;

use ctrlplane::api::{BgpStatus, NeighborStatus, RouteStatus};
use ctrlplane::bgp::{plan, Log, NodeState, Speaker, SpeakerStatus};
use ctrlplane::config::Bgp;
use ctrlplane::metrics::{NeighborUp, RouteAnnounced, Sample};

use super::model::Model;

pub struct Routing {
    bgp: Bgp,
    speaker: Speaker,
    node: NodeState,
}

impl Routing {
    /// Starts BIRD (through the speaker), announcing nothing until the first `update`.
    pub fn start(bgp: &Bgp, binary: PathBuf) -> Result<Routing, String> {
        let log: Log = crate::logging::control_plane("bgp");
        let speaker = Speaker::start(bgp.clone(), binary, log)?;
        Ok(Routing { bgp: bgp.clone(), speaker, node: NodeState::default() })
    }

    /// Hands the speaker what should be announced now; cheap when nothing changed. `backups`:
    /// the cluster peers' local IPs; `syncing`: the node still waits for its peers' tables.
    pub fn update(&mut self, model: &Model, stalled: bool, backups: &[Ipv4Addr], syncing: bool) {
        self.node.stalled = stalled;
        self.node.syncing = syncing;
        let candidates = plan(
            model.vip_quorums(),
            model.local_ips(),
            backups.iter().copied(),
            self.bgp.announce_local_ips,
            self.node,
        );
        self.speaker.set_routes(candidates);
    }

    /// `sluicectl drain-node` (true) and `undrain-node` (false); the change goes out with the
    /// next `update`.
    pub fn set_drained(&mut self, drained: bool) {
        self.node.drained = drained;
    }

    /// SIGTERM: the VIPs go first; local IPs stay while the data path drains.
    pub fn begin_stop(&mut self) {
        self.node.stopping = true;
    }

    /// Whether BIRD has taken the latest announcements (or runs no more, announcing nothing).
    pub fn settled(&self) -> bool {
        self.speaker.status().settled
    }

    /// A reload's `[bgp]` (the binary and runtime directory are restart-only).
    pub fn reconfigure(&mut self, bgp: &Bgp) {
        self.bgp = bgp.clone();
        self.speaker.reconfigure(bgp.clone());
    }

    pub fn drain(&self) -> std::time::Duration {
        self.bgp.drain
    }

    pub fn status(&self) -> BgpStatus {
        let s = self.speaker.status();
        BgpStatus {
            local_as: self.bgp.local_as,
            router_id: self.bgp.router_id.to_string(),
            bird: s.bird.name().to_owned(),
            bird_restarts: s.restarts,
            drained: self.node.drained,
            neighbors: s
                .neighbors
                .iter()
                .map(|n| NeighborStatus {
                    address: n.address.to_string(),
                    remote_as: n.remote_as,
                    up: n.up,
                    state: n.state.clone(),
                    info: n.info.clone(),
                })
                .collect(),
            routes: s
                .routes
                .iter()
                .map(|(c, announced)| RouteStatus {
                    prefix: c.prefix(),
                    kind: c.kind.name().to_owned(),
                    announced: *announced,
                    withdrawn: withdrawn_reason(&s, c, *announced),
                })
                .collect(),
        }
    }

    /// The `[bgp]` metrics into `sample`.
    pub fn sample(&self, sample: &mut Sample) {
        let s = self.speaker.status();
        sample.bgp_neighbor_up =
            s.neighbors.iter().map(|n| NeighborUp { neighbor: n.address.to_string(), up: n.up }).collect();
        sample.route_announced = s
            .routes
            .iter()
            .map(|(c, announced)| RouteAnnounced { prefix: c.prefix(), announced: *announced })
            .collect();
        sample.bird_restarts = Some(s.restarts);
    }
}

/// Why a candidate is not announced: its own reason, else that BIRD has not taken it yet.
fn withdrawn_reason(s: &SpeakerStatus, c: &ctrlplane::bgp::Candidate, announced: bool) -> Option<String> {
    if announced {
        return None;
    }
    Some(match c.withdrawn {
        Some(why) => why.name().to_owned(),
        None if !matches!(s.bird, ctrlplane::bgp::BirdState::Running { .. }) => "bird_not_running".to_owned(),
        None => "pending".to_owned(),
    })
}
