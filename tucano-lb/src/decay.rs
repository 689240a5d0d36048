//! How much of an old latency estimate remains after a time: `e^(-elapsed / RTT_DECAY_NS)`,
//! without calling `exp` in the common case (a library call of 15–20 ns on the pick's hot
//! path, where `peak_ewma` decays every candidate it compares).

use crate::endpoint_state::RTT_DECAY_NS;

/// Below this many time constants, `1 - x + x²/2` is `e^-x` within 2·10⁻⁷ (the next term,
/// `x³/6`, bounds the error): the case of every endpoint that had a response in the last
/// 100 ms, that is of any endpoint taking traffic.
const SERIES_LIMIT: f64 = 0.01;

/// `e^(-elapsed_ns / RTT_DECAY_NS)`, within a relative error of 2·10⁻⁷: 1 for no time,
/// towards 0 (never below it, never NaN) as time grows.
#[inline]
pub(crate) fn rtt_keep(elapsed_ns: u64) -> f64 {
    // Through i64, one instruction (u64 takes several); 2^63 ns is 292 years.
    let elapsed = i64::try_from(elapsed_ns).unwrap_or(i64::MAX) as f64;
    let x = elapsed * (1.0 / RTT_DECAY_NS);
    if x < SERIES_LIMIT {
        1.0 - x + 0.5 * x * x
    } else {
        exp_of_negative(x)
    }
}

/// `e^-x`, out of line: the branch above stays a branch (predicted for a busy endpoint)
/// rather than both sides being computed.
#[cold]
#[inline(never)]
fn exp_of_negative(x: f64) -> f64 {
    (-x).exp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_exp_closely() {
        let mut elapsed = 1u64;
        while elapsed < u64::MAX / 3 {
            for ns in [elapsed, elapsed * 2 + 1, elapsed * 3 - 1] {
                let exact = (-(ns as f64) / RTT_DECAY_NS).exp();
                let got = rtt_keep(ns);
                let error = if exact > 0.0 {
                    (got - exact).abs() / exact
                } else {
                    got
                };
                assert!(error < 2e-7, "{ns} ns: {got} vs {exact}");
            }
            elapsed = elapsed * 3 / 2 + 1;
        }
    }

    #[test]
    fn is_one_at_zero_and_falls_monotonically() {
        assert_eq!(rtt_keep(0), 1.0);
        let mut last = 1.0;
        for step in 1..20_000u64 {
            let keep = rtt_keep(step * 100_000);
            assert!(keep <= last && keep > 0.0, "{step}: {keep} after {last}");
            last = keep;
        }
        assert_eq!(rtt_keep(u64::MAX), 0.0);
    }
}
