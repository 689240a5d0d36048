//! What the simulation and the real run of the skew experiment share: the two cases (backend
//! latencies), the endpoints and balancing specs, the seeded arrival process, and the
//! statistics and tables.
//!
//! Used by `examples/skew.rs` (as its `workload` module) and by `tests/skew.rs` (included by
//! path), so it depends on nothing but the `tucano` and `tucano-sim` crates and the standard
//! library.

use std::fmt::Write as _;
use std::net::SocketAddr;

use tucano::core::transport::Endpoint;
use tucano::core::{BalancingSpec, HashKey, InstanceId, WorkerId};

/// The service name (and so the Host clients send) the backends are published under.
pub const SERVICE: &str = "skew";
/// The request header `consistent_hash` hashes on; every request carries a distinct value, so
/// that consistent hashing spreads requests as a random choice would.
pub const HASH_HEADER: &str = "x-skew-key";
/// The seed used unless one is given.
pub const DEFAULT_SEED: u64 = 3;
/// Requests per second offered unless another rate is given (a Poisson process).
pub const DEFAULT_RATE: f64 = 500.0;
/// The requests-in-flight count at which a backend reports full load (`x-tucano-load`), as
/// `tucano-demo`'s default `TUCANO_DEMO_CAPACITY`.
pub const CAPACITY: u32 = 100;
/// How many backends every case has.
pub const BACKENDS: usize = 10;
/// Every built-in policy, in the order tables list them.
pub const ALL_POLICIES: [&str; 7] = [
    "round_robin",
    "weighted_round_robin",
    "least_connections",
    "power_of_two",
    "peak_ewma",
    "feedback",
    "consistent_hash",
];
/// The goal of issue 3: peak_ewma's p99 at most this share of round robin's.
pub const GOAL_RATIO: f64 = 0.1;

const NS_PER_MS: f64 = 1_000_000.0;

/// One experiment case: the mean latency of each backend.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Case {
    /// Short name (`spread`, `one_slow`), as given on the command line.
    pub name: &'static str,
    /// One line saying what the case is.
    pub description: &'static str,
    /// Each backend's latency in whole milliseconds (the real run's `TUCANO_DEMO_DELAY_MS`;
    /// the simulation's mean latency).
    pub latencies_ms: [u64; BACKENDS],
}

impl Case {
    /// Ten backends whose latencies span 1 ms to 1 s in geometric steps (×10^(1/3), rounded
    /// to the millisecond), after tower's balance demo.
    pub fn spread() -> Self {
        Self {
            name: "spread",
            description: "10 backends, latencies geometric from 1 ms to 1 s",
            latencies_ms: [1, 2, 5, 10, 22, 46, 100, 215, 464, 1000],
        }
    }

    /// Ten backends of 5 to 10 ms, the first one slowed by 200 ms.
    pub fn one_slow() -> Self {
        Self {
            name: "one_slow",
            description: "10 backends of 5-10 ms, b0 slowed by +200 ms",
            latencies_ms: [205, 6, 6, 7, 7, 8, 8, 9, 9, 10],
        }
    }

    /// Both cases, in the order they run.
    pub fn all() -> Vec<Self> {
        vec![Self::spread(), Self::one_slow()]
    }

    /// The case called `name`.
    pub fn named(name: &str) -> Result<Self, String> {
        Self::all()
            .into_iter()
            .find(|case| case.name == name)
            .ok_or_else(|| format!("unknown case {name:?}; known cases: spread, one_slow"))
    }

    /// The latencies as `1 2 5 ... ms`, for headers.
    pub fn latencies_text(&self) -> String {
        let list: Vec<String> = self.latencies_ms.iter().map(u64::to_string).collect();
        format!("{} ms", list.join(" "))
    }
}

/// Parses a comma-separated list of case names (`spread,one_slow`).
pub fn parse_cases(list: &str) -> Result<Vec<Case>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .map(Case::named)
        .collect()
}

/// Parses a comma-separated list of built-in policy names; `all` means every one.
pub fn parse_policies(list: &str) -> Result<Vec<String>, String> {
    if list.trim() == "all" {
        return Ok(ALL_POLICIES.iter().map(|p| (*p).to_owned()).collect());
    }
    let mut policies = Vec::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if !ALL_POLICIES.contains(&name) {
            return Err(format!(
                "unknown policy {name:?}; known policies: {}",
                ALL_POLICIES.join(", ")
            ));
        }
        if !policies.iter().any(|p| p == name) {
            policies.push(name.to_owned());
        }
    }
    if policies.is_empty() {
        return Err("no policy given".into());
    }
    Ok(policies)
}

