//! `sluice generate-docs DIR`: the man pages of both commands and sluicectl's shell
//! completions, from the same definitions the binaries parse with (scripts/package installs
//! them).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use clap_complete::Shell;

/// Writes `sluice.1`, `sluicectl.1` and the completions of sluicectl for bash, zsh and fish
/// into `dir`; returns the paths written.
pub fn generate(dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let mut written = Vec::new();
    for command in [super::run::Cli::command(), super::ctl::Cli::command()] {
        let path = dir.join(format!("{}.1", command.get_name()));
        let mut page = Vec::new();
        clap_mangen::Man::new(command).render(&mut page)?;
        fs::write(&path, page)?;
        written.push(path);
    }
    for (shell, name) in [(Shell::Bash, "sluicectl.bash"), (Shell::Zsh, "_sluicectl"), (Shell::Fish, "sluicectl.fish")]
    {
        let path = dir.join(name);
        fs::write(&path, completion(shell))?;
        written.push(path);
    }
    Ok(written)
}

/// sluicectl's completion script for `shell`.
pub fn completion(shell: Shell) -> Vec<u8> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut super::ctl::Cli::command(), "sluicectl", &mut script);
    script
}

#[cfg(test)]
mod tests {
    #[test]
    fn pages_and_completions_name_every_command() {
        let dir = std::env::temp_dir().join(format!("sluice-docs-{}", std::process::id()));
        let written = super::generate(&dir).unwrap();
        let read = |name: &str| String::from_utf8(std::fs::read(dir.join(name)).unwrap()).unwrap();
        assert_eq!(written.len(), 5);
        let sluice = read("sluice.1");
        assert!(sluice.contains("check\\-config") && sluice.contains("import\\-keepalived"), "{sluice}");
        assert!(!sluice.contains("generate\\-docs"), "hidden");
        let ctl = read("sluicectl.1");
        for command in ["status", "services", "backend", "sessions", "reload", "drain\\-node", "undrain\\-node"] {
            assert!(ctl.contains(command), "{command}");
        }
        assert!(read("sluicectl.bash").contains("undrain-node"));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
