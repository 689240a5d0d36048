//! The worker proxy on its own, over real loopback sockets.

mod support;

use http::Request;
use support::*;
use tucano_core::InstanceId;
use tucano_lb::INSTANCE_HEADER;

fn to_worker(cluster: &Cluster, path: &str) -> http::request::Builder {
    Request::get(format!("http://{}{path}", cluster.worker.local_addr())).header("host", "hello")
}

#[tokio::test]
async fn forwards_by_instance_header_keeping_headers_as_received() {
    let cluster = Cluster::start(2).await;
    let client = client();
    for (i, id) in cluster.ids.iter().enumerate() {
        let reply = send(
            &client,
            to_worker(&cluster, "/x?y=1")
                .header(INSTANCE_HEADER, id.to_string())
                .header("x-forwarded-for", "203.0.113.7, 10.0.0.9")
                .header("connection", "x-private")
                .header("x-private", "1")
                .body(empty())
                .unwrap(),
        )
        .await;
        assert_eq!(reply.status, 200);
        let json = reply.json();
        assert_eq!(json["backend"], cluster.backends[i].name);
        assert_eq!(json["uri"], "/x?y=1");
        assert_eq!(reply.received("x-tucano-instance"), [id.to_string()]);
        assert_eq!(reply.received("x-forwarded-for"), ["203.0.113.7, 10.0.0.9"]);
        assert_eq!(reply.received("host"), ["hello"]);
        assert!(reply.received("x-private").is_empty());
    }
}

#[tokio::test]
async fn instance_header_survives_being_named_by_connection() {
    let cluster = Cluster::start(1).await;
    let reply = send(
        &client(),
        to_worker(&cluster, "/")
            .header(INSTANCE_HEADER, cluster.ids[0].to_string())
            .header("connection", "x-tucano-instance")
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.received("x-tucano-instance"),
        [cluster.ids[0].to_string()]
    );
}

#[tokio::test]
async fn missing_or_invalid_instance_header_is_400() {
    let cluster = Cluster::start(1).await;
    let client = client();
    send(&client, to_worker(&cluster, "/").body(empty()).unwrap())
        .await
        .assert_error(400, "missing_instance");
    for bad in ["", "not-a-uuid", "12345"] {
        send(
            &client,
            to_worker(&cluster, "/")
                .header(INSTANCE_HEADER, bad)
                .body(empty())
                .unwrap(),
        )
        .await
        .assert_error(400, "missing_instance");
    }
    let raw_reply = raw(
        cluster.worker.local_addr(),
        b"GET / HTTP/1.1\r\nx-tucano-instance: \xff\xfe\r\nConnection: close\r\n\r\n",
    )
    .await;
    raw_reply.assert_error(400, "missing_instance");
}

#[tokio::test]
async fn unknown_instance_is_404() {
    let cluster = Cluster::start(1).await;
    let reply = send(
        &client(),
        to_worker(&cluster, "/")
            .header(INSTANCE_HEADER, InstanceId::new().to_string())
            .body(empty())
            .unwrap(),
    )
    .await;
    reply.assert_error(404, "unknown_instance");
    assert_eq!(reply.headers["x-tucano-error"], "unknown_instance");
}

#[tokio::test]
async fn unreachable_instance_is_502() {
    let cluster = Cluster::start(1).await;
    let id = InstanceId::new();
    cluster.directory.insert(id, closed_port().await);
    send(
        &client(),
        to_worker(&cluster, "/")
            .header(INSTANCE_HEADER, id.to_string())
            .body(empty())
            .unwrap(),
    )
    .await
    .assert_error(502, "instance_unreachable");
}

#[tokio::test]
async fn removes_the_applications_error_header() {
    let cluster = Cluster::start(1).await;
    let reply = send(
        &client(),
        to_worker(&cluster, "/app-error")
            .header(INSTANCE_HEADER, cluster.ids[0].to_string())
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 404);
    assert!(reply.headers.get("x-tucano-error").is_none());
}
