//! The balancer proxy over real loopback sockets: balancer → worker proxy → echo backends.

mod support;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use http::Request;
use http_body_util::BodyExt;
use support::*;
use tucano_core::InstanceId;
use tucano_core::transport::RouteSpec;
use tucano_core::transport::{Endpoint, EndpointSink};
use tucano_lb::{INSTANCE_HEADER, ProxyConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_reach_every_backend_round_robin() {
    let cluster = Cluster::start(3).await;
    let client = client();
    let mut hits: HashMap<String, usize> = HashMap::new();
    for _ in 0..30 {
        let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
        assert_eq!(reply.status, 200, "{:?}", reply.body);
        let json = reply.json();
        let backend = json["backend"].as_str().unwrap().to_owned();
        // The instance header names the instance the backend is.
        let instance = reply.received("x-tucano-instance");
        assert_eq!(instance.len(), 1);
        assert_eq!(cluster.backend_of(&instance[0]), backend);
        assert_eq!(reply.received("x-forwarded-for"), ["127.0.0.1"]);
        assert_eq!(reply.received("host"), ["hello"]);
        *hits.entry(backend).or_default() += 1;
    }
    assert_eq!(hits.len(), 3, "{hits:?}");
    for (backend, count) in &hits {
        assert!((9..=11).contains(count), "{backend} got {count} of 30");
    }
}

#[tokio::test]
async fn upstream_connections_are_kept_alive_and_reused() {
    let cluster = Cluster::start(1).await;
    let client = client();
    for _ in 0..20 {
        let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
        assert_eq!(reply.status, 200);
    }
    let opened = cluster.backends[0].connections.load(Ordering::Relaxed);
    assert!(
        opened <= 2,
        "20 sequential requests opened {opened} upstream connections"
    );
}

#[tokio::test]
async fn forwarded_for_is_appended_and_instance_header_overwritten() {
    let cluster = Cluster::start(1).await;
    let reply = send(
        &client(),
        Request::get(cluster.balancer_url("/path?q=1"))
            .header("host", "HELLO.:8080")
            .header("x-forwarded-for", "203.0.113.7")
            .header(INSTANCE_HEADER, InstanceId::new().to_string())
            .body(empty())
            .unwrap(),
    )
    .await;
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.received("x-forwarded-for"),
        ["203.0.113.7, 127.0.0.1"]
    );
    assert_eq!(
        reply.received("x-tucano-instance"),
        [cluster.ids[0].to_string()]
    );
    assert_eq!(reply.received("host"), ["HELLO.:8080"]);
    assert_eq!(reply.json()["uri"], "/path?q=1");
}

