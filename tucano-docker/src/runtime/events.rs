//! The engine's events about this worker's containers (exits, OOM kills), followed for as
//! long as the runtime lives and turned into [`RuntimeEvent`]s.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bollard::Docker;
use bollard::models::EventMessage;
use bollard::query_parameters::{EventsOptionsBuilder, InspectContainerOptions};
use futures_util::StreamExt;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tucano_core::{InstanceId, RuntimeEvent, WorkerId};

use super::exit_status::exit_status;
use super::labels::{INSTANCE_LABEL, WORKER_LABEL};
use crate::engine::{ENGINE_TIMEOUT, within};

/// First wait before following the events again after the stream broke.
const RECONNECT_FIRST: Duration = Duration::from_millis(100);
/// Longest wait between reconnections.
const RECONNECT_MAX: Duration = Duration::from_secs(5);

/// Follows `worker`'s container events on `docker`, sending an [`RuntimeEvent::Exited`] on
/// `events` for each container that dies. Reconnects with backoff when the stream breaks,
/// from the time of the last event seen (so none is lost; one may repeat, harmlessly).
pub(crate) fn spawn_watcher(
    docker: Docker,
    worker: WorkerId,
    events: broadcast::Sender<RuntimeEvent>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let filters = HashMap::from([
            ("type", vec!["container".to_owned()]),
            ("label", vec![format!("{WORKER_LABEL}={worker}")]),
            ("event", vec!["die".to_owned(), "oom".to_owned()]),
        ]);
        let mut since: Option<i64> = None;
        let mut oom_killed = HashSet::new();
        let mut backoff = RECONNECT_FIRST;
        loop {
            let mut options = EventsOptionsBuilder::new().filters(&filters);
            let since_text = since.map(|t| t.to_string());
            if let Some(since) = &since_text {
                options = options.since(since);
            }
            let mut stream = docker.events(Some(options.build()));
            while let Some(message) = stream.next().await {
                match message {
                    Ok(message) => {
                        backoff = RECONNECT_FIRST;
                        since = message.time.or(since);
                        if let Some(event) = to_event(&docker, &message, &mut oom_killed).await {
                            // No receiver is not an error: nobody is listening yet.
                            let _ = events.send(event);
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "Docker event stream broke; following it again");
                        break;
                    }
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(RECONNECT_MAX);
        }
    })
}

/// The runtime event for an engine event: a `die` becomes an exit (OOM-killed if an `oom`
/// came first or the engine's state says so); an `oom` is remembered for the `die` to come.
async fn to_event(
    docker: &Docker,
    message: &EventMessage,
    oom_killed: &mut HashSet<String>,
) -> Option<RuntimeEvent> {
    let actor = message.actor.as_ref()?;
    let container = actor.id.clone()?;
    let attributes = actor.attributes.as_ref()?;
    match message.action.as_deref()? {
        "oom" => {
            oom_killed.insert(container);
            None
        }
        "die" => {
            let instance: InstanceId = attributes.get(INSTANCE_LABEL)?.parse().ok()?;
            let code = attributes
                .get("exitCode")
                .and_then(|code| code.parse().ok())
                .unwrap_or(-1);
            let oom = oom_killed.remove(&container) || engine_says_oom(docker, &container).await;
            Some(RuntimeEvent::Exited {
                instance,
                status: exit_status(code, oom),
            })
        }
        _ => None,
    }
}

/// Whether the engine flags `container` as OOM-killed (false if it is already gone).
async fn engine_says_oom(docker: &Docker, container: &str) -> bool {
    let inspect = within(
        ENGINE_TIMEOUT,
        "container inspect",
        docker.inspect_container(container, None::<InspectContainerOptions>),
    )
    .await;
    matches!(inspect, Ok(Ok(c)) if c.state.as_ref().and_then(|s| s.oom_killed) == Some(true))
}
