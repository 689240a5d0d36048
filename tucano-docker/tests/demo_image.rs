//! The demo image, built without a registry, runs on the real engine: it answers HTTP on its
//! published port and shuts down gracefully on SIGTERM.
//!
//! Needs a Docker engine: without one the test prints a line saying it skipped, unless
//! `TUCANO_REQUIRE_DOCKER=1` (CI), where it fails.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, PortBinding};
use bollard::query_parameters::{
    LogsOptionsBuilder, RemoveContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;
use tucano_docker::DEMO_IMAGE;
use tucano_docker::testing::docker_or_skip;

mod support;
use support::demo_image;

#[tokio::test]
async fn demo_image_serves_http_and_stops_gracefully() {
    let Some(docker) = docker_or_skip("demo_image_serves_http_and_stops_gracefully").await else {
        return;
    };
    let image = demo_image(&docker).await;
    assert!(image.starts_with("sha256:"), "{image}");

    let name = format!("tucano-test-demo-image-{}", std::process::id());
    let outcome = run_demo(&docker, &name).await;
    let removed = docker
        .remove_container(
            &name,
            Some(RemoveContainerOptionsBuilder::new().force(true).build()),
        )
        .await;
    let (answer, exit_code, logs) = outcome.expect("the demo container runs");
    removed.expect("the container is removed");

    assert_eq!(answer["service"], "image-test", "{answer}");
    assert_eq!(exit_code, 0, "graceful stop exits 0; logs:\n{logs}");
    assert!(logs.contains("received SIGTERM"), "logs:\n{logs}");
}

/// Runs the demo image as `name` with port 8080 published on a port the engine picks; returns
/// its answer to `GET /`, its exit code after a stop, and its logs.
async fn run_demo(docker: &Docker, name: &str) -> Result<(serde_json::Value, i64, String), String> {
    let port_bindings = HashMap::from([(
        "8080/tcp".to_owned(),
        Some(vec![PortBinding {
            host_ip: Some("127.0.0.1".to_owned()),
            host_port: Some("0".to_owned()),
        }]),
    )]);
    let body = ContainerCreateBody {
        image: Some(DEMO_IMAGE.to_owned()),
        env: Some(vec![
            "PORT=8080".to_owned(),
            "TUCANO_SERVICE=image-test".to_owned(),
        ]),
        exposed_ports: Some(HashMap::from([("8080/tcp".to_owned(), HashMap::new())])),
        host_config: Some(HostConfig {
            port_bindings: Some(port_bindings),
            ..Default::default()
        }),
        ..Default::default()
    };
    let options = bollard::query_parameters::CreateContainerOptionsBuilder::new()
        .name(name)
        .build();
    let text = |e: bollard::errors::Error| e.to_string();
    docker
        .create_container(Some(options), body)
        .await
        .map_err(text)?;
    docker
        .start_container(
            name,
            None::<bollard::query_parameters::StartContainerOptions>,
        )
        .await
        .map_err(text)?;
    let inspect = docker
        .inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(text)?;
    let host_port = inspect
        .network_settings
        .and_then(|n| n.ports)
        .and_then(|ports| ports.get("8080/tcp").cloned().flatten())
        .and_then(|bindings| bindings.into_iter().next())
        .and_then(|binding| binding.host_port)
        .ok_or("no published port")?;
    let url = format!("http://127.0.0.1:{host_port}/");
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .map_err(|e| e.to_string())?;
    let deadline = Instant::now() + Duration::from_secs(20);
    let answer = loop {
        match client.get(&url).send().await {
            Ok(response) => break response.json().await.map_err(|e| e.to_string())?,
            Err(error) if Instant::now() > deadline => return Err(format!("{url}: {error}")),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    };
    docker
        .stop_container(name, Some(StopContainerOptionsBuilder::new().t(10).build()))
        .await
        .map_err(text)?;
    let state = docker
        .inspect_container(
            name,
            None::<bollard::query_parameters::InspectContainerOptions>,
        )
        .await
        .map_err(text)?
        .state
        .ok_or("no state")?;
    let mut logs = String::new();
    let mut stream = docker.logs(
        name,
        Some(
            LogsOptionsBuilder::new()
                .stdout(true)
                .stderr(true)
                .tail("all")
                .build(),
        ),
    );
    while let Some(line) = stream.next().await {
        logs.push_str(&line.map_err(text)?.to_string());
    }
    Ok((answer, state.exit_code.unwrap_or(-1), logs))
}
