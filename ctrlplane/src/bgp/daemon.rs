//! The BIRD process: started in the foreground as Sluice's child, in Sluice's network
//! namespace, with its stderr (BIRD's log) read back line by line.
//!
//! A dead data path must never keep its routes, so BIRD must not outlive Sluice, however
//! Sluice ends: the child asks the kernel for SIGKILL when its parent thread dies
//! (`PR_SET_PDEATHSIG`), which holds for SIGKILL and crashes too, where no pid file or exit
//! handler would run. The thread that starts BIRD therefore lives as long as the appliance.
//! BIRD gets its own process group, so that a terminal's Ctrl-C reaches Sluice alone and Sluice
//! decides when BIRD goes (after the routes are withdrawn).

use std::io::Read;
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStderr, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Looks `bird` up as the shell would: a path as it is, a bare name in `PATH`.
pub fn resolve_binary(bird: &Path) -> Result<PathBuf, String> {
    let executable = |p: &Path| {
        std::fs::metadata(p)
            .is_ok_and(|m| m.is_file() && std::os::unix::fs::PermissionsExt::mode(&m.permissions()) & 0o111 != 0)
    };
    if bird.components().count() > 1 || bird.is_absolute() {
        return if executable(bird) {
            Ok(bird.to_owned())
        } else {
            Err(format!(
                "[bgp] bird = {:?}: no such executable (install BIRD 2: apt-get install bird2)",
                bird.display()
            ))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    // BIRD lives in sbin, which a non-root PATH may lack.
    let dirs = std::env::split_paths(&path).chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from));
    for dir in dirs {
        let candidate = dir.join(bird);
        if executable(&candidate) {
            return Ok(candidate);
        }
    }
    Err(format!("[bgp] bird = {:?}: not found in PATH or sbin (install BIRD 2: apt-get install bird2)", bird.display()))
}

/// `bird -p`: BIRD parses `config` and exits; its complaint is the error.
pub fn parse_check(bird: &Path, config: &Path) -> Result<(), String> {
    let out = Command::new(bird)
        .args(["-p", "-c"])
        .arg(config)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {}: {e}", bird.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        let text = String::from_utf8_lossy(&out.stderr);
        Err(format!("BIRD refuses the generated {}: {}", config.display(), text.trim()))
    }
}

/// A running `bird -f`.
pub struct Daemon {
    child: Child,
    stderr: ChildStderr,
    /// What BIRD wrote that does not end in a newline yet.
    partial: Vec<u8>,
    pub started: Instant,
}

impl Daemon {
    /// Starts BIRD on `config` with its control socket at `socket`.
    pub fn spawn(bird: &Path, config: &Path, socket: &Path) -> Result<Daemon, String> {
        // SAFETY: getpid has no preconditions.
        let parent = unsafe { libc::getpid() };
        let mut command = Command::new(bird);
        command
            .arg("-f")
            .arg("-c")
            .arg(config)
            .arg("-s")
            .arg(socket)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        // SAFETY: the closure runs in the child between fork and exec and calls only
        // async-signal-safe functions (prctl, getppid, setpgid, _exit), touching no memory
        // shared with the parent.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) != 0 {
                    libc::_exit(127);
                }
                // The parent died before the request took hold: nobody would ever stop BIRD.
                if libc::getppid() != parent {
                    libc::_exit(127);
                }
                libc::setpgid(0, 0);
                Ok(())
            });
        }
        let mut child = command.spawn().map_err(|e| format!("cannot start {}: {e}", bird.display()))?;
        let stderr = child.stderr.take().expect("stderr is piped");
        // SAFETY: F_SETFL on a descriptor this process owns; O_NONBLOCK changes no ownership.
        unsafe {
            let fd = stderr.as_raw_fd();
            let flags = libc::fcntl(fd, libc::F_GETFL);
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
        Ok(Daemon { child, stderr, partial: Vec::new(), started: Instant::now() })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// BIRD's exit status once it has exited.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// The complete lines BIRD logged since the last call, without their timestamps.
    pub fn log_lines(&mut self) -> Vec<String> {
        let mut chunk = [0u8; 4096];
        // Bounded: a BIRD that logs without pause cannot keep the caller here.
        for _ in 0..16 {
            match self.stderr.read(&mut chunk) {
                Ok(0) => break,
                Ok(n) => self.partial.extend_from_slice(&chunk[..n]),
                Err(_) => break,
            }
        }
        let mut lines = Vec::new();
        while let Some(end) = self.partial.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.partial.drain(..=end).collect();
            let text = String::from_utf8_lossy(&line[..end]).into_owned();
            lines.push(without_timestamp(&text).to_owned());
        }
        lines
    }

    /// SIGTERM (BIRD closes its sessions with a Cease, so peers drop the routes at once), then
    /// SIGKILL after `grace`. Returns how it ended.
    pub fn stop(mut self, grace: Duration) -> Option<ExitStatus> {
        if let Some(status) = self.exited() {
            return Some(status);
        }
        // SAFETY: kill on the pid of a child not yet reaped: the pid is still ours.
        unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM) };
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        self.child.wait().ok()
    }
}

