//! The control core's model of what runs: services at stable slots and backends at stable ids
//! across reloads, the run-time changes made through the API, and the health of backends. It
//! turns into the snapshot the workers read (`Model::snapshot`), and a reload into a list of
//! changes (`Model::apply`).
//!
//! A service keeps its slot, and a backend its id, for as long as it stays (same service name;
//! same address in that service), so its sessions go on across a reload; a removed one frees
//! its slot or id, and its sessions end when they next see traffic. Run-time changes
//! (`sluicectl backend ... weight|drain|enable`) last until the next reload: the file is the
//! truth, as with keepalived.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddrV4};

use ctrlplane::config::{self, Config, OnFailure, Protocol, Scheduler};
use dataplane::classify::OwnedAddrs;
use dataplane::ipmap::IpMap;
use dataplane::route::Routes;
use dataplane::sched::SchedulerKind;
use dataplane::session::{Endpoint, Timeouts};
use dataplane::snapshot::{self, BackendState, Link, Snapshot, VipIndex, MAX_BACKENDS, MAX_SERVICES};
use dataplane::wire::ipv4::protocol;

#[derive(Debug, Clone)]
struct ServiceSlot {
    config: config::Service,
    /// Backend ids, in configuration order.
    members: Vec<u16>,
}

#[derive(Debug, Clone)]
struct BackendSlot {
    service: u16,
    address: SocketAddrV4,
    weight: u32,
}

/// A run-time change to one backend.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Override {
    pub weight: Option<u32>,
    pub drain: bool,
}

#[derive(Debug, Default)]
pub struct Model {
    generation: u64,
    services: Vec<Option<ServiceSlot>>,
    backends: Vec<Option<BackendSlot>>,
    overrides: HashMap<u16, Override>,
    /// Backends found down by their health checks, by id.
    down: HashMap<u16, ()>,
    /// The local IPs of the cluster's other nodes: the data path takes their replies (when the
    /// router sends them here after a node died) but answers no ARP for them.
    peer_local_ips: Vec<Ipv4Addr>,
}

impl Model {
    /// Takes the services of `config`, keeping the slots and ids of what stays. Returns one
    /// line per change. Run-time overrides are dropped: the file is the truth again.
    pub fn apply(&mut self, config: &Config) -> Result<Vec<String>, String> {
        let mut changes = Vec::new();
        let mut next = self.clone_layout();
        let mut kept = vec![false; next.services.len()];
        for service in &config.services {
            let slot = match next.slot_of(&service.name) {
                Some(slot) => slot,
                None => {
                    changes.push(format!("service {} added", service.name));
                    next.free_slot()?
                }
            };
            if slot < kept.len() {
                kept[slot] = true;
            }
            let old = next.services.get(slot).cloned().flatten();
            if let Some(old) = &old {
                describe_service_change(&old.config, service, &mut changes);
            }
            let mut members = Vec::with_capacity(service.backends.len());
            let old_members: Vec<u16> = old.as_ref().map(|o| o.members.clone()).unwrap_or_default();
            for b in &service.backends {
                let existing = old_members
                    .iter()
                    .copied()
                    .find(|&id| next.backends[id as usize].as_ref().is_some_and(|s| s.address == b.address));
                let id = match existing {
                    Some(id) => {
                        let slot = next.backends[id as usize].as_mut().expect("member id is live");
                        if slot.weight != b.weight {
                            changes.push(format!(
                                "service {}: backend {} weight {} -> {}",
                                service.name, b.address, slot.weight, b.weight
                            ));
                            slot.weight = b.weight;
                        }
                        id
                    }
                    None => {
                        if old.is_some() {
                            changes.push(format!("service {}: backend {} added", service.name, b.address));
                        }
                        let id = next.free_id()?;
                        next.backends[id as usize] =
                            Some(BackendSlot { service: slot as u16, address: b.address, weight: b.weight });
                        id
                    }
                };
                members.push(id);
            }
            for gone in old_members.iter().filter(|id| !members.contains(id)) {
                if let Some(b) = next.backends[*gone as usize].take() {
                    changes.push(format!("service {}: backend {} removed", service.name, b.address));
                }
            }
            while next.services.len() <= slot {
                next.services.push(None);
            }
            next.services[slot] = Some(ServiceSlot { config: service.clone(), members });
        }
        for (slot, kept) in kept.iter().enumerate() {
            if !kept {
                if let Some(gone) = next.services[slot].take() {
                    changes.push(format!("service {} removed", gone.config.name));
                    for id in gone.members {
                        next.backends[id as usize] = None;
                    }
                }
            }
        }
        next.overrides.clear();
        next.down.retain(|id, _| next.backends.get(*id as usize).is_some_and(Option::is_some));
        next.generation = self.generation;
        next.peer_local_ips = std::mem::take(&mut self.peer_local_ips);
        *self = next;
        Ok(changes)
    }

