//! Who listens on a port: tells the readiness probe whether the connection it made reached
//! the instance it started, or another program that happened to take the same port.

use std::collections::HashSet;
use std::fs;

/// Whether a process of process group `group` listens on TCP `port`; `None` when `/proc`
/// cannot tell (not Linux, or not readable), in which case the caller trusts the connection.
pub fn group_listens_on(port: u16, group: u32) -> Option<bool> {
    let inodes = listening_inodes(port)?;
    if inodes.is_empty() {
        return Some(false);
    }
    let processes = fs::read_dir("/proc").ok()?;
    for process in processes.flatten() {
        let Some(pid) = process
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        if process_group(pid) != Some(group) {
            continue;
        }
        let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            let Ok(target) = fs::read_link(fd.path()) else {
                continue;
            };
            let owned = target
                .to_str()
                .and_then(|t| t.strip_prefix("socket:["))
                .and_then(|t| t.strip_suffix(']'))
                .and_then(|t| t.parse::<u64>().ok())
                .is_some_and(|inode| inodes.contains(&inode));
            if owned {
                return Some(true);
            }
        }
    }
    Some(false)
}

/// Socket inodes in LISTEN state on `port`, IPv4 and IPv6.
fn listening_inodes(port: u16) -> Option<HashSet<u64>> {
    let mut inodes = HashSet::new();
    let mut readable = false;
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        inodes.extend(
            text.lines()
                .skip(1)
                .filter_map(|line| listening_inode(line, port)),
        );
    }
    readable.then_some(inodes)
}

/// The inode of one `/proc/net/tcp` line if it is a listener on `port`.
fn listening_inode(line: &str, port: u16) -> Option<u64> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    let local = fields.get(1)?;
    let state = fields.get(3)?;
    let inode = fields.get(9)?;
    let local_port = u16::from_str_radix(local.rsplit_once(':')?.1, 16).ok()?;
    (*state == "0A" && local_port == port)
        .then(|| inode.parse().ok())
        .flatten()
}

/// The process group of `pid`, from `/proc/<pid>/stat`.
fn process_group(pid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    rest.split_whitespace().nth(2)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn parses_listeners_from_proc_lines() {
        let line = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        assert_eq!(listening_inode(line, 0x1F90), Some(12345));
        assert_eq!(listening_inode(line, 81), None);
        let established = line.replace(" 0A ", " 01 ");
        assert_eq!(listening_inode(&established, 0x1F90), None);
        assert_eq!(listening_inode("garbage", 1), None);
    }

    #[test]
    fn finds_our_own_listener_and_not_others() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let own_group = process_group(std::process::id()).unwrap();
        assert_eq!(group_listens_on(port, own_group), Some(true));
        assert_eq!(
            group_listens_on(port, own_group.wrapping_add(7_000_000)),
            Some(false)
        );
        drop(listener);
        assert_eq!(group_listens_on(port, own_group), Some(false));
    }
}
