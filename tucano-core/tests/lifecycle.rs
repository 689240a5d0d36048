//! Instance lifecycle with fake workers: restart policies, crash-loop backoff, where
//! replacements go, and rolling updates with their rollback.

mod support;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use support::*;
use tucano_core::controller::{ControllerConfig, RebalanceConfig};
use tucano_core::store::MemoryStore;
use tucano_core::wire::ServiceView;
use tucano_core::{
    AttemptLimits, InstanceState, RestartPolicy, RetryPolicy, RolloutState, ServiceSpec,
};

/// A harness whose workers stay alive without heartbeats: only what a test does moves
/// instances.
async fn patient_harness(config: ControllerConfig) -> Harness {
    let config = ControllerConfig {
        liveness_timeout: Duration::from_secs(3600),
        ..config
    };
    harness_with(config, Arc::new(MemoryStore::new())).await
}

fn restarting(name: &str, replicas: u32, restart: RestartPolicy) -> ServiceSpec {
    ServiceSpec {
        restart,
        ..spec(name, replicas)
    }
}

fn live(view: &ServiceView) -> usize {
    view.instances
        .iter()
        .filter(|i| i.state.counts_as_replica())
        .count()
}

#[tokio::test(start_paused = true)]
async fn restart_policies_decide_which_ended_instances_are_replaced() {
    let h = patient_harness(config()).await;
    let a = h.register("a").await;
    for (name, policy) in [
        ("always", RestartPolicy::Always),
        ("on-failure", RestartPolicy::OnFailure),
        ("never", RestartPolicy::Never),
    ] {
        h.controller
            .create_service(restarting(name, 2, policy))
            .await
            .unwrap();
        let view = h
            .wait_for(name, |v| count(v, InstanceState::Running) == 2)
            .await;
        // One exits cleanly, the other crashes.
        let (clean, crashed) = (view.instances[0].id, view.instances[1].id);
        let report = with_exit(with_exit(h.workers.report(&a), clean, 0), crashed, 1);
        h.heartbeat(&a, report).await.unwrap();
        h.workers
            .running
            .lock()
            .unwrap()
            .retain(|id, _| *id != clean && *id != crashed);
    }
    tokio::time::sleep(Duration::from_secs(5)).await;
    let replaced = |name: &str, expected: usize| {
        let h = &h;
        let name = name.to_owned();
        async move {
            let view = h
                .wait_for(&name, |v| count(v, InstanceState::Failed) == 2)
                .await;
            assert_eq!(live(&view), expected, "{name}: {view:#?}");
            assert_eq!(view.replicas.desired, 2);
        }
    };
    replaced("always", 2).await;
    replaced("on-failure", 1).await;
    replaced("never", 0).await;

    // Scaling gives the ended slots back: the service runs its replica count again.
    h.controller.scale_service("never", 3).await.unwrap();
    let view = h
        .wait_for("never", |v| count(v, InstanceState::Running) == 3)
        .await;
    assert_eq!(count(&view, InstanceState::Failed), 2, "history is kept");
}