    fn clone_layout(&self) -> Model {
        Model {
            generation: self.generation,
            services: self.services.clone(),
            backends: self.backends.clone(),
            overrides: HashMap::new(),
            down: self.down.clone(),
            peer_local_ips: Vec::new(),
        }
    }

    fn slot_of(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.as_ref().is_some_and(|s| s.config.name == name))
    }

    fn free_slot(&mut self) -> Result<usize, String> {
        if let Some(free) = self.services.iter().position(Option::is_none) {
            return Ok(free);
        }
        if self.services.len() >= MAX_SERVICES {
            return Err(format!("more than {MAX_SERVICES} services"));
        }
        self.services.push(None);
        Ok(self.services.len() - 1)
    }

    fn free_id(&mut self) -> Result<u16, String> {
        if let Some(free) = self.backends.iter().position(Option::is_none) {
            return Ok(free as u16);
        }
        if self.backends.len() >= MAX_BACKENDS {
            return Err(format!("more than {MAX_BACKENDS} backends"));
        }
        self.backends.push(None);
        Ok((self.backends.len() - 1) as u16)
    }

    /// The id of `address` in service `name`.
    pub fn backend_id(&self, name: &str, address: SocketAddrV4) -> Option<u16> {
        let slot = self.slot_of(name)?;
        let service = self.services[slot].as_ref()?;
        service
            .members
            .iter()
            .copied()
            .find(|&id| self.backends[id as usize].as_ref().is_some_and(|b| b.address == address))
    }

    /// Changes one backend at run time (until the next reload).
    pub fn set_override(&mut self, id: u16, change: impl FnOnce(&mut Override)) {
        change(self.overrides.entry(id).or_default());
    }

    /// The cluster's other nodes' local IPs (sorted, without this node's own). Returns whether
    /// that changed anything.
    pub fn set_peer_local_ips(&mut self, mut ips: Vec<Ipv4Addr>) -> bool {
        let own: Vec<Ipv4Addr> = self.local_ips().collect();
        ips.retain(|ip| !own.contains(ip));
        ips.sort_unstable();
        ips.dedup();
        if ips == self.peer_local_ips {
            return false;
        }
        self.peer_local_ips = ips;
        true
    }

    /// A digest of what new flows are scheduled by: every live service (by name) with its VIP,
    /// protocol, scheduler, and each backend's address and weight in force (0 unless up). Nodes
    /// of a cluster that agree on it pick the same backend for a new flow with `maglev` and
    /// `sh`. FNV-1a, stable across builds.
    pub fn digest(&self) -> u64 {
        let mut services: Vec<(&config::Service, &[u16])> = self.services().map(|(_, s, m)| (s, m)).collect();
        services.sort_by(|a, b| a.0.name.cmp(&b.0.name));
        let mut h = Fnv::default();
        for (s, members) in services {
            h.write(s.name.as_bytes());
            h.write(&s.vip.ip().octets());
            h.write(&s.vip.port().to_be_bytes());
            h.write(&[s.protocol as u8, s.scheduler as u8, u8::from(s.per_packet)]);
            for &id in members {
                if let Some((address, weight, state)) = self.backend(id) {
                    let weight = if state == BackendState::Up { weight } else { 0 };
                    h.write(&address.ip().octets());
                    h.write(&address.port().to_be_bytes());
                    h.write(&weight.to_be_bytes());
                }
            }
        }
        h.0
    }

    /// Marks a backend up or down (health checks). Returns whether that changed anything.
    pub fn set_down(&mut self, id: u16, down: bool) -> bool {
        if down {
            self.down.insert(id, ()).is_none()
        } else {
            self.down.remove(&id).is_some()
        }
    }

    /// Live services with their slots and member ids, for the API and metrics.
    pub fn services(&self) -> impl Iterator<Item = (u16, &config::Service, &[u16])> + '_ {
        self.services
            .iter()
            .enumerate()
            .filter_map(|(slot, s)| s.as_ref().map(|s| (slot as u16, &s.config, s.members.as_slice())))
    }

    /// Address, weight in force and state of backend `id`.
    pub fn backend(&self, id: u16) -> Option<(SocketAddrV4, u32, BackendState)> {
        let b = self.backends.get(id as usize)?.as_ref()?;
        Some((b.address, self.weight(id, b), self.state(id)))
    }

    fn weight(&self, id: u16, b: &BackendSlot) -> u32 {
        self.overrides.get(&id).and_then(|o| o.weight).unwrap_or(b.weight)
    }

    fn state(&self, id: u16) -> BackendState {
        if self.down.contains_key(&id) {
            BackendState::Down
        } else if self.overrides.get(&id).is_some_and(|o| o.drain) {
            BackendState::Draining
        } else {
            BackendState::Up
        }
    }

    /// The next snapshot: services and backends as modelled, the links and routes given.
    /// `owners` is the previous snapshot's local IP assignment (empty at start): local IPs that
    /// stay keep their worker.
    pub fn snapshot(
        &mut self,
        links: &[Link],
        routes: Routes,
        timeouts: Timeouts,
        workers: usize,
        owners: &[(u32, u16)],
    ) -> Snapshot {
        self.generation += 1;
        let services: Vec<snapshot::Service> =
            self.services.iter().map(|s| service(s.as_ref(), |members| self.healthy(members))).collect();
        let mut silent = snapshot::silent_vips(&services);
        silent.extend(self.peer_local_ips.iter().copied());
        let links: Vec<Link> = links
            .iter()
            .map(|l| {
                let owned = OwnedAddrs::new(l.owned.iter().chain(self.peer_local_ips.iter().copied()));
                Link { owned: owned.with_silent(silent.iter().copied()), ..l.clone() }
            })
            .collect();
        let backends = self
            .backends
            .iter()
            .enumerate()
            .map(|(id, b)| match b {
                Some(b) => snapshot::Backend {
                    service: b.service,
                    endpoint: Endpoint::new(*b.address.ip(), b.address.port()),
                    weight: self.weight(id as u16, b),
                    state: self.state(id as u16),
                    live: true,
                    hop: routes.lookup(*b.address.ip()).map(Into::into),
                },
                None => snapshot::Backend {
                    service: u16::MAX,
                    endpoint: Endpoint::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
                    weight: 0,
                    state: BackendState::Down,
                    live: false,
                    hop: None,
                },
            })
            .collect();
        Snapshot {
            generation: self.generation,
            links,
            vips: VipIndex::new(&services),
            local_owners: IpMap::new(Snapshot::owners(&services, workers, owners)),
            services,
            backends,
            routes,
            timeouts,
            evict_when_full: true,
        }
    }
}

