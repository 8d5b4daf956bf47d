//! `ca_file`: extra trust anchors (PEM) for the token endpoint and the SMTP host, read and
//! checked at load time so that a bad file stops start-up instead of the first delivery.

use std::path::PathBuf;

use rustls::RootCertStore;
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

use super::check::{Context, Problems};
use super::secrets::resolve;

/// The file (resolved against the config directory) and its certificates; none if unset.
pub fn extra_roots(
    p: &mut Problems,
    ctx: &Context,
    key: &str,
    name: Option<&String>,
) -> (Option<PathBuf>, Vec<CertificateDer<'static>>) {
    let Some(name) = name else {
        return (None, Vec::new());
    };
    let path = resolve(ctx, name);
    match read_certificates(&path) {
        Ok(certs) => (Some(path), certs),
        Err(message) => {
            p.push(key, message);
            (Some(path), Vec::new())
        }
    }
}

fn read_certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let shown = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{shown} is not a valid PEM file: {e}"))?;
    if certs.is_empty() {
        return Err(format!(
            "{shown} holds no certificate; expected at least one -----BEGIN CERTIFICATE----- block"
        ));
    }
    // The same check rustls makes when the roots are installed, done here so it fails early.
    let mut store = RootCertStore::empty();
    for (index, cert) in certs.iter().enumerate() {
        store.add(cert.clone()).map_err(|e| {
            format!(
                "certificate {} in {shown} cannot be a trust anchor: {e}",
                index + 1
            )
        })?;
    }
    Ok(certs)
}
