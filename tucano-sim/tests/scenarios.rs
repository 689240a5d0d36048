//! The simulator's scenarios: deterministic for a seed, and the goals of issue 6 hold.

use std::time::Duration;

use tucano_sim::scenarios::{self, Results, SCENARIOS};
use tucano_sim::{ClusterSpec, LoadProfile, Scaling, ServiceTime, SimConfig, simulate};

fn csv(results: &Results) -> Vec<(String, String)> {
    results
        .tables
        .iter()
        .map(|(name, table)| (name.clone(), table.to_csv()))
        .collect()
}

fn goals_met(results: &Results) {
    assert!(!results.goals.is_empty(), "{} checks no goal", results.name);
    for goal in &results.goals {
        assert!(goal.met, "{}", goal.description);
    }
}

#[test]
fn the_same_seed_gives_identical_csv_and_another_seed_does_not() {
    for name in ["burst", "step"] {
        let first = csv(&scenarios::compute(name, 11).unwrap());
        let again = csv(&scenarios::compute(name, 11).unwrap());
        assert_eq!(first, again, "{name} differs between two runs with seed 11");
        let other = csv(&scenarios::compute(name, 12).unwrap());
        assert_ne!(first, other, "{name} ignores its seed");
    }
}

#[test]
fn random_policies_repeat_too() {
    // power_of_two draws from tucano-lb's generator, seeded per run.
    let config = SimConfig::new(
        5,
        ClusterSpec::uniform(4, 2),
        ServiceTime::Exponential(Duration::from_millis(20)),
        LoadProfile::constant(200.0, Duration::from_secs(20)),
        "power_of_two",
        Scaling::Fixed(6),
    );
    let first = simulate(&config).unwrap();
    assert!(first.completed() > 3_000);
    assert_eq!(first, simulate(&config).unwrap());
}

#[test]
fn least_connections_needs_no_more_replicas_than_round_robin() {
    let results = scenarios::compute("replicas_vs_load", scenarios::DEFAULT_SEED).unwrap();
    goals_met(&results);
    let table = results.table("replicas_vs_load.csv").unwrap();
    let column = |policy: &str, index: usize| -> Vec<f64> {
        table
            .rows()
            .iter()
            .filter(|row| row[1] == policy)
            .map(|row| row[index].parse().unwrap())
            .collect()
    };
    // The capacity policy: replicas needed (column 3), and their unrounded means (column 2).
    let (rr, lc) = (column("round_robin", 3), column("least_connections", 3));
    assert_eq!((rr.len(), lc.len()), (16, 16));
    for (rr, lc) in rr.iter().zip(&lc) {
        assert!(lc <= rr, "least connections {lc} > round robin {rr}");
    }
    let (rr_mean, lc_mean) = (column("round_robin", 2), column("least_connections", 2));
    // Not equal throughout: at high rates round robin needs clearly more.
    assert!(
        rr_mean.last().unwrap() - lc_mean.last().unwrap() >= 4.0,
        "{rr_mean:?} {lc_mean:?}"
    );
    // The fewest fixed replicas holding the p95 target (column 5), a sizing without autoscaler.
    let (rr, lc) = (column("round_robin", 5), column("least_connections", 5));
    for (rr, lc) in rr.iter().zip(&lc) {
        assert!(
            lc <= rr,
            "sizing: least connections {lc} > round robin {rr}"
        );
    }
}

#[test]
fn a_burst_scales_up_and_back_to_the_minimum() {
    goals_met(&scenarios::compute("burst", scenarios::DEFAULT_SEED).unwrap());
}

#[test]
fn under_a_step_a_policy_holds_the_runs_p95_with_a_quarter_fewer_replica_seconds() {
    goals_met(&scenarios::compute("step", scenarios::DEFAULT_SEED).unwrap());
}

#[test]
fn under_a_square_wave_target_reverses_at_most_once_per_window() {
    goals_met(&scenarios::compute("square_wave", scenarios::DEFAULT_SEED).unwrap());
}

