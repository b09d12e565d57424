//! The Debian package (scripts/package) installed into a fresh Debian bookworm root that holds
//! only the package's dependencies, installed from Debian by their names (scripts/package-root
//! makes it once per machine): `dpkg -i` accepts it, it puts the binaries, the unit, the
//! conffile, the man pages and the completions where Debian expects them, the shipped config
//! passes `sluice --check-config`, the unit's own command lines start Sluice on a namespace
//! network (exception path answering, `sluicectl status` answering on the default socket,
//! SIGTERM a clean stop), and `dpkg --purge` leaves the root's file list as it was before.

mod common;

use std::collections::BTreeSet;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::*;

/// The root, under /var/tmp; removed (after its mounts) when dropped, and before use if an
/// earlier run left it.
struct Root {
    dir: PathBuf,
    mounts: Vec<PathBuf>,
}

impl Root {
    fn fresh(tarball: &str) -> Root {
        let dir = PathBuf::from("/var/tmp/sluice-test-package-root");
        remove(&dir);
        fs::create_dir_all(&dir).unwrap();
        let out = run("tar", &["-C", dir.to_str().unwrap(), "-xf", tarball]);
        assert!(out.status.success(), "tar: {}", String::from_utf8_lossy(&out.stderr));
        Root { dir, mounts: Vec::new() }
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.dir.join(inside.trim_start_matches('/'))
    }

    /// What a process in the root needs: /proc, /sys, /dev (taps: /dev/net/tun), a fresh /run.
    fn mount_system(&mut self) {
        for (what, args) in [
            ("proc", vec!["-t", "proc", "proc"]),
            ("sys", vec!["--rbind", "/sys"]),
            ("dev", vec!["--rbind", "/dev"]),
            ("run", vec!["-t", "tmpfs", "tmpfs"]),
        ] {
            let target = self.path(what);
            let mut all = args.clone();
            all.push(target.to_str().unwrap());
            let out = run("mount", &all);
            assert!(out.status.success(), "mount {what}: {}", String::from_utf8_lossy(&out.stderr));
            self.mounts.push(target);
        }
    }

    /// `chroot ROOT ARGS...`.
    fn run(&self, args: &[&str]) -> Output {
        let mut all = vec![self.dir.to_str().unwrap()];
        all.extend_from_slice(args);
        run("chroot", &all)
    }

    /// Every path in the root but the kernel's, the scratch places and dpkg's own records
    /// (its database and log change with any install).
    fn files(&self) -> BTreeSet<String> {
        const SKIP: [&str; 8] = ["proc", "sys", "dev", "run", "tmp", "var/lib/dpkg", "var/log", "var/cache/debconf"];
        let mut all = BTreeSet::new();
        let mut stack = vec![self.dir.clone()];
        while let Some(dir) = stack.pop() {
            for entry in fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let rel = path.strip_prefix(&self.dir).unwrap().to_string_lossy().into_owned();
                if SKIP.iter().any(|s| rel == *s || rel.starts_with(&format!("{s}/"))) {
                    continue;
                }
                if entry.file_type().unwrap().is_dir() {
                    stack.push(path);
                }
                all.insert(rel);
            }
        }
        all
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        for m in self.mounts.iter().rev() {
            let _ = run("umount", &["-R", "-l", m.to_str().unwrap()]);
        }
        remove(&self.dir);
    }
}

