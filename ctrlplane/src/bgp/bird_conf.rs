//! BIRD's configuration, written whole from `[bgp]`: the operator never edits it.
//!
//! - `device`: BIRD learns the interfaces (the exception path's kernel interfaces).
//! - `static sluice_routes`: the /32s Sluice announces, as blackhole routes, from a routes
//!   file of their own that is rewritten when announcements change; there is no `kernel`
//!   protocol, so they never reach a kernel table.
//! - `static sluice_backup`: the cluster peers' local IPs, from a file of their own, exported
//!   with this node's AS prepended twice: a route routers use only when the peer's own is gone.
//! - `bfd` (when `bfd = true`): fast failure detection on every neighbour.
//! - one `bgp` protocol per neighbour, named after its address, single-hop, graceful restart
//!   off (a dead node must lose its routes, not have them kept stale by a helper), importing
//!   nothing and exporting only the static routes above, with this node as next hop.
//!
//! Every value written here was checked by the config module (addresses, AS numbers, and
//! strings free of quotes and backslashes), so the text needs no escaping.

use std::fmt::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use crate::config::{Bgp, BgpNeighbor};

/// The names of the static protocols whose routes are announced, plainly and as backups.
pub const ROUTES_PROTOCOL: &str = "sluice_routes";
pub const BACKUP_PROTOCOL: &str = "sluice_backup";

/// The files BIRD uses, all in `runtime_dir`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Paths {
    pub dir: PathBuf,
    /// The generated configuration (`bird -c`).
    pub config: PathBuf,
    /// The announced routes, included by the static protocol.
    pub routes: PathBuf,
    /// The routes announced as backups.
    pub backup: PathBuf,
    /// BIRD's control socket (`bird -s`, `birdc -s`).
    pub socket: PathBuf,
}

impl Paths {
    pub fn new(dir: &Path) -> Paths {
        Paths {
            dir: dir.to_owned(),
            config: dir.join("bird.conf"),
            routes: dir.join("routes.conf"),
            backup: dir.join("backup.conf"),
            socket: dir.join("bird.ctl"),
        }
    }
}

/// The BGP protocol's name for `neighbor`: `bgp_198_18_0_254`.
pub fn protocol_name(neighbor: Ipv4Addr) -> String {
    let [a, b, c, d] = neighbor.octets();
    format!("bgp_{a}_{b}_{c}_{d}")
}

/// The whole `bird.conf`.
pub fn config_text(bgp: &Bgp, paths: &Paths) -> String {
    let mut out = String::new();
    let socket = paths.socket.display();
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "\
# Written by Sluice from the [bgp] section of its config, at every start and reload:
# edits here are lost. To look inside: birdc -s {socket}
router id {router_id};
log stderr all;

protocol device sluice_device {{
    scan time 10;
}}

# What Sluice announces: /32 blackholes, exported to BGP only (no kernel protocol).
protocol static {ROUTES_PROTOCOL} {{
    ipv4;
include \"{routes}\";
}}

# The cluster peers' local IPs: backups, with a longer AS path than the peers' own.
protocol static {BACKUP_PROTOCOL} {{
    ipv4;
include \"{backup}\";
}}

filter sluice_export {{
    if proto = \"{ROUTES_PROTOCOL}\" && net.len = 32 then accept;
    if proto = \"{BACKUP_PROTOCOL}\" && net.len = 32 then {{
        bgp_path.prepend({local_as});
        bgp_path.prepend({local_as});
        accept;
    }}
    reject;
}}
",
        router_id = bgp.router_id,
        routes = paths.routes.display(),
        backup = paths.backup.display(),
        local_as = bgp.local_as,
    );
    if bgp.bfd {
        let interval = bgp.bfd_interval.as_millis();
        let _ = write!(
            out,
            "
protocol bfd sluice_bfd {{
    interface \"*\" {{
        min rx interval {interval} ms;
        min tx interval {interval} ms;
        multiplier {multiplier};
    }};
}}
",
            multiplier = bgp.bfd_multiplier,
        );
    }
    for neighbor in &bgp.neighbors {
        out.push_str(&bgp_protocol(bgp, neighbor));
    }
    out
}

fn bgp_protocol(bgp: &Bgp, neighbor: &BgpNeighbor) -> String {
    let hold = bgp.hold.as_secs();
    let mut out = format!(
        "
protocol bgp {name} {{
    description \"Sluice neighbor {address}\";
    local as {local_as};
    neighbor {address} as {remote_as};
    direct;
    hold time {hold};
    keepalive time {keepalive};
    connect delay time 1;
    connect retry time 5;
    error wait time 1, 30;
    graceful restart off;
",
        name = protocol_name(neighbor.address),
        address = neighbor.address,
        local_as = bgp.local_as,
        remote_as = neighbor.remote_as,
        keepalive = (hold / 3).max(1),
    );
    if bgp.bfd {
        out.push_str("    bfd on;\n");
    }
    if let Some(password) = &neighbor.password {
        let _ = writeln!(out, "    password \"{password}\";");
    }
    out.push_str(
        "    ipv4 {
        import none;
        export filter sluice_export;
        next hop self;
    };
}
",
    );
    out
}

/// The routes file: one blackhole /32 per announced address, in the order given.
pub fn routes_text(announced: impl IntoIterator<Item = Ipv4Addr>) -> String {
    let mut out = String::from("# Written by Sluice: the /32s this node announces now.\n");
    for address in announced {
        let _ = writeln!(out, "route {address}/32 blackhole;");
    }
    out
}

#[cfg(test)]
mod tests;
