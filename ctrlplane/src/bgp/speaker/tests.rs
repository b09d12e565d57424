//! The speaker against a real BIRD 2 (scripts/setup installs bird2), run inside a network
//! namespace of its own made by `unshare` on the test's thread: only a loopback, so the BGP
//! neighbour (a test address) is unreachable and nothing leaves the namespace.

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::*;
use crate::bgp::announce::{plan, NodeState, Withdrawn};
use crate::config::BgpNeighbor;

const VIP: Ipv4Addr = Ipv4Addr::new(198, 18, 10, 10);
const LOCAL: Ipv4Addr = Ipv4Addr::new(198, 18, 11, 1);

/// Runs `f` on a thread in a new, empty network namespace.
fn isolated<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(move || {
        // SAFETY: unshare affects only the calling thread's namespaces.
        let rc = unsafe { libc::unshare(libc::CLONE_NEWNET) };
        assert_eq!(rc, 0, "unshare(CLONE_NEWNET) needs root: {}", std::io::Error::last_os_error());
        f()
    })
    .join()
    .expect("isolated thread")
}

fn bgp(dir: &str) -> Bgp {
    let mut bgp = Bgp::defaults(65001, Ipv4Addr::new(198, 18, 0, 11));
    bgp.runtime_dir = std::env::temp_dir().join(format!("sluice-speaker-{dir}-{}", std::process::id()));
    bgp.neighbors = vec![BgpNeighbor { address: Ipv4Addr::new(198, 18, 0, 254), remote_as: 65000, password: None }];
    bgp
}

fn collecting() -> (Log, Arc<Mutex<Vec<String>>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = lines.clone();
    let log: Log = Arc::new(move |_, line: &str, _: Fields| sink.lock().unwrap().push(line.to_owned()));
    (log, lines)
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The /32s BIRD holds in its table, by `show route`.
fn bird_routes(bgp: &Bgp) -> Vec<String> {
    let socket = Paths::new(&bgp.runtime_dir).socket;
    let Ok(reply) = birdc::command(&socket, "show route", Duration::from_secs(2)) else {
        return vec!["(no answer)".into()];
    };
    let mut routes: Vec<String> = reply
        .lines
        .iter()
        .filter_map(|(_, l)| l.split_whitespace().next().filter(|w| w.ends_with("/32")))
        .map(String::from)
        .collect();
    routes.sort();
    routes
}

fn pid_alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

fn running_pid(speaker: &Speaker) -> Option<u32> {
    match speaker.status().bird {
        BirdState::Running { pid } => Some(pid),
        _ => None,
    }
}

#[test]
fn announces_withdraws_restarts_and_stops_bird() {
    isolated(|| {
        let bgp = bgp("main");
        let binary = preflight(&bgp).expect("preflight");
        let (log, lines) = collecting();
        let speaker = Speaker::start(bgp.clone(), binary, log).expect("start");
        wait_until("bird runs", || running_pid(&speaker).is_some());
        let status = speaker.status();
        assert_eq!(status.neighbors.len(), 1);
        assert!(!status.neighbors[0].up, "nobody to peer with here");

        // Announce a VIP and a local IP; BIRD's table holds exactly them.
        speaker.set_routes(plan([(VIP, true)], [LOCAL], [], true, NodeState::default()));
        wait_until("the routes are loaded", || speaker.status().settled);
        wait_until("BIRD holds both", || bird_routes(&bgp) == ["198.18.10.10/32", "198.18.11.1/32"]);
        assert!(speaker.status().routes.iter().all(|(_, announced)| *announced));

        // Drain: the VIP goes, the local IP stays, and BIRD was not restarted for it.
        let pid = running_pid(&speaker).expect("running");
        speaker.set_routes(plan([(VIP, true)], [LOCAL], [], true, NodeState { drained: true, ..NodeState::default() }));
        wait_until("the VIP is withdrawn", || bird_routes(&bgp) == ["198.18.11.1/32"]);
        assert_eq!(running_pid(&speaker), Some(pid), "announcements change by configure, not by restart");
        let routes = speaker.status().routes;
        assert_eq!(routes.iter().filter(|(_, a)| *a).count(), 1);
        assert!(routes.iter().any(|(c, a)| c.address == VIP && !a && c.withdrawn == Some(Withdrawn::Drained)));

        // BIRD killed: started again, with the routes as they should be.
        // SAFETY: a signal to BIRD, our child.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        wait_until("bird is restarted", || running_pid(&speaker).is_some_and(|p| p != pid));
        assert_eq!(speaker.status().restarts, 1);
        wait_until("BIRD holds the routes again", || bird_routes(&bgp) == ["198.18.11.1/32"]);

        // A reload's [bgp] goes to BIRD by configure too.
        let mut changed = bgp.clone();
        changed.neighbors.push(BgpNeighbor {
            address: Ipv4Addr::new(198, 18, 0, 253),
            remote_as: 65002,
            password: None,
        });
        let pid = running_pid(&speaker).expect("running");
        speaker.reconfigure(changed);
        wait_until("the new neighbour shows", || speaker.status().neighbors.len() == 2 && speaker.status().settled);
        wait_until("BIRD has the new protocol", || {
            birdc::command(&Paths::new(&bgp.runtime_dir).socket, "show protocols", Duration::from_secs(2))
                .is_ok_and(|r| r.text().contains("bgp_198_18_0_253"))
        });
        assert_eq!(running_pid(&speaker), Some(pid));

        speaker.stop();
        wait_until("bird is gone", || !pid_alive(pid));
        let log = lines.lock().unwrap().join("\n");
        assert!(log.contains("bgp: bird started"), "{log}");
        assert!(log.contains("exited (signal: 9"), "{log}");
        assert!(log.contains("stopped"), "{log}");
        let _ = std::fs::remove_dir_all(&bgp.runtime_dir);
    });
}

#[test]
fn preflight_refuses_what_would_fail_later() {
    isolated(|| {
        let mut missing = bgp("missing");
        missing.bird = PathBuf::from("/nonexistent/bird");
        let e = preflight(&missing).unwrap_err();
        assert!(e.contains("no such executable"), "{e}");

        // Two appliances on one runtime directory would fight over BIRD's files.
        let bgp = bgp("busy");
        let binary = preflight(&bgp).expect("preflight");
        let (log, _) = collecting();
        let speaker = Speaker::start(bgp.clone(), binary, log).expect("start");
        wait_until("bird answers", || {
            birdc::command(&Paths::new(&bgp.runtime_dir).socket, "show status", Duration::from_secs(1)).is_ok()
        });
        let e = preflight(&bgp).unwrap_err();
        assert!(e.contains("another BIRD answers"), "{e}");
        speaker.stop();
        // Its socket, left behind or not, no longer stands in the way.
        preflight(&bgp).expect("free again");
        let _ = std::fs::remove_dir_all(&bgp.runtime_dir);
    });
}