impl Model {
    /// Each live service's VIP address and whether the service has its `min_active` quorum:
    /// what BGP announcements follow.
    pub fn vip_quorums(&self) -> Vec<(Ipv4Addr, bool)> {
        self.services().map(|(_, s, members)| (*s.vip.ip(), self.healthy(members) >= s.min_active)).collect()
    }

    /// Every local IP of every live service (once each is the caller's business).
    pub fn local_ips(&self) -> impl Iterator<Item = Ipv4Addr> + '_ {
        self.services().flat_map(|(_, s, _)| s.local_ips.iter().copied())
    }

    /// How many of `members` pass their health checks (or have none).
    fn healthy(&self, members: &[u16]) -> u32 {
        members.iter().filter(|id| !self.down.contains_key(id)).count() as u32
    }
}

fn service(slot: Option<&ServiceSlot>, healthy: impl Fn(&[u16]) -> u32) -> snapshot::Service {
    let Some(slot) = slot else {
        return snapshot::Service {
            name: String::new(),
            proto: 0,
            vip: Endpoint::new(std::net::Ipv4Addr::UNSPECIFIED, 0),
            scheduler: SchedulerKind::Rr,
            per_packet: false,
            remove_on_failure: false,
            client_address: snapshot::ClientAddress::None,
            synproxy: false,
            limits: snapshot::Limits::default(),
            allow: snapshot::Prefixes::default(),
            deny: snapshot::Prefixes::default(),
            live: false,
            quorum: false,
            members: Vec::new(),
            local_ips: Vec::new(),
        };
    };
    let s = &slot.config;
    snapshot::Service {
        name: s.name.clone(),
        proto: match s.protocol {
            Protocol::Tcp => protocol::TCP,
            Protocol::Udp => protocol::UDP,
        },
        vip: Endpoint::new(*s.vip.ip(), s.vip.port()),
        scheduler: match s.scheduler {
            Scheduler::Rr => SchedulerKind::Rr,
            Scheduler::Wrr => SchedulerKind::Wrr,
            Scheduler::Wlc => SchedulerKind::Wlc,
            Scheduler::Sh => SchedulerKind::Sh,
            Scheduler::Maglev => SchedulerKind::Maglev,
        },
        per_packet: s.per_packet,
        remove_on_failure: s.health.on_failure == OnFailure::Remove,
        client_address: match s.client_address {
            config::ClientAddress::None => snapshot::ClientAddress::None,
            config::ClientAddress::ProxyV2 => snapshot::ClientAddress::ProxyV2,
            config::ClientAddress::Toa => snapshot::ClientAddress::Toa,
        },
        synproxy: s.synproxy,
        limits: snapshot::Limits {
            max_sessions: s.limits.max_sessions,
            new_sessions_per_second: s.limits.new_sessions_per_second,
            per_client_new_sessions_per_second: s.limits.per_client_new_sessions_per_second,
        },
        allow: snapshot::Prefixes::new(s.allow.iter().map(|n| (n.addr, n.prefix_len))),
        deny: snapshot::Prefixes::new(s.deny.iter().map(|n| (n.addr, n.prefix_len))),
        live: true,
        quorum: healthy(&slot.members) >= s.min_active,
        members: slot.members.clone(),
        local_ips: s.local_ips.clone(),
    }
}

fn describe_service_change(old: &config::Service, new: &config::Service, changes: &mut Vec<String>) {
    let name = &new.name;
    if old.vip != new.vip || old.protocol != new.protocol {
        changes.push(format!("service {name}: vip {} -> {} (its sessions end)", old.vip, new.vip));
    }
    if old.scheduler != new.scheduler {
        changes.push(format!("service {name}: scheduler {:?} -> {:?}", old.scheduler, new.scheduler));
    }
    if old.per_packet != new.per_packet {
        changes.push(format!("service {name}: per_packet {} -> {}", old.per_packet, new.per_packet));
    }
    if old.local_ips != new.local_ips {
        changes.push(format!("service {name}: local_ips changed"));
    }
    if old.health != new.health || old.min_active != new.min_active {
        changes.push(format!("service {name}: health checks changed"));
    }
}

#[cfg(test)]
mod tests;

/// FNV-1a, 64 bits.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0000_01b3);
        }
    }
}
