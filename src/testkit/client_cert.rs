//! The throwaway RSA certificates of `tests/fixtures/client-cert/` (ring cannot generate RSA
//! keys, so they are files), for certificate-credential tests: `app` is the one registered on
//! the fake app, `other` one Entra would not know.

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ClientCertificate;

/// The certificate registered on the fake app (PEM).
pub const APP_CERT_PEM: &str = include_str!("../../tests/fixtures/client-cert/app.pem");
/// Its private key, PKCS#8 (PEM).
pub const APP_KEY_PEM: &str = include_str!("../../tests/fixtures/client-cert/app.key");
/// The same key, PKCS#1 (PEM).
pub const APP_KEY_PKCS1_PEM: &str = include_str!("../../tests/fixtures/client-cert/app-pkcs1.key");
/// A certificate no fake app knows, and its key (PEM).
pub const OTHER_CERT_PEM: &str = include_str!("../../tests/fixtures/client-cert/other.pem");
pub const OTHER_KEY_PEM: &str = include_str!("../../tests/fixtures/client-cert/other.key");

/// The DER of a PEM certificate.
pub fn der(cert_pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(cert_pem.as_bytes()).expect("fixture certificate")
}

/// A credential from a fixture certificate and key (PKCS#8).
pub fn credential(cert_pem: &str, key_pem: &str) -> ClientCertificate {
    let key = match PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).expect("fixture key") {
        PrivateKeyDer::Pkcs8(der) => {
            ring::signature::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).expect("RSA key")
        }
        _ => panic!("fixture keys are PKCS#8"),
    };
    ClientCertificate::new("fixture.pem".into(), der(cert_pem), key).expect("matching pair")
}
