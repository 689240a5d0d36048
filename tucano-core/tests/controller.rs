//! Controller engine logic with fake workers: placement, scaling, retries, liveness,
//! reports, deletion and recovery.

mod support;

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use async_trait::async_trait;
use support::*;
use tucano_core::autoscale::ScalingDecision;
use tucano_core::controller::{Controller, ControllerError, ControllerParts, DeleteOutcome};
use tucano_core::scheduler::Pipeline;
use tucano_core::store::{MemoryStore, Store};
use tucano_core::wire::{LocalState, ReportedInstance};
use tucano_core::{BootId, ExitStatus, InstanceId, InstanceState, ServiceSpec, WorkerId};

#[tokio::test(start_paused = true)]
async fn deploy_spreads_and_publishes_routes() {
    let h = harness().await;
    h.register("a").await;
    h.register("b").await;
    let created = h.controller.create_service(spec("web", 4)).await.unwrap();
    assert_eq!(created.instances.len(), 4);
    let view = h
        .wait_for("web", |v| count(v, InstanceState::Running) == 4)
        .await;
    assert_eq!(
        running_on(&view).values().copied().collect::<Vec<_>>(),
        vec![2, 2]
    );
    assert!(view.instances.iter().all(|i| i.address.is_some()));
    assert_eq!(h.routes.count("web"), 4);
}

#[tokio::test(start_paused = true)]
async fn placement_rules_of_the_spec_are_obeyed_and_explained() {
    let h = harness().await;
    h.register_with_labels("a1", &[("zone", "a")]).await;
    h.register_with_labels("a2", &[("zone", "a")]).await;
    h.register_with_labels("b1", &[("zone", "b")]).await;
    let mut web = spec("web", 2);
    web.placement =
        serde_json::from_str(r#"{"constraints": ["zone=a"], "max_per_worker": 1}"#).unwrap();
    h.controller.create_service(web).await.unwrap();
    let view = h
        .wait_for("web", |v| count(v, InstanceState::Running) == 2)
        .await;
    let on = running_on(&view);
    assert_eq!(on.get("a1"), Some(&1), "{on:?}");
    assert_eq!(on.get("a2"), Some(&1), "{on:?}");

    // A third replica has nowhere to go: the answer and the pending instance say why, per
    // filter.
    let refused = h.controller.scale_service("web", 3).await.unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("2 workers already run 1 of its instances, 1 lack label zone=a"),
        "{refused}"
    );
    let view = h
        .wait_for("web", |v| {
            v.instances
                .iter()
                .any(|i| i.state == InstanceState::Pending && i.reason.is_some())
        })
        .await;
    let reason = view
        .instances
        .iter()
        .find_map(|i| i.reason.clone())
        .unwrap();
    assert!(
        reason.contains("2 workers already run 1 of its instances")
            && reason.contains("1 lack label zone=a"),
        "{reason}"
    );

    // Binpack from the spec: a second service fills one worker first.
    let mut packed = spec("packed", 3);
    packed.placement.strategy = Some(tucano_core::scheduler::Strategy::Binpack);
    packed.resources.cpus = 16.0;
    h.controller.create_service(packed).await.unwrap();
    let view = h
        .wait_for("packed", |v| count(v, InstanceState::Running) == 3)
        .await;
    let mut counts: Vec<usize> = running_on(&view).values().copied().collect();
    counts.sort();
    assert_eq!(counts, vec![3], "all on one worker of 64 CPUs: {counts:?}");
}

