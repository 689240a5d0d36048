//! The routing table's background upkeep: ejections, slow start and health checks.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::clock;
use crate::health_check::HealthChecker;
use crate::routing_table::RoutingTable;

/// How often the upkeep runs.
pub const TICK: Duration = Duration::from_millis(100);

/// Runs [`RoutingTable::tick`] every [`TICK`] and the active health checks that are due,
/// until stopped or dropped.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use std::sync::Arc;
/// use tucano_lb::{Maintenance, RoutingTable};
/// let table = Arc::new(RoutingTable::new());
/// let upkeep = Maintenance::start(Arc::clone(&table));
/// upkeep.stop().await;
/// # }
/// ```
#[derive(Debug)]
#[must_use = "the upkeep stops when this handle is dropped"]
pub struct Maintenance {
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl Maintenance {
    /// Starts the upkeep of `table` on the current Tokio runtime.
    pub fn start(table: Arc<RoutingTable>) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            let mut checker = HealthChecker::new();
            let mut interval = tokio::time::interval(TICK);
            interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    _ = interval.tick() => {}
                    _ = stopped.changed() => return,
                }
                let now = clock::now_ns();
                table.tick(now);
                checker.run_due(&table, now);
            }
        });
        Self {
            stop,
            task: Some(task),
        }
    }

    /// Stops the upkeep and waits for it.
    pub async fn stop(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Maintenance {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
