//! How the engine's view of an ended container becomes an [`ExitStatus`].

use bollard::models::ContainerState;
use tucano_core::ExitStatus;

/// The status of a container that exited with `exit_code` (`128 + n` when signal `n` ended
/// it, as the engine reports it) and whose OOM flag is `oom_killed`.
pub(crate) fn exit_status(exit_code: i64, oom_killed: bool) -> ExitStatus {
    let signal = (129..=128 + 64)
        .contains(&exit_code)
        .then(|| exit_code - 128);
    ExitStatus {
        code: match signal {
            Some(_) => None,
            None => i32::try_from(exit_code).ok(),
        },
        signal: signal.and_then(|s| i32::try_from(s).ok()),
        oom_killed,
    }
}

/// The status of a container in engine state `state` (an unknown exit code reads as -1).
pub(crate) fn exit_status_of(state: &ContainerState) -> ExitStatus {
    exit_status(
        state.exit_code.unwrap_or(-1),
        state.oom_killed.unwrap_or(false),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_signals_and_oom() {
        assert_eq!(exit_status(3, false).code, Some(3));
        assert_eq!(exit_status(0, false).signal, None);
        let killed = exit_status(137, false);
        assert_eq!((killed.code, killed.signal), (None, Some(9)));
        assert_eq!(exit_status(143, false).signal, Some(15));
        assert!(exit_status(137, true).oom_killed);
        assert_eq!(exit_status(255, false).code, Some(255));
    }
}