#[tokio::test(start_paused = true)]
async fn scaling_adds_and_stops_instances() {
    let h = harness().await;
    h.register("a").await;
    h.controller.create_service(spec("web", 2)).await.unwrap();
    h.wait_for("web", |v| count(v, InstanceState::Running) == 2)
        .await;
    h.controller.scale_service("web", 5).await.unwrap();
    h.wait_for("web", |v| count(v, InstanceState::Running) == 5)
        .await;
    let view = h.controller.scale_service("web", 1).await.unwrap();
    assert_eq!(view.replicas.desired, 1);
    let view = h
        .wait_for("web", |v| {
            count(v, InstanceState::Running) == 1 && count(v, InstanceState::Terminated) == 4
        })
        .await;
    assert_eq!(h.workers.stops.lock().unwrap().len(), 4);
    assert_eq!(h.routes.count("web"), 1);
    // The newest instances were stopped first; the oldest survives.
    let oldest = view.instances.iter().map(|i| i.id).min().unwrap();
    let survivor = view
        .instances
        .iter()
        .find(|i| i.state == InstanceState::Running)
        .unwrap();
    assert_eq!(survivor.id, oldest);
}

#[tokio::test(start_paused = true)]
async fn failed_starts_retry_then_fail_and_get_replaced() {
    let h = harness().await;
    let a = h.register("a").await;
    h.workers.failing.lock().unwrap().insert(a.clone());
    h.controller.create_service(spec("web", 1)).await.unwrap();
    let view = h
        .wait_for("web", |v| count(v, InstanceState::Failed) >= 1)
        .await;
    let failed = view
        .instances
        .iter()
        .find(|i| i.state == InstanceState::Failed)
        .unwrap();
    assert_eq!(failed.start_attempts, 3, "three attempts, then failed");
    assert!(
        failed
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("exited with code 1")
    );
    // A replacement is made (after crash backoff) and succeeds once the worker recovers.
    h.workers.failing.lock().unwrap().clear();
    let view = h
        .wait_for("web", |v| count(v, InstanceState::Running) == 1)
        .await;
    assert!(
        view.instances
            .iter()
            .any(|i| i.state == InstanceState::Failed)
    );
}

