//! What the end-to-end tests need from the host: root and a few tools.

use std::fs;

const NEEDED_TOOLS: [&str; 7] = [
    "ip",
    "iptables",
    "ip6tables",
    "python3",
    "curl",
    "nft",
    "conntrack",
];

fn effective_uid() -> Option<u32> {
    // "Uid:\treal\teffective\tsaved\tfs" in /proc/self/status.
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

fn on_path(tool: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).any(|dir| {
        fs::metadata(dir.join(tool))
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    })
}

/// Panics, with the reason and the fix, unless this process is root and has the tools the
/// end-to-end tests run. Deliberately a failure, not a skip: a run that cannot test the
/// datapath must not look green.
pub fn require_root_and_tools() {
    let tools = NEEDED_TOOLS.join(", ");
    let fix = "run it as root, see README (tests/run-all.sh installs the tools: \
               apt-get install -y iproute2 iptables python3 curl procps nftables conntrack)";
    if effective_uid() != Some(0) {
        panic!(
            "this end-to-end test needs root and {tools}: {fix}; \
             this process is not root (it creates network namespaces)"
        );
    }
    let missing: Vec<&str> = NEEDED_TOOLS
        .iter()
        .copied()
        .filter(|t| !on_path(t))
        .collect();
    if !missing.is_empty() {
        panic!(
            "this end-to-end test needs root and {tools}: {fix}; missing on PATH: {}",
            missing.join(", ")
        );
    }
}
