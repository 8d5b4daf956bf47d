//! A throw-away certificate authority and a `localhost`/`127.0.0.1` server certificate (or one
//! for other names), made with rcgen at run time, so the fakes can speak real TLS without any
//! file on disk.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::{ClientConfig, RootCertStore, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

/// The names the server certificate is valid for: what tests and the demo dial.
const SERVER_NAMES: [&str; 2] = ["localhost", "127.0.0.1"];

/// Errors from building the test PKI.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    /// rcgen could not generate a key or sign a certificate.
    #[error("certificate generation failed: {0}")]
    Rcgen(#[from] rcgen::Error),
    /// rustls refused the generated key or certificate.
    #[error("TLS configuration failed: {0}")]
    Tls(#[from] rustls::Error),
}

/// A fresh CA plus a server certificate signed by it.
///
/// Every [`TestPki::new`] makes a new CA key and a random CA name, so two instances never trust
/// each other: tests use that for the "untrusted certificate" case.
pub struct TestPki {
    ca_der: CertificateDer<'static>,
    ca_pem: String,
    server: Arc<ServerConfig>,
}

impl TestPki {
    /// Generates the CA and the server certificate (ECDSA P-256, valid from 1975 to 4096).
    pub fn new() -> Result<Self, PkiError> {
        Self::for_names(&SERVER_NAMES)
    }

    /// Like [`TestPki::new`], with a server certificate valid only for `names`: DNS names, or
    /// IP addresses (a name that parses as one becomes an IP address entry). For the "wrong
    /// host name" cases, e.g. `TestPki::for_names(&["mail.other.example"])`.
    pub fn for_names(names: &[&str]) -> Result<Self, PkiError> {
        let ca = CertifiedIssuer::self_signed(ca_params()?, KeyPair::generate()?)?;
        let server_key = KeyPair::generate()?;
        let server_cert = server_params(names)?.signed_by(&server_key, &ca)?;
        let chain = vec![server_cert.der().clone(), ca.der().clone()];
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(server_key.serialize_der()));
        let server = ServerConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        Ok(Self {
            ca_der: ca.der().clone(),
            ca_pem: ca.pem(),
            server: Arc::new(server),
        })
    }

    /// The CA certificate in PEM, e.g. to write a `ca_file` for the relay's configuration.
    pub fn ca_pem(&self) -> String {
        self.ca_pem.clone()
    }

    /// The CA certificate in DER, e.g. to add to a `RootCertStore`.
    pub fn ca_der(&self) -> CertificateDer<'static> {
        self.ca_der.clone()
    }

    /// The server side TLS configuration (TLS 1.2 and 1.3, ring, no ALPN, no client auth).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        Arc::clone(&self.server)
    }

    /// A client configuration that trusts this CA and nothing else.
    pub fn client_config(&self) -> Result<ClientConfig, PkiError> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca_der())?;
        Ok(ClientConfig::builder_with_provider(ring_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth())
    }
}

/// The ring provider, passed explicitly: the testkit must not depend on a process default.
fn ring_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn ca_params() -> Result<CertificateParams, rcgen::Error> {
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    // A random name too, not only a random key: rcgen's default CN is the same for every
    // certificate, which makes "unknown issuer" errors confusing to read.
    let name = format!("xoauth-relay test CA {}", random_hex(8));
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    Ok(params)
}

fn server_params(names: &[&str]) -> Result<CertificateParams, rcgen::Error> {
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(DnType::CommonName, "fake.outlook.test");
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    Ok(params)
}

/// `n` random bytes as lower-case hex, from the system RNG.
pub(crate) fn random_hex(n: usize) -> String {
    use ring::rand::SecureRandom;
    let mut bytes = vec![0u8; n];
    // The system RNG failing is not something a test fake can recover from; zeros still give
    // a well-formed (if not unique) value, which is all callers need.
    let _ = ring::rand::SystemRandom::new().fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_pkis_have_different_cas() {
        let a = TestPki::new().expect("pki a");
        let b = TestPki::new().expect("pki b");
        assert_ne!(a.ca_der(), b.ca_der());
        assert!(a.ca_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }
}
