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
    drop(gw);
}
