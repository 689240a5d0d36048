//! CPU pressure stall information (PSI): the share of time some runnable task waited for a
//! CPU, the kernel's contention signal (`/proc/pressure/cpu`, Linux 4.20+).

use std::path::Path;

/// Where the kernel publishes the whole machine's CPU pressure.
pub const CPU_PRESSURE: &str = "/proc/pressure/cpu";

/// The `some avg10` of a PSI file at `path` as a share (0 to 1), if the file exists and
/// reads as PSI.
pub fn read_cpu_pressure(path: &Path) -> Option<f64> {
    parse_some_avg10(&std::fs::read_to_string(path).ok()?)
}

/// `some avg10=5.69 avg60=... total=...` → 0.0569.
fn parse_some_avg10(text: &str) -> Option<f64> {
    let line = text.lines().find(|l| l.starts_with("some "))?;
    let value = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("avg10="))?
        .parse::<f64>()
        .ok()?;
    (value.is_finite() && value >= 0.0).then(|| (value / 100.0).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_some_line_and_refuses_anything_else() {
        let psi = "some avg10=5.69 avg60=13.04 avg300=15.26 total=1717024417\nfull avg10=0.00 avg60=0.00 avg300=0.00 total=0\n";
        let share = parse_some_avg10(psi).unwrap();
        assert!((share - 0.0569).abs() < 1e-12, "{share}");
        assert_eq!(parse_some_avg10("full avg10=1.00 total=1"), None);
        assert_eq!(parse_some_avg10("some avg10=abc"), None);
        assert_eq!(parse_some_avg10(""), None);
        assert_eq!(
            read_cpu_pressure(Path::new("/nonexistent/cpu.pressure")),
            None
        );
    }
}
