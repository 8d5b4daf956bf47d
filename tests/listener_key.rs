//! The listener's private key files and their permissions: a generated key readable by
//! others is made private with a warning; a configured one is reported and left alone. One
//! test, since it reads the whole process's log.
#![cfg(unix)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::binary::Scratch;
use common::*;
use xoauth_relay::config::{TlsFiles, TlsMode};
use xoauth_relay::daemon::tls_acceptor;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

fn set_mode(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[tokio::test]
async fn key_files_readable_by_others_are_fixed_or_reported() {
    let log = LogCapture::start();
    let state = Scratch::new("key-mode");
    let mut w = World::stand_ins(|c| {
        c.listen.smtp_tls = TlsMode::StartTls;
        c.state_dir = Some(state.0.clone());
    });
    tls_acceptor(&w.config).await.expect("generates a key");
    let key = state.0.join("listener-key.pem");
    assert_eq!(mode(&key), 0o600);
    assert!(!log.text().contains("readable by other users"));

    set_mode(&key, 0o644);
    tls_acceptor(&w.config)
        .await
        .expect("uses the existing key");
    assert_eq!(mode(&key), 0o600, "the generated key was made private");
    let text = log.text();
    assert!(
        text.contains("the listener private key was readable by other users; its mode is now 600"),
        "{text}"
    );

    let own = state.0.join("own-key.pem");
    std::fs::copy(&key, &own).unwrap();
    set_mode(&own, 0o640);
    w.config.listen.tls_files = Some(TlsFiles {
        cert: state.0.join("listener-cert.pem"),
        key: own.clone(),
    });
    tls_acceptor(&w.config)
        .await
        .expect("uses the configured key");
    assert_eq!(mode(&own), 0o640, "the operator's file is not changed");
    let text = log.text();
    assert!(
        text.contains("listen.tls_key is readable by other users") && text.contains("own-key.pem"),
        "{text}"
    );
}
