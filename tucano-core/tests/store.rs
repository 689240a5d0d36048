//! The same scenario against every `Store`: the in-memory one and SQLite on a real file.

use std::time::SystemTime;

use tucano_core::store::{MemoryStore, SqliteStore, Store, StoreOp, StoredService, StoredState};
use tucano_core::wire::{InstanceView, ScalingEvent, WorkerState, WorkerView};
use tucano_core::{
    BootId, InstanceId, InstanceState, Resources, RolloutState, RolloutStatus, RuntimeKind,
    ServiceSpec,
};

/// A service in the middle of a rolling update from revision 1 to 2, so every field is
/// stored.
fn service(name: &str, replicas: u32) -> StoredService {
    let mut spec = ServiceSpec::new(name.parse().unwrap(), vec!["/bin/demo".into()]);
    spec.replicas = replicas;
    let previous = ServiceSpec::new(name.parse().unwrap(), vec!["/bin/old-demo".into()]);
    StoredService {
        spec,
        created_at: SystemTime::now(),
        deleting: false,
        revision: 2,
        latest_revision: 2,
        previous: Some(previous),
        rollout: Some(RolloutStatus {
            state: RolloutState::InProgress,
            from_revision: 1,
            to_revision: 2,
            ready: 1,
            reason: None,
            started_at: SystemTime::now(),
            updated_at: SystemTime::now(),
        }),
        slots_reset_at: Some(SystemTime::now()),
        scaling_events: vec![ScalingEvent {
            at: SystemTime::now(),
            from: 1,
            to: 2,
            reason: "every replica full".into(),
        }],
    }
}

fn instance(service: &str) -> InstanceView {
    InstanceView {
        id: InstanceId::new(),
        service: service.parse().unwrap(),
        state: InstanceState::Running,
        revision: 2,
        worker: Some("w1".parse().unwrap()),
        address: Some("127.0.0.1:20001".parse().unwrap()),
        start_attempts: 1,
        reason: None,
        exit: None,
        created_at: SystemTime::now(),
        updated_at: SystemTime::now(),
        usage: None,
    }
}

fn worker(id: &str) -> WorkerView {
    WorkerView {
        id: id.parse().unwrap(),
        address: "http://127.0.0.1:7071".into(),
        proxy_address: "127.0.0.1:8081".parse().unwrap(),
        runtime: RuntimeKind::Process,
        capacity: Resources::default(),
        labels: [("zone".to_owned(), "a".to_owned())].into(),
        boot_id: BootId::new(),
        state: WorkerState::Alive,
        registered_at: SystemTime::now(),
        last_heartbeat_at: SystemTime::now(),
        metrics: None,
        instances: 1,
    }
}

async fn scenario(store: &dyn Store) {
    assert_eq!(store.load().await.unwrap().services.len(), 0);
    let (a, b) = (instance("web"), instance("web"));
    let other = instance("api");
    store
        .apply(vec![
            StoreOp::PutService(Box::new(service("web", 2))),
            StoreOp::PutService(Box::new(service("api", 1))),
            StoreOp::PutInstance(a.clone()),
            StoreOp::PutInstance(b.clone()),
            StoreOp::PutInstance(other.clone()),
            StoreOp::PutWorker(worker("w1")),
        ])
        .await
        .unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(state.services.len(), 2);
    assert_eq!(state.instances.len(), 3);
    assert_eq!(state.workers.len(), 1);
    assert_eq!(state.workers[0].id.as_str(), "w1");

    // Replace, delete one instance, and delete a whole service with its instances.
    let mut a2 = a.clone();
    a2.state = InstanceState::Terminated;
    store
        .apply(vec![
            StoreOp::PutService(Box::new(service("web", 5))),
            StoreOp::PutInstance(a2.clone()),
            StoreOp::DeleteInstance(b.id),
            StoreOp::DeleteService("api".parse().unwrap()),
            StoreOp::DeleteWorker("w1".parse().unwrap()),
        ])
        .await
        .unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(state.services.len(), 1);
    assert_eq!(state.services[0].spec.replicas, 5);
    assert_eq!(state.instances, vec![a2.clone()]);
    assert!(state.workers.is_empty());

    // A full replacement leaves exactly what it carries.
    let replacement = StoredState {
        services: vec![service("api", 3)],
        instances: vec![other.clone()],
        workers: vec![worker("w2")],
    };
    store
        .apply(vec![StoreOp::ReplaceAll(replacement.clone())])
        .await
        .unwrap();
    let state = store.load().await.unwrap();
    assert_eq!(state.services.len(), 1);
    assert_eq!(state.services[0].spec.name.as_str(), "api");
    assert_eq!(state.instances, vec![other]);
    assert_eq!(state.workers.len(), 1);
    store
        .apply(vec![StoreOp::ReplaceAll(StoredState::default())])
        .await
        .unwrap();
    assert_eq!(store.load().await.unwrap(), StoredState::default());
    store
        .apply(vec![
            StoreOp::ReplaceAll(replacement),
            StoreOp::PutInstance(a2),
        ])
        .await
        .unwrap();
}

#[tokio::test]
async fn memory_store_keeps_and_replaces_rows() {
    scenario(&MemoryStore::new()).await;
}

#[tokio::test]
async fn sqlite_store_keeps_and_replaces_rows_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tucano.db");
    scenario(&SqliteStore::open(&path).unwrap()).await;
    // What landed is there after reopening the file.
    let reopened = SqliteStore::open(&path).unwrap();
    let state = reopened.load().await.unwrap();
    assert_eq!(state.services.len(), 1);
    assert_eq!(state.instances.len(), 2);
}

#[tokio::test]
async fn sqlite_store_refuses_a_path_it_cannot_open() {
    assert!(SqliteStore::open("/nonexistent-dir/tucano.db").is_err());
}
