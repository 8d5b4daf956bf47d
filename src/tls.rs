//! The TLS client configuration shared by the token endpoint and the SMTP upstream: rustls with
//! the ring provider, TLS 1.2 or newer, Mozilla's roots plus the account's `ca_file`.

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;

mod der;
mod issuer;

pub(crate) use der::{not_after, subject_public_key};

/// Builds the client configuration trusting the built-in roots and `extra_roots`; an untrusted
/// server certificate is reported with the name of its issuer.
pub fn client_config(
    extra_roots: &[CertificateDer<'static>],
) -> Result<Arc<ClientConfig>, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    for cert in extra_roots {
        roots.add(cert.clone())?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        provider.clone(),
    )
    .build()
    .map_err(|e| rustls::Error::General(e.to_string()))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(issuer::NamesIssuer(webpki)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// rustls' error in words; an unknown issuer with the issuer's name (rustls shows the name only
/// in its debug form).
pub(crate) fn describe(error: &rustls::Error) -> String {
    use rustls::{CertificateError, Error};
    if let Error::InvalidCertificate(CertificateError::Other(other)) = error
        && let Some(untrusted) = other.0.downcast_ref::<issuer::UntrustedIssuer>()
    {
        return format!("invalid peer certificate: {untrusted}");
    }
    error.to_string()
}

/// Makes ring the process-wide provider (reqwest looks it up there). Safe to call twice.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Reads a PEM certificate chain and private key for the listener, with a message that names
/// the file at fault.
pub(crate) fn load_server_identity(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<
    (
        Vec<CertificateDer<'static>>,
        rustls_pki_types::PrivateKeyDer<'static>,
    ),
    String,
> {
    let certs = load_certs(cert)?;
    let pem = std::fs::read(key)
        .map_err(|e| format!("cannot read a PEM private key from {}: {e}", key.display()))?;
    Ok((certs, parse_key(&pem, key)?))
}

/// Reads a PEM certificate chain; empty is an error.
pub(crate) fn load_certs(cert: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls_pki_types::pem::PemObject;
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("cannot read a PEM certificate from {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", cert.display()));
    }
    Ok(certs)
}

/// Parses a PEM private key read from `path` (named in the message).
pub(crate) fn parse_key(
    pem: &[u8],
    path: &std::path::Path,
) -> Result<rustls_pki_types::PrivateKeyDer<'static>, String> {
    use rustls_pki_types::pem::PemObject;
    rustls_pki_types::PrivateKeyDer::from_pem_slice(pem)
        .map_err(|e| format!("cannot read a PEM private key from {}: {e}", path.display()))
}

/// The listener's TLS configuration: TLS 1.2 or newer, ring.
pub(crate) fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: rustls_pki_types::PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, rustls::Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

/// SHA-256 fingerprint of a certificate as clients show it: `AB:CD:…`.
pub(crate) fn fingerprint(cert: &CertificateDer<'_>) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, cert.as_ref());
    let hex: Vec<String> = digest.as_ref().iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

/// A self-signed certificate for the listener (ECDSA P-256) valid for `names`, as PEM
/// (certificate, private key).
pub(crate) fn self_signed(names: Vec<String>) -> Result<(String, String), rcgen::Error> {
    let key = rcgen::KeyPair::generate()?;
    let mut params = rcgen::CertificateParams::new(names)?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "xoauth-relay (self-signed)");
    // Clients that pin the certificate do not care about expiry, others show it: ten years.
    params.not_after = rcgen::date_time_ymd(2036, 1, 1);
    let cert = params.self_signed(&key)?;
    Ok((cert.pem(), key.serialize_pem()))
}
