//! `client_certificate` + `client_key`: two PEM files, paths resolved as for `*_file` secrets
//! (the config directory, `$CREDENTIALS_DIRECTORY` first), checked to belong together at load.

use std::path::Path;

use ring::signature::RsaKeyPair;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::check::{Context, Problems};
use super::secrets::resolve;
use crate::config::ClientCertificate;
use crate::config::file::AccountFile;

/// The certificate credential of an account, if it has one; a problem for each thing wrong.
pub fn client_certificate(
    p: &mut Problems,
    ctx: &Context,
    table: &str,
    raw: &AccountFile,
) -> Option<ClientCertificate> {
    let key = |name: &str| format!("{table}.{name}");
    let (cert, private) = match (&raw.client_certificate, &raw.client_key) {
        (None, None) => return None,
        (Some(cert), Some(private)) => (cert, private),
        (Some(_), None) => {
            p.push(
                key("client_key"),
                "is missing; client_certificate needs the PEM file of its private key",
            );
            return None;
        }
        (None, Some(_)) => {
            p.push(key("client_certificate"), "is missing; client_key needs the PEM file of the certificate uploaded to the app registration");
            return None;
        }
    };
    let cert_path = resolve(ctx, cert);
    let der = read_certificate(&cert_path).map_err(|m| p.push(key("client_certificate"), m));
    let pair = read_key(&resolve(ctx, private)).map_err(|m| p.push(key("client_key"), m));
    let (der, pair) = (der.ok()?, pair.ok()?);
    ClientCertificate::new(cert_path, der, pair)
        .map_err(|m| p.push(key("client_key"), m))
        .ok()
}

fn read_certificate(path: &Path) -> Result<CertificateDer<'static>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let mut certs = CertificateDer::pem_slice_iter(&pem);
    match certs.next() {
        Some(Ok(cert)) => Ok(cert),
        Some(Err(e)) => Err(format!("{shown} is not a valid PEM file: {e}")),
        None => Err(format!(
            "{shown} holds no certificate; expected a -----BEGIN CERTIFICATE----- block"
        )),
    }
}

/// An RSA key, PKCS#8 (`BEGIN PRIVATE KEY`) or PKCS#1 (`BEGIN RSA PRIVATE KEY`). The file's
/// content never reaches a message.
fn read_key(path: &Path) -> Result<RsaKeyPair, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(&pem).map_err(|_| {
        format!("{shown} holds no PEM private key (-----BEGIN PRIVATE KEY----- or -----BEGIN RSA PRIVATE KEY-----)")
    })?;
    let pair = match &key {
        PrivateKeyDer::Pkcs8(der) => RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()),
        PrivateKeyDer::Pkcs1(der) => RsaKeyPair::from_der(der.secret_pkcs1_der()),
        _ => {
            return Err(format!(
                "{shown} is not an RSA key; Entra client assertions here are signed with RSA (PS256)"
            ));
        }
    };
    pair.map_err(|e| {
        format!("{shown} is not a usable RSA private key ({e}); it needs at least 2048 bits")
    })
}