#[test]
fn least_connections_answers_faster_than_round_robin_and_one_server() {
    let results = scenarios::compute("response_time", scenarios::DEFAULT_SEED).unwrap();
    let table = results.table("response_time.csv").unwrap();
    let total = |setup: &str| -> f64 {
        table
            .rows()
            .iter()
            .filter(|row| row[0] == "8000" && row[1] == setup)
            .map(|row| row[2].parse::<f64>().unwrap())
            .next()
            .unwrap()
    };
    let (single, rr, lc) = (
        total("single"),
        total("round_robin"),
        total("least_connections"),
    );
    assert!(lc < rr && rr < single, "{lc} {rr} {single}");
}

#[test]
fn write_puts_every_table_and_chart_in_the_directory() {
    let font = std::env::var_os("TUCANO_PLOT_FONT").is_some()
        || std::path::Path::new("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf").exists()
        || std::path::Path::new("/usr/share/fonts/TTF/DejaVuSans.ttf").exists();
    if !font {
        assert!(
            std::env::var_os("TUCANO_REQUIRE_FONT").is_none(),
            "TUCANO_REQUIRE_FONT is set but no TrueType font is installed"
        );
        println!(
            "SKIPPED write_puts_every_table_and_chart_in_the_directory: no TrueType font (install fonts-dejavu-core or set TUCANO_PLOT_FONT)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let results = scenarios::compute("burst", 3).unwrap();
    let files = scenarios::write(&results, dir.path()).unwrap();
    assert_eq!(files.len(), results.tables.len() + results.charts.len());
    let written = std::fs::read_to_string(dir.path().join("burst.csv")).unwrap();
    assert_eq!(written, results.table("burst.csv").unwrap().to_csv());
    let png = std::fs::read(dir.path().join("burst.png")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    assert!(png.len() > 10_000, "a chart of {} bytes", png.len());
}

#[test]
fn an_unknown_scenario_is_refused_by_name() {
    let error = scenarios::compute("sawtooth", 1).unwrap_err().to_string();
    assert!(error.contains("sawtooth"), "{error}");
    for name in SCENARIOS {
        assert!(error.contains(name), "{error}");
    }
}

#[test]
fn target_tracking_on_cpu_settles_where_the_slots_are_as_busy_as_asked() {
    use tucano_core::AutoscaleSpec;
    use tucano_core::autoscale::Metric;
    use tucano_core::model::PolicySpec;
    // 80 requests/s of 50 ms keep 4 request slots busy on average: with 4 slots per replica,
    // each of N replicas is 1/N busy, so a CPU target of 0.25 wants 4 replicas. A second's
    // utilisation is noisy (about 20 requests per replica), so scale-ups wait for 10 s of
    // agreement; with the HPA's 0 s the count creeps up on the noise (to 6 here).
    let spec = AutoscaleSpec {
        min: 1,
        max: 16,
        policy: PolicySpec::Target {
            metric: Metric::Cpu,
            target: 0.25,
            tolerance: 0.1,
            scale_up_stabilization: Duration::from_secs(10),
            scale_down_stabilization: Duration::from_secs(60),
        },
        to_zero: None,
    };
    let config = SimConfig::new(
        2,
        scenarios::autoscaled_cluster(),
        ServiceTime::Exponential(Duration::from_millis(50)),
        LoadProfile::constant(80.0, Duration::from_secs(300)),
        "least_connections",
        Scaling::Autoscale(spec),
    );
    let outcome = simulate(&config).unwrap();
    let settled = outcome.samples.last().unwrap().ready;
    assert!((4..=5).contains(&settled), "settled at {settled}");
    assert!(
        outcome.decisions.iter().all(|d| d.reason.contains("cpu")),
        "{:?}",
        outcome.decisions
    );
}

#[test]
fn a_rate_that_is_not_a_finite_number_is_refused() {
    for rate in [f64::INFINITY, f64::NAN, -1.0] {
        let config = SimConfig::new(
            1,
            ClusterSpec::uniform(1, 1),
            ServiceTime::Constant(Duration::from_millis(1)),
            LoadProfile::constant(rate, Duration::from_secs(1)),
            "round_robin",
            Scaling::Fixed(1),
        );
        let error = simulate(&config).unwrap_err().to_string();
        assert!(error.contains("arrival rate"), "{error}");
    }
}
