//! The runner's mTLS listener: Envoy terminates TLS and requires a client certificate signed by
//! the given CA (the base of the SPIFFE-ID demo). Certificates are made at test time with the
//! `openssl` CLI and the requests are sent with `curl` (both in the machine's base packages): the
//! runner's own client speaks plain HTTP only.

// Test helpers too may panic: a panic here is a failed test (clippy.toml allows it only in #[test]).
#![allow(clippy::expect_used)]

use std::path::Path;
use std::process::Command;

use palisade_tests::e2e::{workspace_root, Cluster, EchoServer, Envoy, EnvoyConfig, Listener, Mtls, PathMatch, Route};

const SPIFFE_ID: &str = "spiffe://cluster.local/ns/production/sa/order-service";

/// A CA, a server certificate for 127.0.0.1 and a client certificate whose URI SAN is SPIFFE_ID.
const MAKE_CERTS: &str = r#"set -e
ec="-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
openssl req -x509 $ec -days 2 -subj "/CN=palisade test ca" -keyout ca.key -out ca.pem
for pair in "server IP:127.0.0.1" "client URI:$SPIFFE_ID"; do
  set -- $pair
  openssl req $ec -subj "/CN=palisade test $1" -addext "subjectAltName=$2" -keyout $1.key -out $1.csr
  openssl x509 -req -in $1.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -copy_extensions copyall -out $1.pem
done
"#;

fn curl(dir: &Path, url: &str, with_client_cert: bool) -> std::process::Output {
    let mut args = vec!["-sS", "--max-time", "10", "--cacert", "ca.pem"];
    if with_client_cert {
        args.extend(["--cert", "client.pem", "--key", "client.key"]);
    }
    args.push(url);
    Command::new("curl").args(&args).current_dir(dir).output().expect("curl is installed")
}

#[test]
fn mtls_listener_requires_a_client_certificate() {
    let dir = workspace_root().join(format!("target/palisade-e2e/mtls-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let made = Command::new("sh")
        .args(["-c", MAKE_CERTS])
        .env("SPIFFE_ID", SPIFFE_ID)
        .current_dir(&dir)
        .output()
        .expect("openssl and sh are installed");
    assert!(made.status.success(), "making certificates: {}", String::from_utf8_lossy(&made.stderr));

    let echo = EchoServer::start().unwrap();
    let tls =
        Mtls { cert_chain: dir.join("server.pem"), private_key: dir.join("server.key"), client_ca: dir.join("ca.pem") };
    let config = EnvoyConfig::new()
        .cluster(Cluster::new("echo", echo.addr()))
        .listener(Listener::new("mtls").mtls(tls).route(Route::to_cluster("payments", PathMatch::prefix("/"), "echo")));
    let envoy = Envoy::start("mtls_listener_requires_a_client_certificate", &config).unwrap();
    let url = format!("https://{}/api/v1/payments/1", envoy.listener_addr("mtls").unwrap());

    let with_cert = curl(&dir, &url, true);
    let without_cert = curl(&dir, &url, false);
    std::fs::remove_dir_all(&dir).unwrap();

    assert!(with_cert.status.success(), "{}", String::from_utf8_lossy(&with_cert.stderr));
    let seen = palisade_tests::e2e::Echoed::from_json(&with_cert.stdout).unwrap();
    assert_eq!(seen.path, "/api/v1/payments/1");
    assert_eq!(seen.header("x-forwarded-proto"), Some("https"));
    assert!(!without_cert.status.success(), "a client without a certificate must be refused");
    let stats = envoy.stats().unwrap();
    let handshakes: u64 = stats
        .with_prefix("listener.")
        .filter(|(k, _)| k.ends_with(".ssl.handshake"))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    assert_eq!(handshakes, 1, "one completed handshake (the client with a certificate)");
}
