//! An instance process's resource use from `/proc`: CPU time from `/proc/<pid>/stat`, resident
//! memory from `/proc/<pid>/statm`, and its cgroup's CPU pressure when it has a cgroup of its
//! own.
//!
//! What is counted: the instance's main process (the one the runtime started), plus the CPU
//! time of its children that have ended and been waited for (`cutime` and `cstime`). Children
//! still running are not counted, nor is their memory: an instance started through a wrapper
//! script should `exec` its program.

use std::sync::OnceLock;
use std::time::Duration;

use crate::metrics::process_cgroup_cpu_pressure;
use crate::runtime::UsageSample;

/// Samples process `pid`; `None` if it is gone or its files do not read as expected.
pub fn sample(pid: u32) -> Option<UsageSample> {
    if pid == 0 {
        return None;
    }
    let ticks = parse_stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?)?;
    let pages = parse_statm_resident(&std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?)?;
    let (per_second, page_size) = system_units()?;
    Some(UsageSample {
        cpu_time: ticks_to_duration(ticks, per_second),
        memory_bytes: pages.saturating_mul(page_size),
        cpu_pressure: process_cgroup_cpu_pressure(pid),
    })
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`) and the page size, read once.
fn system_units() -> Option<(u64, u64)> {
    static UNITS: OnceLock<Option<(u64, u64)>> = OnceLock::new();
    *UNITS.get_or_init(|| {
        // SAFETY: sysconf only reads system constants.
        let (ticks, page) = unsafe {
            (
                libc::sysconf(libc::_SC_CLK_TCK),
                libc::sysconf(libc::_SC_PAGESIZE),
            )
        };
        Some((
            u64::try_from(ticks).ok().filter(|t| *t > 0)?,
            u64::try_from(page).ok().filter(|p| *p > 0)?,
        ))
    })
}

fn ticks_to_duration(ticks: u64, per_second: u64) -> Duration {
    let whole = ticks / per_second;
    let rest = ticks % per_second;
    let nanos = u128::from(rest) * 1_000_000_000 / u128::from(per_second);
    Duration::from_secs(whole) + Duration::from_nanos(u64::try_from(nanos).unwrap_or(0))
}

/// `utime + stime + cutime + cstime` of a `/proc/<pid>/stat` line, in clock ticks. The
/// command name (second field) may hold spaces and parentheses, so fields are counted from
/// the last `)`.
fn parse_stat_ticks(stat: &str) -> Option<u64> {
    let (_, after_name) = stat.rsplit_once(')')?;
    // After the name: state is field 3; utime, stime, cutime, cstime are fields 14 to 17.
    let fields: Vec<&str> = after_name.split_whitespace().take(15).collect();
    let field = |n: usize| -> Option<i64> { fields.get(n - 3)?.parse::<i64>().ok() };
    let own = field(14)?.checked_add(field(15)?)?;
    let children = field(16)?.max(0).checked_add(field(17)?.max(0))?;
    u64::try_from(own.checked_add(children)?).ok()
}

/// The resident pages (second field) of a `/proc/<pid>/statm`.
fn parse_statm_resident(statm: &str) -> Option<u64> {
    statm.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_ticks_count_from_the_last_parenthesis() {
        let stat = "4242 (tucano (demo) x) S 1 4242 4242 0 -1 4194560 1234 0 0 0 150 25 7 3 20 0 5 0 98765 123456789 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0";
        assert_eq!(parse_stat_ticks(stat), Some(150 + 25 + 7 + 3));
        assert_eq!(parse_stat_ticks("12 (sh) S 1 12 12 0 -1 0 0 0 0 0 9"), None);
        assert_eq!(parse_stat_ticks("no name here"), None);
        assert_eq!(
            parse_stat_ticks("1 (x) S 1 1 1 0 -1 0 0 0 0 0 x 1 0 0 20"),
            None
        );
    }

    #[test]
    fn statm_resident_is_the_second_field() {
        assert_eq!(
            parse_statm_resident("53422 2361 1742 224 0 3020 0\n"),
            Some(2361)
        );
        assert_eq!(parse_statm_resident("53422"), None);
    }

    #[test]
    fn ticks_become_durations_without_overflow() {
        assert_eq!(ticks_to_duration(250, 100), Duration::from_millis(2500));
        assert_eq!(
            ticks_to_duration(u64::MAX, 100),
            Duration::from_secs(u64::MAX / 100) + Duration::from_millis(150)
        );
    }

    #[test]
    fn samples_this_process() {
        let sample = sample(std::process::id()).unwrap();
        assert!(sample.memory_bytes > 1024 * 1024, "{sample:?}");
        assert_eq!(sample.cpu_pressure, None);
        assert_eq!(super::sample(0), None);
    }
}
