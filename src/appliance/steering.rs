//! Choosing, per port at start, how replies reach the worker that owns their local IP
//! (`[steering] mode`): flow rules if the NIC takes them, else RSS port choice if the port's
//! Toeplitz configuration is readable, else software redirect. With one worker there is
//! nothing to steer. Whatever the mode, a worker that still receives a packet for another
//! worker's local IP hands it over (redirect), so sessions stay strictly per worker.

use std::sync::Arc;

use ctrlplane::config::{Config, SteeringMode};
use dataplane::dpdk::{self, FlowHandle, Port};
use dataplane::snapshot::Steering;
use dataplane::steer::flow::{rules_for_workers, FlowRule};
use dataplane::steer::rss::RssSteering;

/// What was chosen for one port, and the flow rules that must live as long as it.
pub struct Choice {
    pub steering: Steering,
    pub rss: Option<Arc<RssSteering>>,
    pub flows: Vec<FlowHandle>,
}

/// One rule per local IP to its owner's queue (worker i polls queue i), owned as the data
/// path owns them at start (`laddr::owners`).
pub fn flow_rules(config: &Config) -> Result<Vec<FlowRule>, String> {
    let queues: Vec<u16> = (0..config.cpu.workers.len() as u16).collect();
    rules_for_workers(config.services.iter().map(|s| s.local_ips.as_slice()), &queues).map_err(|e| format!("{e:?}"))
}

pub fn choose(config: &Config, interface: &str, port: &Port, rules: &[FlowRule]) -> Result<Choice, String> {
    let single = Choice { steering: Steering::Single, rss: None, flows: Vec::new() };
    if config.cpu.workers.len() <= 1 {
        return Ok(single);
    }
    let redirect = || Choice { steering: Steering::Redirect, rss: None, flows: Vec::new() };
    let flow =
        || dpdk::install_flows(port.id(), rules).map(|flows| Choice { steering: Steering::Flow, rss: None, flows });
    let rss = || {
        port.rss().map(|c| Choice {
            steering: Steering::Rss,
            rss: Some(Arc::new(RssSteering::new(&c.key, c.reta))),
            flows: Vec::new(),
        })
    };
    match config.steering.mode {
        SteeringMode::Redirect => Ok(redirect()),
        SteeringMode::Flow => flow().map_err(|e| format!("interface {interface}: steering \"flow\" refused: {e}")),
        SteeringMode::Rss => rss().ok_or_else(|| {
            format!("interface {interface}: steering \"rss\": the port has no readable RSS key and table")
        }),
        SteeringMode::Auto => match flow() {
            Ok(choice) => Ok(choice),
            Err(e) => {
                info!("interface {interface}: flow rules refused ({e}); trying rss");
                Ok(rss().unwrap_or_else(|| {
                    info!("interface {interface}: no readable RSS configuration; replies are redirected in software");
                    redirect()
                }))
            }
        },
    }
}