#[tokio::test(start_paused = true)]
async fn a_silent_worker_is_declared_dead_and_its_instances_replaced() {
    let h = harness().await;
    let a = h.register("a").await;
    let b = h.register("b").await;
    h.controller.create_service(spec("web", 4)).await.unwrap();
    h.wait_for("web", |v| count(v, InstanceState::Running) == 4)
        .await;
    // Only a keeps sending heartbeats.
    for _ in 0..100 {
        h.heartbeat(&a, h.workers.report(&a)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let view = h.controller.service("web").await.unwrap();
        if count(&view, InstanceState::Lost) == 2 && running_on(&view).get("a") == Some(&4) {
            break;
        }
    }
    let view = h.controller.service("web").await.unwrap();
    assert_eq!(count(&view, InstanceState::Lost), 2, "{view:#?}");
    assert_eq!(running_on(&view).get("a"), Some(&4));
    assert!(
        view.instances
            .iter()
            .filter(|i| i.state == InstanceState::Lost)
            .all(|i| i.worker.as_ref() == Some(&b))
    );
    let workers = h.controller.list_workers().await.unwrap();
    let dead = workers.iter().find(|w| w.id == b).unwrap();
    assert_eq!(dead.state, tucano_core::wire::WorkerState::Dead);
    assert_eq!(h.routes.count("web"), 4);
}

#[tokio::test(start_paused = true)]
async fn reports_drive_exits_vanishing_instances_and_orphans() {
    let h = harness().await;
    let a = h.register("a").await;
    h.controller.create_service(spec("web", 2)).await.unwrap();
    let view = h
        .wait_for("web", |v| count(v, InstanceState::Running) == 2)
        .await;
    let (first, second) = (view.instances[0].id, view.instances[1].id);

    // The worker reports the first one exited with code 3.
    let mut report = h.workers.report(&a);
    for instance in &mut report.instances {
        if instance.id == first {
            instance.state = LocalState::Exited;
            instance.exit = Some(ExitStatus {
                code: Some(3),
                signal: None,
                oom_killed: false,
            });
        }
    }
    // And an instance the controller never asked for.
    let stray = InstanceId::new();
    report.instances.push(ReportedInstance {
        id: stray,
        service: "web".parse().unwrap(),
        state: LocalState::Running,
        address: None,
        pid: None,
        exit: None,
        reason: None,
        usage: None,
    });
    h.heartbeat(&a, report).await.unwrap();
    let view = h.controller.service("web").await.unwrap();
    let exited = view.instances.iter().find(|i| i.id == first).unwrap();
    assert_eq!(exited.state, InstanceState::Failed);
    assert_eq!(exited.exit.and_then(|e| e.code), Some(3));
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stops = h.workers.stops.lock().unwrap().clone();
    assert!(
        stops.contains(&(a.clone(), stray)),
        "orphan stopped: {stops:?}"
    );
    assert!(
        stops.contains(&(a.clone(), first)),
        "exited instance forgotten: {stops:?}"
    );

    // A later report that lacks the second one: it vanished.
    h.workers.running.lock().unwrap().remove(&second);
    h.heartbeat(&a, h.workers.report(&a)).await.unwrap();
    let view = h.controller.service("web").await.unwrap();
    assert_eq!(
        view.instances
            .iter()
            .find(|i| i.id == second)
            .unwrap()
            .state,
        InstanceState::Failed
    );
    // Both are replaced.
    h.wait_for("web", |v| count(v, InstanceState::Running) == 2)
        .await;
}

#[tokio::test(start_paused = true)]
async fn heartbeats_from_unknown_or_restarted_workers_are_refused() {
    let h = harness().await;
    let a = h.register("a").await;
    let stranger: WorkerId = "stranger".parse().unwrap();
    assert!(matches!(
        h.heartbeat(&stranger, h.workers.report(&stranger)).await,
        Err(ControllerError::WorkerNotFound(_))
    ));
    let mut report = h.workers.report(&a);
    report.boot_id = BootId::new();
    assert!(matches!(
        h.heartbeat(&a, report).await,
        Err(ControllerError::WorkerNotFound(_))
    ));
    h.heartbeat(&a, h.workers.report(&a)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn delete_terminates_every_instance_then_forgets_the_service() {
    let h = harness().await;
    h.register("a").await;
    h.controller.create_service(spec("web", 3)).await.unwrap();
    h.wait_for("web", |v| count(v, InstanceState::Running) == 3)
        .await;
    match h.controller.delete_service("web").await.unwrap() {
        DeleteOutcome::Deleted(view) => {
            assert_eq!(count(&view, InstanceState::Terminated), 3, "{view:#?}");
        }
        other => panic!("expected deleted, got {other:?}"),
    }
    assert!(h.workers.running.lock().unwrap().is_empty());
    assert!(matches!(
        h.controller.service("web").await,
        Err(ControllerError::ServiceNotFound(_))
    ));
    assert_eq!(h.routes.count("web"), 0);
    // The name is free again.
    h.controller.create_service(spec("web", 1)).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn without_workers_the_service_waits_and_is_placed_when_one_registers() {
    let h = harness().await;
    let error = h
        .controller
        .create_service(spec("web", 2))
        .await
        .unwrap_err();
    match &error {
        ControllerError::NoCapacity { service, message } => {
            assert_eq!(service.instances.len(), 2);
            assert!(message.contains("2 of its instances"), "{message}");
        }
        other => panic!("expected NoCapacity, got {other:?}"),
    }
    h.register("late").await;
    h.wait_for("web", |v| count(v, InstanceState::Running) == 2)
        .await;
}

#[tokio::test(start_paused = true)]
async fn bad_requests_are_refused_without_changing_anything() {
    let h = harness().await;
    h.register("a").await;
    h.controller.create_service(spec("web", 1)).await.unwrap();
    assert!(matches!(
        h.controller.create_service(spec("web", 1)).await,
        Err(ControllerError::ServiceExists(_))
    ));
    assert!(matches!(
        h.controller
            .create_service(ServiceSpec::new("x".parse().unwrap(), vec![]))
            .await,
        Err(ControllerError::Invalid(_))
    ));
    assert!(matches!(
        h.controller.scale_service("web", 100_000).await,
        Err(ControllerError::Invalid(_))
    ));
    assert!(matches!(
        h.controller.scale_service("nope", 1).await,
        Err(ControllerError::ServiceNotFound(_))
    ));
    assert!(matches!(
        h.controller.delete_service("Not A Name").await,
        Err(ControllerError::ServiceNotFound(_))
    ));
    assert_eq!(h.controller.list_services().await.unwrap().len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_restarted_controller_recovers_from_its_store() {
    let store = Arc::new(MemoryStore::new());
    let first = harness_with(config(), store.clone()).await;
    let a = first.register("a").await;
    first
        .controller
        .create_service(spec("web", 2))
        .await
        .unwrap();
    first
        .wait_for("web", |v| count(v, InstanceState::Running) == 2)
        .await;
    first.controller.shutdown().await;
    let stored = first.store.load().await.unwrap();
    assert_eq!(stored.services.len(), 1);
    assert_eq!(stored.instances.len(), 2);
    assert_eq!(stored.workers.len(), 1);

    // A new controller over the same store, with the same worker still running both.
    let second = harness_with(config(), store).await;
    *second.workers.running.lock().unwrap() = first.workers.running.lock().unwrap().clone();
    *second.workers.boots.lock().unwrap() = first.workers.boots.lock().unwrap().clone();
    let view = second.controller.service("web").await.unwrap();
    assert_eq!(view.replicas.desired, 2);
    // Its heartbeat is refused until it registers again with its full report.
    assert!(
        second
            .heartbeat(&a, second.workers.report(&a))
            .await
            .is_err()
    );
    second.register("a").await;
    let view = second
        .wait_for("web", |v| count(v, InstanceState::Running) == 2)
        .await;
    assert_eq!(view.instances.len(), 2, "no duplicates started: {view:#?}");
    assert!(second.workers.starts.lock().unwrap().is_empty());
}

/// A store that refuses writes while `down` is set.
struct FlakyStore {
    inner: MemoryStore,
    down: std::sync::atomic::AtomicBool,
}

#[async_trait]
impl Store for FlakyStore {
    async fn load(
        &self,
    ) -> Result<tucano_core::store::StoredState, tucano_core::store::StoreError> {
        self.inner.load().await
    }
    async fn apply(
        &self,
        batch: Vec<tucano_core::store::StoreOp>,
    ) -> Result<(), tucano_core::store::StoreError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(tucano_core::store::StoreError("disk unavailable".into()));
        }
        self.inner.apply(batch).await
    }
}

#[tokio::test(start_paused = true)]
async fn writes_given_up_while_the_store_is_down_are_rewritten_deletes_included() {
    let store = Arc::new(FlakyStore {
        inner: MemoryStore::new(),
        down: std::sync::atomic::AtomicBool::new(false),
    });
    let workers = Arc::new(FakeWorkers::default());
    let parts = ControllerParts {
        scheduler: Arc::new(Pipeline::default()),
        workers: workers.clone(),
        store: store.clone(),
        endpoints: Arc::new(Routes::default()),
    };
    let controller = Controller::start(config(), parts).await.unwrap();
    controller.create_service(spec("gone", 0)).await.ok();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(store.load().await.unwrap().services.len(), 1);

    store.down.store(true, Ordering::SeqCst);
    controller.delete_service("gone").await.unwrap();
    controller.create_service(spec("kept", 0)).await.ok();
    // Long enough for the writer to give up on its batches.
    tokio::time::sleep(Duration::from_secs(30)).await;
    store.down.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let names: Vec<String> = store
        .load()
        .await
        .unwrap()
        .services
        .iter()
        .map(|s| s.spec.name.to_string())
        .collect();
    assert_eq!(
        names,
        vec!["kept".to_string()],
        "the delete made while the store was down landed"
    );
    controller.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn deleting_twice_joins_the_first_delete() {
    let h = harness().await;
    h.register("a").await;
    h.controller.create_service(spec("web", 1)).await.unwrap();
    h.wait_for("web", |v| count(v, InstanceState::Running) == 1)
        .await;
    let (first, second) = tokio::join!(
        h.controller.delete_service("web"),
        h.controller.delete_service("web")
    );
    assert!(matches!(first, Ok(DeleteOutcome::Deleted(_))), "{first:?}");
    assert!(
        matches!(second, Ok(DeleteOutcome::Deleted(_))),
        "{second:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn autoscaler_decisions_change_replicas_and_are_recorded_with_their_cause() {
    let h = harness().await;
    h.register("a").await;
    h.controller.create_service(spec("web", 1)).await.unwrap();
    let decision = |from, to, reason: &str| ScalingDecision {
        at: Duration::ZERO,
        from,
        to,
        reason: reason.into(),
    };
    let view = h
        .controller
        .apply_scaling("web", decision(1, 3, "every replica full"))
        .await
        .unwrap();
    assert_eq!(view.spec.replicas, 3);
    assert_eq!(view.instances.len(), 3);
    assert_eq!(view.scaling_events.len(), 1);
    assert_eq!(
        (view.scaling_events[0].from, view.scaling_events[0].to),
        (1, 3)
    );
    assert_eq!(view.scaling_events[0].reason, "every replica full");
    // A decision made on a count that has changed since is dropped.
    let stale = h
        .controller
        .apply_scaling("web", decision(1, 2, "stale"))
        .await
        .unwrap();
    assert_eq!(stale.spec.replicas, 3);
    assert_eq!(stale.scaling_events.len(), 1);
    // Only the latest 20 are kept, oldest first.
    for i in 0..25u32 {
        let from = 3 + i % 2;
        h.controller
            .apply_scaling("web", decision(from, 7 - from, &format!("flip {i}")))
            .await
            .unwrap();
    }
    let view = h.controller.service("web").await.unwrap();
    assert_eq!(view.scaling_events.len(), 20);
    assert_eq!(view.scaling_events[19].reason, "flip 24");
    assert!(matches!(
        h.controller
            .apply_scaling("nope", decision(1, 2, "x"))
            .await,
        Err(ControllerError::ServiceNotFound(_))
    ));
}

#[tokio::test(start_paused = true)]
async fn the_autoscaling_loop_lists_only_autoscaled_services_not_being_deleted() {
    let h = harness().await;
    h.register("a").await;
    let autoscaled = |name: &str| {
        let mut spec = spec(name, 1);
        spec.autoscale = Some(
            serde_json::from_str(
                r#"{"policy": "capacity", "min": 1, "max": 3, "max_in_flight": 2, "idle_timeout": "10s"}"#,
            )
            .unwrap(),
        );
        spec
    };
    h.controller.create_service(spec("plain", 1)).await.unwrap();
    h.controller
        .create_service(autoscaled("auto"))
        .await
        .unwrap();
    h.controller
        .create_service(autoscaled("going"))
        .await
        .unwrap();
    h.wait_for("going", |v| count(v, InstanceState::Running) == 1)
        .await;
    // Asked while the delete of "going" waits for its instance to stop.
    let (deleted, autoscaled, all) = tokio::join!(
        h.controller.delete_service("going"),
        h.controller.autoscaled_services(),
        h.controller.list_services()
    );
    assert!(
        matches!(deleted, Ok(DeleteOutcome::Deleted(_))),
        "{deleted:?}"
    );
    let names = |views: Vec<tucano_core::wire::ServiceView>| -> Vec<String> {
        let mut names: Vec<String> = views.iter().map(|s| s.name.to_string()).collect();
        names.sort();
        names
    };
    let all = all.unwrap();
    assert!(
        all.iter().any(|s| s.name.as_str() == "going" && s.deleting),
        "the delete was not in progress: {:?}",
        names(all.clone())
    );
    assert_eq!(names(all), ["auto", "going", "plain"]);
    assert_eq!(names(autoscaled.unwrap()), ["auto"]);
}
