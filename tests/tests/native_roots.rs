//! The `native-roots` feature on both transports: a server whose CA is only in the
//! platform's store (here `SSL_CERT_FILE`, which rustls-native-certs reads) is trusted
//! without any extra root, and one whose CA is not there is refused.

use std::process::Command;

use smallest_tests::emulator;

/// Runs the probe against `base_url` with `SSL_CERT_FILE` = `pem`.
fn probe(base_url: &str, pem: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_roots_probe"))
        .arg(base_url)
        .env("SSL_CERT_FILE", pem)
        .env_remove("SSL_CERT_DIR")
        .env_remove("HTTPS_PROXY")
        .env_remove("https_proxy")
        .output()
        .expect("run roots_probe");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn the_platforms_roots_are_trusted_by_every_transport() {
    let dir = std::env::temp_dir().join(format!("smallest-native-roots-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let trusted = emulator().tls(true).spawn().expect("emulator starts");
    let other = emulator().tls(true).spawn().expect("emulator starts");
    let pem = dir.join("ca.pem");
    std::fs::write(&pem, trusted.ca_certificate_pem().unwrap()).unwrap();

    let (ok, out) = probe(&trusted.base_url(), &pem);
    assert!(ok, "{out}");
    assert_eq!(out, "hyper: ok\nblocking: ok\n");

    // Another emulator has its own fresh CA, which the platform does not list.
    let (ok, out) = probe(&other.base_url(), &pem);
    assert!(!ok, "{out}");
    for line in out.lines() {
        assert!(
            line.to_ascii_lowercase().contains("certificate"),
            "not a certificate error: {line}"
        );
    }
    assert_eq!(out.lines().count(), 2, "{out}");
    let _ = std::fs::remove_dir_all(&dir);
}
