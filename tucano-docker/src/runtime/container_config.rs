//! The engine's container configuration for an instance: image, arguments, environment,
//! labels, limits, and how its port is reached.

use std::collections::HashMap;
use std::net::IpAddr;

use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use tucano_core::{DEFAULT_CONTAINER_PORT, InstanceSpec, WorkerId};

use super::labels::instance_labels;

/// Bytes in a MiB.
const MIB: i64 = 1024 * 1024;
/// CPU shares of one CPU (the engine's default weight for a container).
const SHARES_PER_CPU: f64 = 1024.0;

/// Where an instance's port is reached.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Reachability {
    /// Published on a host port the engine picks, bound on this host address.
    Published(IpAddr),
    /// At the container's own address on this network.
    Network(String),
}

/// The port `spec` listens on inside its container.
pub(crate) fn container_port(spec: &InstanceSpec) -> u16 {
    spec.port.unwrap_or(DEFAULT_CONTAINER_PORT)
}

/// The engine's key for a TCP port.
pub(crate) fn port_key(port: u16) -> String {
    format!("{port}/tcp")
}

/// The container configuration of `spec` on `worker`. With `limit_swap`, the memory limit
/// covers swap too (past it an instance is OOM-killed rather than swapped out); without, the
/// engine's default applies (worth skipping on a host without swap: setting it slows every
/// container start there, by ~150 ms under load on our CI machine, for nothing).
pub(crate) fn container_config(
    spec: &InstanceSpec,
    image: &str,
    worker: &WorkerId,
    reach: &Reachability,
    limit_swap: bool,
) -> ContainerCreateBody {
    let port = container_port(spec);
    let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
    env.push(format!("PORT={port}"));
    env.push(format!("TUCANO_INSTANCE_ID={}", spec.id));
    env.push(format!("TUCANO_SERVICE={}", spec.service));
    let memory = i64::try_from(spec.resources.memory_mb)
        .unwrap_or(i64::MAX / MIB)
        .saturating_mul(MIB);
    let mut host_config = HostConfig {
        nano_cpus: Some((spec.resources.cpus * 1e9).round() as i64),
        cpu_shares: Some(((spec.resources.cpus * SHARES_PER_CPU).round() as i64).max(2)),
        memory: Some(memory),
        memory_swap: limit_swap.then_some(memory),
        ..Default::default()
    };
    match reach {
        Reachability::Published(host_ip) => {
            host_config.port_bindings = Some(HashMap::from([(
                port_key(port),
                Some(vec![PortBinding {
                    host_ip: Some(host_ip.to_string()),
                    host_port: Some("0".to_owned()),
                }]),
            )]));
        }
        Reachability::Network(network) => host_config.network_mode = Some(network.clone()),
    }
    ContainerCreateBody {
        image: Some(image.to_owned()),
        cmd: (!spec.command.is_empty()).then(|| spec.command.clone()),
        env: Some(env),
        labels: Some(instance_labels(spec, worker, port)),
        exposed_ports: Some(HashMap::from([(port_key(port), HashMap::new())])),
        host_config: Some(host_config),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use tucano_core::{InstanceId, ServiceSpec};

    use super::*;
    use crate::runtime::labels::{INSTANCE_LABEL, SERVICE_LABEL, WORKER_LABEL};

    #[test]
    fn limits_labels_env_and_published_port() {
        let mut service = ServiceSpec::from_image("web".parse().unwrap(), "tucano-demo:latest");
        service.resources.cpus = 0.5;
        service.resources.memory_mb = 64;
        service.env.insert("GREETING".into(), "hi".into());
        let spec = service.instance(InstanceId::new());
        let worker: WorkerId = "w1".parse().unwrap();
        let reach = Reachability::Published([127, 0, 0, 1].into());
        let body = container_config(&spec, "tucano-demo:latest", &worker, &reach, true);
        let host = body.host_config.clone().unwrap();
        assert_eq!(host.nano_cpus, Some(500_000_000));
        assert_eq!(host.cpu_shares, Some(512));
        assert_eq!(host.memory, Some(64 * MIB));
        assert_eq!(host.memory_swap, Some(64 * MIB));
        let binding = &host.port_bindings.unwrap()["8080/tcp"].clone().unwrap()[0];
        assert_eq!(binding.host_port.as_deref(), Some("0"));
        let labels = body.labels.unwrap();
        assert_eq!(labels[SERVICE_LABEL], "web");
        assert_eq!(labels[INSTANCE_LABEL], spec.id.to_string());
        assert_eq!(labels[WORKER_LABEL], "w1");
        let env = body.env.unwrap();
        assert!(env.contains(&"PORT=8080".to_owned()), "{env:?}");
        assert!(env.contains(&"GREETING=hi".to_owned()), "{env:?}");
        assert_eq!(body.cmd, None);
    }

    #[test]
    fn network_mode_and_arguments() {
        let mut service = ServiceSpec::from_image("web".parse().unwrap(), "img");
        service.port = Some(9000);
        service.command = vec!["--flag".into()];
        let spec = service.instance(InstanceId::new());
        let worker: WorkerId = "w1".parse().unwrap();
        let body = container_config(
            &spec,
            "img",
            &worker,
            &Reachability::Network("net".into()),
            false,
        );
        let host = body.host_config.unwrap();
        assert_eq!(host.network_mode.as_deref(), Some("net"));
        assert!(host.port_bindings.is_none());
        assert_eq!(
            host.memory_swap, None,
            "swap left to the engine when not limited"
        );
        assert_eq!(body.cmd, Some(vec!["--flag".to_owned()]));
        assert!(body.env.unwrap().contains(&"PORT=9000".to_owned()));
    }
}