/// The balancing spec of `policy`: its defaults, and for `consistent_hash` a hash on
/// [`HASH_HEADER`].
pub fn balancing(policy: &str) -> BalancingSpec {
    let mut spec = BalancingSpec::named(policy);
    if policy == "consistent_hash" {
        spec.hash_key = HashKey::Header(HASH_HEADER.to_owned());
    }
    spec
}

/// One endpoint per address, with fixed instance ids (`…-000000000000`, `…-000000000001`,
/// …) so that runs are repeatable (consistent hashing orders endpoints by id), weight 1.
/// The address is both the instance's and its "worker proxy's": the real run routes
/// directly.
pub fn endpoints(addresses: &[SocketAddr]) -> Result<Vec<Endpoint>, String> {
    let worker = WorkerId::new("skew").map_err(|e| format!("worker id: {e}"))?;
    addresses
        .iter()
        .enumerate()
        .map(|(i, &address)| {
            let instance: InstanceId = format!("00000000-0000-7000-8000-{i:012x}")
                .parse()
                .map_err(|e| format!("instance id {i}: {e}"))?;
            Ok(Endpoint {
                instance,
                worker: worker.clone(),
                proxy: address,
                address,
                weight: 1,
            })
        })
        .collect()
}

/// The workload's seeded generator (arrivals, jitter), separate from the policies' own
/// generator (`tucano::lb::rng`): the simulator's SplitMix64.
pub use tucano_sim::SplitMix64;

/// A Poisson arrival process: exponential gaps of mean `1 / rate`, from time 0, seeded.
#[derive(Clone, Debug)]
pub struct Arrivals {
    rng: SplitMix64,
    rate: f64,
    at_s: f64,
}

impl Arrivals {
    /// Arrivals at `rate` per second drawn from `seed`.
    pub fn new(rate: f64, seed: u64) -> Self {
        Self {
            // A different stream from the jitter's, whatever the seed.
            rng: SplitMix64::new(seed ^ 0xA5A5_A5A5_0000_0001),
            rate,
            at_s: 0.0,
        }
    }

    /// The time of the next arrival, in nanoseconds since the start.
    pub fn next_ns(&mut self) -> u64 {
        let gap = -(1.0 - self.rng.unit()).ln() / self.rate;
        self.at_s += gap;
        (self.at_s * 1e9) as u64
    }
}

/// Latencies and per-backend counts of the requests of one policy's run.
#[derive(Clone, Debug)]
pub struct Recorder {
    latencies_ns: Vec<u64>,
    per_backend: [u64; BACKENDS],
    errors: u64,
}

impl Default for Recorder {
    fn default() -> Self {
        Self::new()
    }
}

impl Recorder {
    /// Nothing recorded yet.
    pub fn new() -> Self {
        Self {
            latencies_ns: Vec::new(),
            per_backend: [0; BACKENDS],
            errors: 0,
        }
    }

    /// A request answered by `backend` after `latency_ns`.
    pub fn record(&mut self, backend: usize, latency_ns: u64) {
        self.latencies_ns.push(latency_ns);
        if let Some(count) = self.per_backend.get_mut(backend) {
            *count += 1;
        }
    }

    /// A request that failed (an error status, a timeout, an answer from no known backend).
    pub fn error(&mut self) {
        self.errors += 1;
    }

    /// The summary of what was recorded, for `policy`.
    pub fn summary(mut self, policy: &str) -> Summary {
        self.latencies_ns.sort_unstable();
        let sorted = &self.latencies_ns;
        let n = sorted.len();
        let quantile = |q: f64| tucano_sim::nearest_rank(sorted, q).unwrap_or(0);
        let total: u128 = sorted.iter().map(|&l| u128::from(l)).sum();
        let answered: u64 = self.per_backend.iter().sum();
        let mut shares = [0.0; BACKENDS];
        if answered > 0 {
            for (share, &count) in shares.iter_mut().zip(&self.per_backend) {
                *share = count as f64 / answered as f64;
            }
        }
        Summary {
            policy: policy.to_owned(),
            requests: n as u64,
            errors: self.errors,
            p50_ns: quantile(0.50),
            p90_ns: quantile(0.90),
            p99_ns: quantile(0.99),
            p999_ns: quantile(0.999),
            max_ns: sorted.last().copied().unwrap_or(0),
            mean_ns: if n == 0 { 0.0 } else { total as f64 / n as f64 },
            shares,
        }
    }
}

