//! The config file as TOML spells it, before any check.
//!
//! Every value is `Spanned` so that a problem found later can name its place, and every
//! key is optional so that a missing one is reported by `resolve` at its table's header,
//! together with every other problem, rather than by serde one at a time. Values with a
//! meaning beyond their TOML type (durations, addresses, enum names, bounded integers)
//! stay strings, `Value`s and `i64`s here: `resolve` gives them their meaning and the
//! messages that go with it. Unknown keys are refused here, by serde.

use serde::Deserialize;
use toml::{Spanned, Value};

pub type Text = Spanned<String>;
pub type Integer = Spanned<i64>;
pub type Flag = Spanned<bool>;
/// A duration: a string with a unit, taken as any value to explain what is wrong with it.
pub type DurationValue = Spanned<Value>;
pub type List<T> = Spanned<Vec<Spanned<T>>>;

/// The whole file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    pub dpdk: Option<Spanned<Dpdk>>,
    pub cpu: Option<Spanned<Cpu>>,
    pub api: Option<Spanned<Api>>,
    pub sessions: Option<Spanned<Sessions>>,
    pub steering: Option<Spanned<Steering>>,
    pub timeouts: Option<Spanned<Timeouts>>,
    #[serde(default)]
    pub interface: Vec<Spanned<Interface>>,
    #[serde(default)]
    pub route: Vec<Spanned<Route>>,
    #[serde(default)]
    pub service: Vec<Spanned<Service>>,
    pub bgp: Option<Spanned<Bgp>>,
    pub cluster: Option<Spanned<Cluster>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dpdk {
    pub args: Option<Spanned<Vec<Spanned<String>>>>,
    pub hugepages: Option<Flag>,
    pub mbufs: Option<Integer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cpu {
    pub control: Option<Integer>,
    pub workers: Option<List<i64>>,
    pub idle: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Api {
    pub socket: Option<Text>,
    pub metrics: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    pub capacity: Option<Integer>,
    pub when_full: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Steering {
    pub mode: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub tcp_syn: Option<DurationValue>,
    pub tcp_established: Option<DurationValue>,
    pub tcp_fin_wait: Option<DurationValue>,
    pub tcp_close_wait: Option<DurationValue>,
    pub tcp_last_ack: Option<DurationValue>,
    pub tcp_time_wait: Option<DurationValue>,
    pub tcp_closing: Option<DurationValue>,
    pub udp: Option<DurationValue>,
    pub udp_new: Option<DurationValue>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interface {
    pub name: Option<Text>,
    pub device: Option<Text>,
    pub addresses: Option<List<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub prefix: Option<Text>,
    pub via: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    pub name: Option<Text>,
    pub vip: Option<Text>,
    pub protocol: Option<Text>,
    pub scheduler: Option<Text>,
    pub per_packet: Option<Flag>,
    pub local_ips: Option<List<String>>,
    pub min_active: Option<Integer>,
    pub client_address: Option<Text>,
    pub synproxy: Option<Flag>,
    pub max_sessions: Option<Integer>,
    pub new_sessions_per_second: Option<Integer>,
    pub per_client_new_sessions_per_second: Option<Integer>,
    pub allow: Option<List<String>>,
    pub deny: Option<List<String>>,
    pub health: Option<Spanned<Health>>,
    #[serde(default)]
    pub backend: Vec<Spanned<Backend>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    pub check: Option<Text>,
    pub interval: Option<DurationValue>,
    pub timeout: Option<DurationValue>,
    pub rise: Option<Integer>,
    pub fall: Option<Integer>,
    pub send: Option<Text>,
    pub expect: Option<Text>,
    pub on_failure: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backend {
    pub address: Option<Text>,
    pub weight: Option<Integer>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bgp {
    pub local_as: Option<Integer>,
    pub router_id: Option<Text>,
    pub hold: Option<DurationValue>,
    pub bfd: Option<Flag>,
    pub bfd_interval: Option<DurationValue>,
    pub bfd_multiplier: Option<Integer>,
    pub bird: Option<Text>,
    pub runtime_dir: Option<Text>,
    pub announce_local_ips: Option<Flag>,
    pub drain: Option<DurationValue>,
    #[serde(default)]
    pub neighbor: Vec<Spanned<BgpNeighbor>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BgpNeighbor {
    pub address: Option<Text>,
    pub remote_as: Option<Integer>,
    pub password: Option<Text>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cluster {
    pub node: Option<Integer>,
    pub address: Option<Text>,
    pub peers: Option<List<String>>,
    pub port: Option<Integer>,
    pub key_file: Option<Text>,
    pub hello: Option<DurationValue>,
    pub dead_after: Option<DurationValue>,
}