#[tokio::test]
async fn hop_by_hop_headers_are_stripped_both_ways() {
    let cluster = Cluster::start(1).await;
    let reply = raw(
        cluster.balancer.local_addr(),
        "GET /hop HTTP/1.1\r\n\
         Host: hello\r\n\
         Connection: close, x-client-private\r\n\
         X-Client-Private: 1\r\n\
         Keep-Alive: timeout=5\r\n\
         Proxy-Authorization: Basic Zm9vOmJhcg==\r\n\
         Proxy-Connection: keep-alive\r\n\
         TE: trailers\r\n\
         Trailer: x-checksum\r\n\
         Upgrade: websocket\r\n\
         X-Client-Public: 1\r\n\
         \r\n",
    )
    .await;
    assert_eq!(reply.status, 200, "{reply:?}");
    let headers = &reply.json()["headers"];
    for stripped in [
        "connection",
        "x-client-private",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "transfer-encoding",
    ] {
        assert!(
            headers.get(stripped).is_none(),
            "{stripped} reached the backend: {headers}"
        );
    }
    assert_eq!(headers["x-client-public"][0], "1");
    assert_eq!(headers["host"][0], "hello");

    for stripped in ["x-backend-private", "keep-alive", "proxy-authenticate"] {
        assert!(
            reply.header(stripped).is_none(),
            "{stripped} reached the client: {reply:?}"
        );
    }
    assert_ne!(reply.header("connection"), Some("x-backend-private"));
    assert_eq!(reply.header("x-backend-public"), Some("1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_bodies_stream_through() {
    let cluster = Cluster::start(1).await;
    let client = client();

    let size = 8 * 1024 * 1024 + 17;
    let chunked = Request::post(cluster.balancer_url("/upload"))
        .header("host", "hello")
        .body(ChunkedBody::new(size).boxed())
        .unwrap();
    let reply = send(&client, chunked).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body_bytes"], size);

    let sized = Request::post(cluster.balancer_url("/upload"))
        .header("host", "hello")
        .body(full(vec![7u8; 5 * 1024 * 1024]))
        .unwrap();
    let reply = send(&client, sized).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["body_bytes"], 5 * 1024 * 1024);
    assert_eq!(reply.received("content-length"), ["5242880"]);

    eventually("in-flight back to 0", || cluster.in_flight() == [0]).await;
}

#[tokio::test]
async fn oversized_or_too_many_headers_are_refused_with_4xx() {
    let cluster = Cluster::start(1).await;
    let addr = cluster.balancer.local_addr();
    let huge = format!(
        "GET / HTTP/1.1\r\nHost: hello\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    let reply = raw(addr, huge).await;
    assert!((400..500).contains(&reply.status), "{}", reply.status);
    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let reply = raw(
        addr,
        format!("GET / HTTP/1.1\r\nHost: hello\r\n{many}Connection: close\r\n\r\n"),
    )
    .await;
    assert!((400..500).contains(&reply.status), "{}", reply.status);
    // The proxy is still serving.
    let reply = raw(
        addr,
        "GET / HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn missing_or_invalid_host_is_400() {
    let cluster = Cluster::start(1).await;
    let addr = cluster.balancer.local_addr();
    raw(addr, "GET / HTTP/1.0\r\n\r\n")
        .await
        .assert_error(400, "missing_host");
    raw(
        addr,
        "GET / HTTP/1.1\r\nHost: hel lo\r\nConnection: close\r\n\r\n",
    )
    .await
    .assert_error(400, "missing_host");
    raw(
        addr,
        "GET / HTTP/1.1\r\nHost: hello:http\r\nConnection: close\r\n\r\n",
    )
    .await
    .assert_error(400, "missing_host");
    raw(
        addr,
        "GET / HTTP/1.1\r\nHost: hello\r\nHost: hello\r\nConnection: close\r\n\r\n",
    )
    .await
    .assert_error(400, "missing_host");
    raw(
        addr,
        "CONNECT hello:80 HTTP/1.1\r\nHost: hello:80\r\nConnection: close\r\n\r\n",
    )
    .await
    .assert_error(400, "bad_request");
    // An absolute-form target names the service without a Host header.
    let reply = raw(addr, "GET http://hello/abs HTTP/1.0\r\n\r\n").await;
    assert_eq!(reply.status, 200, "{reply:?}");
    assert_eq!(reply.json()["headers"]["host"][0], "hello");
}

#[tokio::test]
async fn unknown_service_is_404_and_no_instance_is_503() {
    let cluster = Cluster::start(1).await;
    let client = client();
    send(&client, get(&cluster.balancer_url("/"), "nope"))
        .await
        .assert_error(404, "unknown_service");
    send(&client, get(&cluster.balancer_url("/"), "[::1]:80"))
        .await
        .assert_error(404, "unknown_service");

    cluster
        .table
        .publish(&service("empty"), &RouteSpec::default(), Vec::new());
    let reply = send(&client, get(&cluster.balancer_url("/"), "empty")).await;
    reply.assert_error(503, "no_instance");
    assert_eq!(reply.headers["x-tucano-error"], "no_instance");
}

#[tokio::test]
async fn unreachable_upstream_is_502() {
    let cluster = Cluster::start(1).await;
    let client = client();

    // The worker proxy itself is down.
    let dead = Endpoint {
        proxy: closed_port().await,
        ..cluster.endpoint(0)
    };
    cluster
        .table
        .publish(&service("dead"), &RouteSpec::default(), vec![dead]);
    send(&client, get(&cluster.balancer_url("/"), "dead"))
        .await
        .assert_error(502, "upstream_unavailable");

    // The worker proxy is up but its instance is not.
    let gone = InstanceId::new();
    cluster.directory.insert(gone, closed_port().await);
    let endpoint = Endpoint {
        instance: gone,
        ..cluster.endpoint(0)
    };
    cluster
        .table
        .publish(&service("gone"), &RouteSpec::default(), vec![endpoint]);
    send(&client, get(&cluster.balancer_url("/"), "gone"))
        .await
        .assert_error(502, "upstream_unavailable");

    // The worker proxy does not know the instance: still an upstream failure.
    let unknown = Endpoint {
        instance: InstanceId::new(),
        ..cluster.endpoint(0)
    };
    cluster
        .table
        .publish(&service("unknown"), &RouteSpec::default(), vec![unknown]);
    send(&client, get(&cluster.balancer_url("/"), "unknown"))
        .await
        .assert_error(502, "upstream_unavailable");

    for name in ["dead", "gone", "unknown"] {
        let route = cluster.table.route(name).unwrap();
        assert_eq!(route.endpoints().get(0).unwrap().state().in_flight(), 0);
    }
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let config = ProxyConfig {
        response_header_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let cluster = Cluster::with_config(1, config).await;
    let client = client();
    // Directly past the worker proxy's own timeout too: the balancer times out first or
    // relays the worker's timeout; either way the client gets 504.
    send(
        &client,
        get(&cluster.balancer_url("/slow?ms=2000"), "hello"),
    )
    .await
    .assert_error(504, "upstream_timeout");
    eventually("in-flight back to 0", || cluster.in_flight() == [0]).await;
    let reply = send(&client, get(&cluster.balancer_url("/fast"), "hello")).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test]
async fn application_errors_pass_through() {
    let cluster = Cluster::start(1).await;
    let reply = send(&client(), get(&cluster.balancer_url("/app-error"), "hello")).await;
    // The worker proxy removes the application's x-tucano-error, so the balancer relays
    // the application's own 404 instead of treating it as a proxy failure.
    assert_eq!(reply.status, 404);
    assert!(reply.headers.get("x-tucano-error").is_none());
    assert_eq!(reply.json()["backend"], "backend-0");
}

#[tokio::test]
async fn routing_follows_publish_and_remove_immediately() {
    let cluster = Cluster::start(2).await;
    let client = client();
    let hello = service("hello");

    cluster
        .table
        .publish(&hello, &RouteSpec::default(), vec![cluster.endpoint(1)]);
    for _ in 0..3 {
        let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
        assert_eq!(reply.json()["backend"], "backend-1");
    }
    cluster
        .table
        .publish(&hello, &RouteSpec::default(), vec![cluster.endpoint(0)]);
    for _ in 0..3 {
        let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
        assert_eq!(reply.json()["backend"], "backend-0");
    }
    cluster
        .table
        .publish(&hello, &RouteSpec::default(), Vec::new());
    send(&client, get(&cluster.balancer_url("/"), "hello"))
        .await
        .assert_error(503, "no_instance");
    cluster.table.remove(&hello);
    send(&client, get(&cluster.balancer_url("/"), "hello"))
        .await
        .assert_error(404, "unknown_service");
    cluster.table.publish(
        &hello,
        &RouteSpec::default(),
        vec![cluster.endpoint(0), cluster.endpoint(1)],
    );
    let reply = send(&client, get(&cluster.balancer_url("/"), "hello")).await;
    assert_eq!(reply.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_counts_until_the_response_ends() {
    let cluster = Arc::new(Cluster::start(2).await);
    let client = client();

    let slow = tokio::spawn({
        let client = client.clone();
        let url = cluster.balancer_url("/slow?ms=500");
        async move { send(&client, get(&url, "hello")).await }
    });
    eventually("one request in flight", || {
        cluster.in_flight().iter().sum::<usize>() == 1
    })
    .await;
    let reply = within("slow request", slow).await.unwrap();
    assert_eq!(reply.status, 200);
    eventually("in-flight back to 0", || cluster.in_flight() == [0, 0]).await;

    let mut requests = Vec::new();
    for _ in 0..20 {
        let client = client.clone();
        let url = cluster.balancer_url("/?ms=20");
        requests.push(tokio::spawn(async move {
            send(&client, get(&url, "hello")).await
        }));
    }
    for request in requests {
        assert_eq!(within("request", request).await.unwrap().status, 200);
    }
    eventually("in-flight back to 0", || cluster.in_flight() == [0, 0]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_is_released_when_the_client_goes_away() {
    let cluster = Cluster::start(1).await;
    let addr = cluster.balancer.local_addr();
    let abandoned = tokio::spawn(raw(
        addr,
        "GET /slow?ms=5000 HTTP/1.1\r\nHost: hello\r\nConnection: close\r\n\r\n",
    ));
    eventually("request in flight", || cluster.in_flight() == [1]).await;
    abandoned.abort();
    eventually("in-flight back to 0", || cluster.in_flight() == [0]).await;
}