/// One policy's results: latency percentiles (nearest rank), mean and maximum of the answered
/// requests, the number of failed ones, and the share of answered requests each backend got.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    /// The policy.
    pub policy: String,
    /// Requests answered (and measured).
    pub requests: u64,
    /// Requests that failed (not in the latencies).
    pub errors: u64,
    /// Median latency.
    pub p50_ns: u64,
    /// 90th percentile.
    pub p90_ns: u64,
    /// 99th percentile.
    pub p99_ns: u64,
    /// 99.9th percentile.
    pub p999_ns: u64,
    /// Slowest request.
    pub max_ns: u64,
    /// Mean latency.
    pub mean_ns: f64,
    /// Share of the answered requests per backend, in backend order.
    pub shares: [f64; BACKENDS],
}

fn ms(ns: u64) -> f64 {
    ns as f64 / NS_PER_MS
}

/// The table of `rows` for `case`, or CSV rows (with a header when `header` is true) when
/// `csv` is set. `mode` is `sim` or `real`.
pub fn table(mode: &str, case: &Case, rows: &[Summary], csv: bool, header: bool) -> String {
    let mut out = String::new();
    if csv {
        if header {
            out.push_str(
                "mode,case,policy,requests,errors,p50_ms,p90_ms,p99_ms,p999_ms,max_ms,mean_ms",
            );
            for i in 0..BACKENDS {
                let _ = write!(out, ",share_b{i}");
            }
            out.push('\n');
        }
        for row in rows {
            let _ = write!(
                out,
                "{mode},{},{},{},{},{:.3},{:.3},{:.3},{:.3},{:.3},{:.3}",
                case.name,
                row.policy,
                row.requests,
                row.errors,
                ms(row.p50_ns),
                ms(row.p90_ns),
                ms(row.p99_ns),
                ms(row.p999_ns),
                ms(row.max_ns),
                row.mean_ns / NS_PER_MS,
            );
            for share in row.shares {
                let _ = write!(out, ",{share:.5}");
            }
            out.push('\n');
        }
        return out;
    }
    let _ = writeln!(
        out,
        "{:<20} {:>6} {:>4} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} | share of requests per backend, %",
        "policy", "reqs", "errs", "p50 ms", "p90 ms", "p99 ms", "p99.9", "max ms", "mean ms"
    );
    // Two header lines under the share columns: the backend, then its latency.
    let pad = " ".repeat(20 + 7 + 5 + 9 * 6);
    let mut names = format!("{pad} |");
    let mut latencies = format!("{pad} |");
    for (i, latency) in case.latencies_ms.iter().enumerate() {
        let _ = write!(names, " {:>6}", format!("b{i}"));
        let _ = write!(latencies, " {:>6}", format!("{latency}ms"));
    }
    let _ = writeln!(out, "{names}");
    let _ = writeln!(out, "{latencies}");
    for row in rows {
        let _ = write!(
            out,
            "{:<20} {:>6} {:>4} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} {:>8.1} |",
            row.policy,
            row.requests,
            row.errors,
            ms(row.p50_ns),
            ms(row.p90_ns),
            ms(row.p99_ns),
            ms(row.p999_ns),
            ms(row.max_ns),
            row.mean_ns / NS_PER_MS,
        );
        for share in row.shares {
            let _ = write!(out, " {:>6.2}", share * 100.0);
        }
        out.push('\n');
    }
    out
}

/// peak_ewma's p99 over round robin's, when both are in `rows` and round robin's is not 0.
pub fn goal_ratio(rows: &[Summary]) -> Option<f64> {
    let p99 = |name: &str| rows.iter().find(|r| r.policy == name).map(|r| r.p99_ns);
    let (ewma, rr) = (p99("peak_ewma")?, p99("round_robin")?);
    (rr > 0).then(|| ewma as f64 / rr as f64)
}

/// One line saying whether the goal of issue 3 held, when both policies ran.
pub fn verdict(case: &Case, rows: &[Summary]) -> Option<String> {
    let ratio = goal_ratio(rows)?;
    let p99 = |name: &str| {
        rows.iter()
            .find(|r| r.policy == name)
            .map_or(0.0, |r| ms(r.p99_ns))
    };
    Some(format!(
        "{}: peak_ewma p99 {:.1} ms / round_robin p99 {:.1} ms = {:.3} -> goal (<= {GOAL_RATIO}) {}",
        case.name,
        p99("peak_ewma"),
        p99("round_robin"),
        ratio,
        if ratio <= GOAL_RATIO {
            "MET"
        } else {
            "NOT MET"
        }
    ))
}