#[tokio::test(start_paused = true)]
async fn crash_loop_backoff_grows_with_jitter_and_caps() {
    let initial = Duration::from_millis(400);
    let cap = Duration::from_millis(3200);
    let config = ControllerConfig {
        attempts: AttemptLimits { start: 1, stop: 5 },
        crash_backoff: RetryPolicy::new(0, initial, cap),
        ..config()
    };
    let h = patient_harness(config.clone()).await;
    let a = h.register("a").await;
    h.workers.failing.lock().unwrap().insert(a);
    h.controller
        .create_service(spec("crashy", 1))
        .await
        .unwrap();
    let starts = 9;
    for _ in 0..400 {
        if h.workers.start_times.lock().unwrap().len() >= starts {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let times = h.workers.start_times.lock().unwrap().clone();
    assert!(times.len() >= starts, "only {} starts", times.len());
    let gaps: Vec<Duration> = times.windows(2).map(|w| w[1] - w[0]).collect();
    // Each replacement waits between half and all of initial × 2^(failures-1), capped; the
    // controller acts on its next tick after that.
    let slack = config.tick * 2;
    for (index, gap) in gaps.iter().enumerate() {
        let nominal = config.crash_backoff.nominal_delay(index as u32 + 1);
        assert!(
            *gap >= nominal / 2 && *gap <= nominal + slack,
            "gap {index}: {gap:?} outside [{:?}, {:?}] (gaps {gaps:?})",
            nominal / 2,
            nominal + slack
        );
    }
    assert!(
        gaps[..3].iter().sum::<Duration>() < gaps[5..8].iter().sum::<Duration>(),
        "grows: {gaps:?}"
    );
    assert!(gaps.iter().all(|gap| *gap <= cap + slack), "caps: {gaps:?}");
    let capped: Vec<&Duration> = gaps[4..].iter().collect();
    assert!(
        capped.windows(2).any(|w| w[0] != w[1]),
        "jittered, not lockstep: {gaps:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_replacement_prefers_another_worker_than_where_its_instance_failed() {
    let h = patient_harness(config()).await;
    let a = h.register("a").await;
    let b = h.register("b").await;
    for round in 0..4 {
        let name = format!("svc-{round}");
        h.controller.create_service(spec(&name, 1)).await.unwrap();
        let view = h
            .wait_for(&name, |v| count(v, InstanceState::Running) == 1)
            .await;
        let first = &view.instances[0];
        let failed_on = first.worker.clone().unwrap();
        let on = if failed_on == a { &a } else { &b };
        h.heartbeat(on, with_exit(h.workers.report(on), first.id, 1))
            .await
            .unwrap();
        h.workers.running.lock().unwrap().remove(&first.id);
        let view = h
            .wait_for(&name, |v| count(v, InstanceState::Running) == 1)
            .await;
        let replacement = view
            .instances
            .iter()
            .find(|i| i.state == InstanceState::Running)
            .unwrap();
        assert_ne!(replacement.worker.as_ref(), Some(&failed_on), "{view:#?}");
    }
}

/// Whether a service's latest rolling update is in `state`.
fn rollout_is(state: RolloutState) -> impl Fn(&ServiceView) -> bool {
    move |view| view.rollout.as_ref().is_some_and(|r| r.state == state)
}

fn updated(view: &ServiceView, program: &str) -> ServiceSpec {
    let mut spec = view.spec.clone();
    spec.command = vec![program.into()];
    spec
}

#[tokio::test(start_paused = true)]
async fn a_rolling_update_replaces_every_instance_without_dropping_below_the_replica_count() {
    let h = patient_harness(config()).await;
    h.register("a").await;
    h.register("b").await;
    let created = h.controller.create_service(spec("web", 4)).await.unwrap();
    assert_eq!(created.revision, 1);
    assert!(created.rollout.is_none());
    let before = h
        .wait_for("web", |v| count(v, InstanceState::Running) == 4)
        .await;
    h.routes.fewest_since_last("web");

    let started = h
        .controller
        .update_service(updated(&before, "/bin/demo-v2"))
        .await
        .unwrap();
    assert_eq!(started.revision, 2);
    let rollout = started.rollout.clone().unwrap();
    assert_eq!((rollout.from_revision, rollout.to_revision), (1, 2));
    let done = h.wait_for("web", rollout_is(RolloutState::Complete)).await;
    let running: Vec<_> = done
        .instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
        .collect();
    assert_eq!(running.len(), 4);
    assert!(running.iter().all(|i| i.revision == 2), "{done:#?}");
    let programs = h.workers.programs.lock().unwrap().clone();
    assert!(running.iter().all(|i| programs[&i.id] == "/bin/demo-v2"));
    assert_eq!(
        count(&done, InstanceState::Terminated),
        4,
        "every old one stopped"
    );
    assert_eq!(done.rollout.unwrap().ready, 4);
    // max_unavailable 0: the balancer never had fewer than 4 instances.
    assert_eq!(h.routes.fewest_since_last("web"), Some(4));

    // A change that does not touch what instances run applies in place.
    let mut scaled = done.spec.clone();
    scaled.replicas = 5;
    let view = h.controller.update_service(scaled).await.unwrap();
    assert_eq!(view.revision, 2);
}

#[tokio::test(start_paused = true)]
async fn a_broken_revision_is_rolled_back_after_its_deadline() {
    let h = patient_harness(config()).await;
    h.register("a").await;
    h.register("b").await;
    let mut first = spec("web", 3);
    first.update.deadline = Duration::from_secs(5);
    h.controller.create_service(first).await.unwrap();
    let before = h
        .wait_for("web", |v| count(v, InstanceState::Running) == 3)
        .await;
    let old: Vec<_> = before.instances.iter().map(|i| i.id).collect();
    *h.workers.broken_program.lock().unwrap() = Some("/bin/broken".into());
    h.routes.fewest_since_last("web");

    h.controller
        .update_service(updated(&before, "/bin/broken"))
        .await
        .unwrap();
    let back = h
        .wait_for("web", rollout_is(RolloutState::RolledBack))
        .await;
    assert_eq!(back.revision, 1);
    assert_eq!(back.spec.command, vec!["/bin/demo".to_string()]);
    let rollout = back.rollout.clone().unwrap();
    let reason = rollout.reason.unwrap_or_default();
    assert!(
        reason.contains("revision 2") && reason.contains("5s"),
        "{reason}"
    );
    // The old instances never stopped, and nothing of revision 2 is left.
    for id in &old {
        let instance = back.instances.iter().find(|i| i.id == *id).unwrap();
        assert_eq!(instance.state, InstanceState::Running);
    }
    assert!(
        back.instances
            .iter()
            .filter(|i| i.revision == 2)
            .all(|i| i.state.is_final())
    );
    assert_eq!(h.routes.fewest_since_last("web"), Some(3));
    // The next update gets a fresh revision number.
    let next = h
        .controller
        .update_service(updated(&back, "/bin/demo-v3"))
        .await
        .unwrap();
    assert_eq!(next.revision, 3);
    let done = h.wait_for("web", rollout_is(RolloutState::Complete)).await;
    assert_eq!(done.rollout.unwrap().from_revision, 1);
}

/// Running instances of `view` per worker, sorted.
fn spread(view: &ServiceView) -> Vec<usize> {
    let mut counts: Vec<usize> = running_on(view).into_values().collect();
    counts.sort();
    counts
}

#[tokio::test(start_paused = true)]
async fn rebalancing_evens_out_a_skewed_service_no_faster_than_its_rate_limit() {
    let interval = Duration::from_secs(2);
    let config = ControllerConfig {
        rebalance: Some(RebalanceConfig {
            interval,
            max_moves: 1,
        }),
        ..config()
    };
    let h = patient_harness(config).await;
    h.register("a").await;
    h.controller.create_service(spec("web", 6)).await.unwrap();
    let before = h
        .wait_for("web", |v| count(v, InstanceState::Running) == 6)
        .await;
    let original: HashSet<_> = before.instances.iter().map(|i| i.id).collect();
    h.register("b").await;
    h.register("c").await;
    h.routes.fewest_since_last("web");
    let joined = tokio::time::Instant::now();
    let mut view = before;
    for _ in 0..600 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        view = h.controller.service("web").await.unwrap();
        let started = view
            .instances
            .iter()
            .filter(|i| !original.contains(&i.id))
            .count();
        let passes = (joined.elapsed().as_secs_f64() / interval.as_secs_f64()).floor() as usize + 1;
        assert!(started <= passes, "{started} moves after {passes} passes");
        if spread(&view) == [2, 2, 2] && count(&view, InstanceState::Running) == 6 {
            break;
        }
    }
    assert_eq!(spread(&view), [2, 2, 2], "{view:#?}");
    let moved = view
        .instances
        .iter()
        .filter(|i| !original.contains(&i.id))
        .count();
    assert_eq!(moved, 4, "exactly the moves needed");
    assert_eq!(count(&view, InstanceState::Terminated), 4);
    assert_eq!(
        h.routes.fewest_since_last("web"),
        Some(6),
        "never below the replica count"
    );
    // Balanced: later passes move nothing.
    tokio::time::sleep(interval * 5).await;
    let later = h.controller.service("web").await.unwrap();
    assert_eq!(later.instances.len(), view.instances.len());
}

#[tokio::test(start_paused = true)]
async fn without_rebalancing_a_joining_worker_moves_nothing() {
    let h = patient_harness(config()).await;
    h.register("a").await;
    h.controller.create_service(spec("web", 4)).await.unwrap();
    h.wait_for("web", |v| count(v, InstanceState::Running) == 4)
        .await;
    h.register("b").await;
    tokio::time::sleep(Duration::from_secs(120)).await;
    let view = h.controller.service("web").await.unwrap();
    assert_eq!(running_on(&view), HashMap::from([("a".to_string(), 4)]));
    assert_eq!(view.instances.len(), 4);
}