/// `2026-11-27 13:03:15.462 <INFO> Started` becomes `<INFO> Started`.
fn without_timestamp(line: &str) -> &str {
    match line.find(" <") {
        Some(at) if line[..at].bytes().all(|b| b.is_ascii_digit() || b" -:.".contains(&b)) => &line[at + 1..],
        _ => line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_left_to_our_own_log() {
        assert_eq!(without_timestamp("2026-11-27 13:03:15.462 <INFO> Started"), "<INFO> Started");
        assert_eq!(without_timestamp("<WARN> x"), "<WARN> x");
        assert_eq!(without_timestamp("bird: I found no <thing>"), "bird: I found no <thing>");
    }

    #[test]
    fn binaries_are_found_by_path_or_name() {
        assert_eq!(resolve_binary(Path::new("sh")).map(|p| p.is_absolute()), Ok(true));
        assert_eq!(resolve_binary(Path::new("/bin/sh")), Ok(PathBuf::from("/bin/sh")));
        let missing = resolve_binary(Path::new("no-such-bird-here")).unwrap_err();
        assert!(missing.contains("not found in PATH") && missing.contains("apt-get install bird2"), "{missing}");
        let missing = resolve_binary(Path::new("/nowhere/bird")).unwrap_err();
        assert!(missing.contains("no such executable"), "{missing}");
        let plain = std::env::temp_dir().join(format!("sluice-not-executable-{}", std::process::id()));
        std::fs::write(&plain, "").unwrap();
        std::fs::set_permissions(&plain, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        let refused = resolve_binary(&plain);
        let _ = std::fs::remove_file(&plain);
        assert!(refused.is_err(), "not executable");
    }

    /// A child that would outlive its parent thread is killed by the kernel.
    #[test]
    fn the_child_dies_with_the_thread_that_started_it() {
        let dir = std::env::temp_dir().join(format!("sluice-daemon-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("sleeper");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let pid = std::thread::spawn(move || {
            let daemon = Daemon::spawn(&script, Path::new("/dev/null"), Path::new("/dev/null")).expect("spawn");
            let pid = daemon.pid();
            std::mem::forget(daemon);
            pid
        })
        .join()
        .unwrap();
        // The child is a zombie of this process once killed: reap it by pid.
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = 0;
        let mut reaped = 0;
        while Instant::now() < deadline && reaped == 0 {
            // SAFETY: waitpid on a child of this process with a valid status pointer.
            reaped = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WNOHANG) };
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(reaped, pid as libc::pid_t, "the child outlived the thread that started it");
        assert!(libc::WIFSIGNALED(status) && libc::WTERMSIG(status) == libc::SIGKILL, "status {status:#x}");
    }
}