/// Removes a root an earlier run may have left, mounts first.
fn remove(dir: &Path) {
    if !dir.exists() {
        return;
    }
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let prefix = dir.to_str().unwrap();
    let mut under: Vec<&str> =
        mounts.lines().filter_map(|l| l.split(' ').nth(1)).filter(|m| m.starts_with(prefix)).collect();
    under.sort_by_key(|m| std::cmp::Reverse(m.len()));
    for m in under {
        let _ = run("umount", &["-l", m]);
    }
    let out = run("rm", &["-rf", "--one-file-system", prefix]);
    assert!(out.status.success(), "rm {prefix}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs a script of the repository with `args`; its last line of output.
fn script(name: &str, args: &[&str]) -> String {
    let out = Command::new(repo().join("scripts").join(name))
        .args(args)
        .env("SLUICE_PACKAGE_NO_SETUP", "1")
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("scripts/{name}: {e}"));
    assert!(out.status.success(), "scripts/{name} failed");
    stdout(&out).lines().last().unwrap_or_default().to_owned()
}

/// `Exec...=` command lines of a systemd unit, by key.
fn unit_command(unit: &str, key: &str) -> Vec<String> {
    let line = unit.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_else(|| panic!("{key}"));
    line.split_whitespace().map(str::to_owned).collect()
}

#[test]
fn the_package_installs_runs_and_purges_cleanly() {
    let deb = repo().join(script("package", &[]));
    // The root holds the package's dependencies, by the names its Depends gives, and no more.
    let depends = stdout(&run("dpkg-deb", &["-f", deb.to_str().unwrap(), "Depends"]));
    let names: Vec<&str> = depends.split(',').filter_map(|d| d.split_whitespace().next()).collect();
    assert!(names.contains(&"bird2") && names.contains(&"librte-eal23"), "Depends: {depends}");
    let tarball = script("package-root", &names);
    let mut root = Root::fresh(&tarball);
    let before = root.files();

    fs::copy(&deb, root.path("/tmp/sluice.deb")).unwrap();
    let out = root.run(&["dpkg", "-i", "/tmp/sluice.deb"]);
    assert!(out.status.success(), "dpkg -i: {}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    fs::remove_file(root.path("/tmp/sluice.deb")).unwrap();

    for file in [
        "/usr/sbin/sluice",
        "/usr/sbin/sluicectl",
        "/lib/systemd/system/sluice.service",
        "/etc/sluice/sluice.toml",
        "/usr/share/man/man1/sluice.1.gz",
        "/usr/share/man/man1/sluicectl.1.gz",
        "/usr/share/bash-completion/completions/sluicectl",
        "/usr/share/zsh/vendor-completions/_sluicectl",
        "/usr/share/doc/sluice/copyright",
    ] {
        assert!(root.path(file).exists(), "{file} not installed");
    }
    let conffiles = root.run(&["dpkg-query", "-W", "-f=${Conffiles}", "sluice"]);
    assert!(stdout(&conffiles).contains("/etc/sluice/sluice.toml"), "conffiles: {}", stdout(&conffiles));
    let check = root.run(&["/usr/sbin/sluice", "--check-config", "/etc/sluice/sluice.toml"]);
    assert_eq!(check.status.code(), Some(0), "the shipped config: {}", String::from_utf8_lossy(&check.stderr));
    let version = root.run(&["/usr/sbin/sluicectl", "--version"]);
    assert!(stdout(&version).starts_with("sluicectl "), "{}", stdout(&version));

    // The operator edits the conffile for this machine, then the unit's command lines run as
    // systemd would run them (RuntimeDirectory=sluice made first), on a namespace network.
    let net = TestNet::up("slp", 1);
    root.mount_system();
    fs::write(root.path("/etc/sluice/sluice.toml"), config(ONE_UDP_SERVICE)).unwrap();
    fs::create_dir_all(root.path("/run/sluice")).unwrap();
    let unit = fs::read_to_string(root.path("/lib/systemd/system/sluice.service")).unwrap();
    let in_root = |command: &[String]| {
        let mut args = vec!["netns".to_owned(), "exec".to_owned(), net.lb(), "chroot".to_owned()];
        args.push(root.dir.to_str().unwrap().to_owned());
        args.extend(command.iter().cloned());
        args
    };
    let pre = Command::new("ip").args(in_root(&unit_command(&unit, "ExecStartPre"))).output().unwrap();
    assert_eq!(pre.status.code(), Some(0), "ExecStartPre: {}", String::from_utf8_lossy(&pre.stderr));
    let log_path = std::env::temp_dir().join("sluice-test-package.log");
    let log = File::create(&log_path).unwrap();
    let mut sluice = Command::new("ip")
        .args(in_root(&unit_command(&unit, "ExecStart")))
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .unwrap();
    let log_text = || fs::read_to_string(&log_path).unwrap_or_default();
    let ready = wait_until(Duration::from_secs(30), || {
        log_text().contains("sluice: info: ready:") || matches!(sluice.try_wait(), Ok(Some(_)))
    });
    let running = ready && matches!(sluice.try_wait(), Ok(None));
    if !running {
        let _ = sluice.kill();
        let _ = sluice.wait();
        panic!("the packaged sluice did not become ready:\n{}", log_text());
    }
    let ping_ok = || run_in(&net.cli(), &["ping", "-c1", "-W1", "198.18.0.1"]).status.success();
    let answered = wait_until(Duration::from_secs(15), ping_ok);
    let status =
        Command::new("ip").args(in_root(&["/usr/sbin/sluicectl".to_owned(), "status".to_owned()])).output().unwrap();
    send_signal(sluice.id() as i32, libc::SIGTERM);
    let stopped = wait_until(Duration::from_secs(15), || matches!(sluice.try_wait(), Ok(Some(_))));
    if !stopped {
        let _ = sluice.kill();
    }
    let code = sluice.wait().ok().and_then(|s| s.code());
    assert!(answered, "no ping reply through the packaged sluice:\n{}", log_text());
    assert!(status.status.success(), "sluicectl status: {}", String::from_utf8_lossy(&status.stderr));
    assert!(stdout(&status).contains("sessions"), "{}", stdout(&status));
    assert_eq!(code, Some(0), "SIGTERM: a clean stop:\n{}", log_text());
    for m in root.mounts.drain(..).rev() {
        let out = run("umount", &["-R", m.to_str().unwrap()]);
        assert!(out.status.success(), "umount {}: {}", m.display(), String::from_utf8_lossy(&out.stderr));
    }

    let out = root.run(&["dpkg", "--purge", "sluice"]);
    assert!(out.status.success(), "dpkg --purge: {}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    let after = root.files();
    let left: Vec<&String> = after.difference(&before).collect();
    let gone: Vec<&String> = before.difference(&after).collect();
    assert!(left.is_empty() && gone.is_empty(), "after purge, left behind: {left:?}; removed: {gone:?}");
}
