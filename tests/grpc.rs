//! gRPC end to end: a real gRPC server (tonic's health service) behind the gateway, a
//! real gRPC client, HTTP/2 both ways (h2c to the gateway, h2c upstream because the
//! ServiceEntry port speaks GRPC), and a `grpcStatus` fault abort.

mod common;
use common::config::*;
use common::net::free_port;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_round_trip_and_grpc_status_abort() {
    // The server: tonic's health service reporting SERVING.
    let (reporter, service) = tonic_health::server::health_reporter();
    reporter
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    let grpc_port = free_port();
    let addr: std::net::SocketAddr = format!("127.0.0.1:{grpc_port}").parse().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve(addr),
    );

    let yaml = format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {{PORT}}, name: grpc, protocol: GRPC}}\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: health}}\nspec:\n  hosts: [health.internal]\n  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{grpc: {grpc_port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: upgraded}}\nspec:\n  hosts: [upgraded.internal]\n  ports: [{{number: 80, name: http, protocol: HTTP}}]\n  resolution: STATIC\n  endpoints: [{{address: 127.0.0.1, ports: {{http: {grpc_port}}}}}]\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: upgraded}}\nspec:\n  host: upgraded.internal\n  trafficPolicy: {{connectionPool: {{http: {{h2UpgradePolicy: UPGRADE}}}}}}\n{}",
        vs(
            "health",
            "[\"*\"]",
            "[gw]",
            "  - match: [{headers: {x-via: {exact: upgraded}}}]\n    route: [{destination: {host: upgraded.internal}}]\n  - match: [{headers: {x-fail: {exact: \"yes\"}}}]\n    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: health.internal}}]\n  - route: [{destination: {host: health.internal}}]\n"
        )
    );
    let (gw, gw_addr) = tokio::task::spawn_blocking(move || start("grpc", &yaml))
        .await
        .unwrap();

    let channel = tonic::transport::Endpoint::from_shared(format!("http://{gw_addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut client = HealthClient::new(channel);
    let resp = client
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .expect("a gRPC call through the gateway");
    assert_eq!(resp.into_inner().status, ServingStatus::Serving as i32);

    // An HTTP port upgraded to h2c by the DestinationRule reaches the same gRPC server.
    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    req.metadata_mut()
        .insert("x-via", "upgraded".parse().unwrap());
    let resp = client.check(req).await.expect("h2UpgradePolicy: UPGRADE");
    assert_eq!(resp.into_inner().status, ServingStatus::Serving as i32);

    let mut req = tonic::Request::new(HealthCheckRequest {
        service: String::new(),
    });
    req.metadata_mut().insert("x-fail", "yes".parse().unwrap());
    let status = client.check(req).await.expect_err("aborted by the fault");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    assert_eq!(status.message(), "fault filter abort");

    // Istio's gRPC metrics: the call's status and its messages each way (one each).
    let admin = gw.admin;
    let text = tokio::task::spawn_blocking(move || {
        common::net::get(admin, "admin", "/stats/prometheus", &[]).text()
    })
    .await
    .unwrap();
    let sample = |name: &str, labels: &[&str]| -> Option<String> {
        text.lines()
            .find(|l| l.starts_with(&format!("{name}{{")) && labels.iter().all(|x| l.contains(x)))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_string)
    };
    let ok = [
        "destination_service=\"health.internal\"",
        "request_protocol=\"grpc\"",
        "grpc_response_status=\"0\"",
        "response_code=\"200\"",
    ];
    assert_eq!(
        sample("istio_requests_total", &ok).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample("istio_request_messages_total", &ok).as_deref(),
        Some("1")
    );
    assert_eq!(
        sample("istio_response_messages_total", &ok).as_deref(),
        Some("1")
    );
    let aborted = [
        "destination_service=\"health.internal\"",
        "grpc_response_status=\"14\"",
        "response_flags=\"FI\"",
    ];
    assert_eq!(
        sample("istio_requests_total", &aborted).as_deref(),
        Some("1"),
        "{text}"
    );
    assert_eq!(
        sample("istio_response_messages_total", &aborted).as_deref(),
        Some("0")
    );
    drop(gw);
}

