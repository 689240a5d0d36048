//! Per-cgroup CPU pressure (cgroup v2 `cpu.pressure`): the kernel's contention signal for one
//! instance, where the instance has a cgroup of its own.

use std::path::{Component, Path, PathBuf};
use std::sync::OnceLock;

use super::pressure::read_cpu_pressure;

/// Where cgroup v2 is mounted on this machine (`/sys/fs/cgroup` on a pure v2 host,
/// `/sys/fs/cgroup/unified` on a hybrid one), if it is.
pub fn cgroup2_mount() -> Option<&'static Path> {
    static MOUNT: OnceLock<Option<PathBuf>> = OnceLock::new();
    MOUNT
        .get_or_init(|| parse_cgroup2_mount(&std::fs::read_to_string("/proc/self/mountinfo").ok()?))
        .as_deref()
}

/// The cgroup v2 path of process `pid` (`"self"` for this process), from the `0::/path` line
/// of `/proc/<pid>/cgroup`.
pub fn cgroup2_path_of(pid: &str) -> Option<String> {
    parse_cgroup2_line(&std::fs::read_to_string(format!("/proc/{pid}/cgroup")).ok()?)
}

/// The CPU pressure of the cgroup v2 at `relative` (a path from the cgroup root, such as
/// `/system.slice/docker-<id>.scope`), if cgroup v2 is mounted and its `cpu.pressure` reads.
pub fn cgroup_cpu_pressure(relative: &str) -> Option<f64> {
    read_cpu_pressure(&cgroup_dir(cgroup2_mount()?, relative)?.join("cpu.pressure"))
}

/// The CPU pressure of process `pid`'s cgroup v2, only if that cgroup is its own: a process
/// in the same cgroup as this one (the worker) has none of its own, and its pressure would be
/// the worker's.
pub fn process_cgroup_cpu_pressure(pid: u32) -> Option<f64> {
    let path = cgroup2_path_of(&pid.to_string())?;
    if cgroup2_path_of("self").is_none_or(|own| own == path) {
        return None;
    }
    cgroup_cpu_pressure(&path)
}

/// `mount` joined with `relative`, refusing anything but plain names (no `..`).
fn cgroup_dir(mount: &Path, relative: &str) -> Option<PathBuf> {
    let relative = Path::new(relative.trim_start_matches('/'));
    if relative.as_os_str().is_empty()
        || !relative
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return None;
    }
    Some(mount.join(relative))
}

/// The mount point of the first `cgroup2` file system in a `/proc/self/mountinfo`.
fn parse_cgroup2_mount(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        (fs.split_whitespace().next()? == "cgroup2")
            .then(|| mount.split_whitespace().nth(4))
            .flatten()
            .filter(|point| !point.contains('\\'))
            .map(PathBuf::from)
    })
}

/// The path of the `0::/path` (cgroup v2) line of a `/proc/<pid>/cgroup`.
fn parse_cgroup2_line(text: &str) -> Option<String> {
    text.lines()
        .find_map(|line| line.strip_prefix("0::"))
        .filter(|path| path.starts_with('/'))
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_on_pure_and_hybrid_hosts() {
        let pure = "24 30 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            parse_cgroup2_mount(pure),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        let hybrid = "25 24 0:23 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:24 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n\
                      27 25 0:25 / /sys/fs/cgroup/cpu rw shared:11 - cgroup cgroup rw,cpu\n";
        assert_eq!(
            parse_cgroup2_mount(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        assert_eq!(
            parse_cgroup2_mount("27 25 0:25 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"),
            None
        );
    }

    #[test]
    fn reads_the_v2_line_of_a_proc_cgroup_file() {
        let hybrid =
            "4:memory:/user.slice\n1:cpu:/\n0::/user.slice/user-1000.slice/session-2.scope\n";
        assert_eq!(
            parse_cgroup2_line(hybrid).as_deref(),
            Some("/user.slice/user-1000.slice/session-2.scope")
        );
        assert_eq!(parse_cgroup2_line("4:memory:/x\n"), None);
        assert_eq!(parse_cgroup2_line("0::relative\n"), None);
    }

    #[test]
    fn cgroup_paths_stay_under_the_mount() {
        let mount = Path::new("/sys/fs/cgroup");
        assert_eq!(
            cgroup_dir(mount, "/docker/abc"),
            Some(PathBuf::from("/sys/fs/cgroup/docker/abc"))
        );
        assert_eq!(cgroup_dir(mount, "/"), None);
        assert_eq!(cgroup_dir(mount, "/a/../../etc"), None);
    }

    #[test]
    fn a_process_in_this_process_cgroup_has_no_pressure_of_its_own() {
        assert_eq!(process_cgroup_cpu_pressure(std::process::id()), None);
    }
}
