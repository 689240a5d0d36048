//! The labels that mark a container as a Tucano instance, and whose.

use std::collections::HashMap;

use tucano_core::{InstanceSpec, WorkerId};

/// Label holding the instance's service name.
pub const SERVICE_LABEL: &str = "tucano.service";
/// Label holding the instance id.
pub const INSTANCE_LABEL: &str = "tucano.instance";
/// Label holding the id of the worker that runs the instance.
pub const WORKER_LABEL: &str = "tucano.worker";
/// Label holding the port the instance listens on inside its container.
pub const PORT_LABEL: &str = "tucano.port";

/// The labels of `spec`'s container on `worker`.
pub(crate) fn instance_labels(
    spec: &InstanceSpec,
    worker: &WorkerId,
    port: u16,
) -> HashMap<String, String> {
    HashMap::from([
        (SERVICE_LABEL.to_owned(), spec.service.to_string()),
        (INSTANCE_LABEL.to_owned(), spec.id.to_string()),
        (WORKER_LABEL.to_owned(), worker.to_string()),
        (PORT_LABEL.to_owned(), port.to_string()),
    ])
}

/// The engine filter selecting `worker`'s containers.
pub(crate) fn worker_filter(worker: &WorkerId) -> HashMap<String, Vec<String>> {
    label_filter(&format!("{WORKER_LABEL}={worker}"))
}

/// The engine filter selecting the containers that carry `label` (`key=value`).
pub(crate) fn label_filter(label: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![label.to_owned()])])
}