/// A bare h2c gRPC call: (HTTP status, grpc-status, grpc-message, whether the response was
/// trailers-only: its one HEADERS frame ended the stream).
async fn h2_grpc_call(
    addr: std::net::SocketAddr,
    path: &str,
    content_type: &str,
) -> (u16, Option<String>, Option<String>, bool) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut client, conn) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(conn);
    let req = http::Request::builder()
        .method("POST")
        .uri(format!("http://grpc.example{path}"))
        .header("content-type", content_type)
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (resp, mut body) = client.send_request(req, false).unwrap();
    body.send_data(bytes::Bytes::from_static(&[0, 0, 0, 0, 0]), true)
        .unwrap();
    let resp = resp.await.unwrap();
    let h = |n: &str| {
        resp.headers()
            .get(n)
            .map(|v| v.to_str().unwrap().to_string())
    };
    (
        resp.status().as_u16(),
        h("grpc-status"),
        h("grpc-message"),
        resp.body().is_end_stream(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_local_replies_are_trailers_only_with_envoys_status() {
    let yaml = format!(
        "---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port: {{number: {{PORT}}, name: grpc, protocol: GRPC}}\n    hosts: [\"*\"]\n---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: empty}}\nspec:\n  hosts: [empty.internal]\n  ports: [{{number: 50051, name: grpc, protocol: GRPC}}]\n  resolution: STATIC\n{}",
        vs(
            "g",
            "[\"*\"]",
            "[gw]",
            "  - match: [{uri: {prefix: /abort}}]\n    fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 100}}}\n    route: [{destination: {host: empty.internal}}]\n  - match: [{uri: {prefix: /teapot}}]\n    fault: {abort: {httpStatus: 418, percentage: {value: 100}}}\n    route: [{destination: {host: empty.internal}}]\n  - match: [{uri: {prefix: /empty}}]\n    route: [{destination: {host: empty.internal}}]\n"
        )
    );
    let (gw, addr) = tokio::task::spawn_blocking(move || start("grpc-local", &yaml))
        .await
        .unwrap();
    // Envoy's fault filter: a grpcStatus abort is HTTP 200 with the status, in one
    // HEADERS frame that ends the stream (a gRPC client reads no trailers otherwise).
    assert_eq!(
        h2_grpc_call(addr, "/abort", "application/grpc").await,
        (
            200,
            Some("14".into()),
            Some("fault filter abort".into()),
            true
        )
    );
    // Local replies to gRPC requests: httpToGrpcStatus of the HTTP status.
    assert_eq!(
        h2_grpc_call(addr, "/teapot", "application/grpc+proto").await,
        (
            200,
            Some("2".into()),
            Some("fault filter abort".into()),
            true
        ),
        "418 → UNKNOWN"
    );
    assert_eq!(
        h2_grpc_call(addr, "/none", "application/grpc").await,
        (200, Some("12".into()), None, true),
        "no route (404 NR) → UNIMPLEMENTED"
    );
    assert_eq!(
        h2_grpc_call(addr, "/empty", "application/grpc").await,
        (
            200,
            Some("14".into()),
            Some("no healthy upstream".into()),
            true
        ),
        "no endpoints (503 UH) → UNAVAILABLE"
    );
    // Not a gRPC request: the fault filter's plain HTTP 200, and plain errors.
    let (status, grpc, _, _) = h2_grpc_call(addr, "/abort", "application/json").await;
    assert_eq!((status, grpc), (200, None));
    let (status, grpc, _, ended) = h2_grpc_call(addr, "/none", "application/grpc-web").await;
    assert_eq!((status, grpc, ended), (404, None, true));
    drop(gw);
}
