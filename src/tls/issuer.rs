//! Names the issuer of a certificate the relay does not trust, so "unknown issuer" becomes
//! "issued by CN=Contoso Inspection CA, which is not trusted": the usual cause is a
//! TLS-inspecting proxy, whose CA belongs in `ca_file`.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{CertificateError, DigitallySignedStruct, Error, OtherError, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use super::der::tlv;

/// The standard WebPKI verifier, with the issuer's name added to an unknown-issuer error.
#[derive(Debug)]
pub(crate) struct NamesIssuer(pub(crate) Arc<WebPkiServerVerifier>);

/// A certificate chain that does not lead to a trusted root, with the name it claims to come from.
#[derive(Debug, thiserror::Error)]
#[error(
    "unknown issuer: the certificate presented was issued by {issuer}, which is not a trusted CA"
)]
pub(crate) struct UntrustedIssuer {
    pub(crate) issuer: String,
}

impl ServerCertVerifier for NamesIssuer {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        let result = self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now);
        match result {
            Err(Error::InvalidCertificate(CertificateError::UnknownIssuer)) => {
                let top = intermediates.last().unwrap_or(end_entity);
                let issuer = issuer_name(top).unwrap_or_else(|| "an unnamed CA".to_string());
                let named = OtherError(Arc::new(UntrustedIssuer { issuer }));
                Err(Error::InvalidCertificate(CertificateError::Other(named)))
            }
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// `CN=…, O=…` of the certificate's issuer (RFC 5280 §4.1.2.4), read from the DER without
/// trusting it: bounded, control characters removed; `None` when it cannot be read.
pub(crate) fn issuer_name(cert: &[u8]) -> Option<String> {
    let (_, certificate, _) = tlv(cert)?;
    let (_, mut tbs, _) = tlv(certificate)?;
    if tbs.first() == Some(&0xA0) {
        tbs = tlv(tbs)?.2; // explicit version
    }
    let after_serial = tlv(tbs)?.2;
    let after_algorithm = tlv(after_serial)?.2;
    let (tag, mut name, _) = tlv(after_algorithm)?;
    if tag != 0x30 {
        return None;
    }
    let mut parts = Vec::new();
    while !name.is_empty() {
        let (_, set, rest) = tlv(name)?;
        name = rest;
        let (_, attribute, _) = tlv(set)?;
        let (_, oid, value) = tlv(attribute)?;
        let label = match oid {
            [0x55, 0x04, 0x03] => "CN",
            [0x55, 0x04, 0x0A] => "O",
            [0x55, 0x04, 0x0B] => "OU",
            _ => continue,
        };
        let (_, text, _) = tlv(value)?;
        parts.push(format!("{label}={}", String::from_utf8_lossy(text)));
    }
    let joined = parts.join(", ");
    let clean: String = crate::reply::sanitize(&joined).chars().take(200).collect();
    (!clean.is_empty()).then_some(clean)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_issuer_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x.test".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Inspection CA");
        params
            .distinguished_name
            .push(rcgen::DnType::OrganizationName, "Contoso\r\nFake: line");
        let cert = params.self_signed(&key).unwrap();
        let name = issuer_name(cert.der()).unwrap();
        assert!(name.contains("CN=Inspection CA"), "{name}");
        assert!(name.contains("O=Contoso"), "{name}");
        assert!(!name.contains('\n'), "{name}");
        assert_eq!(issuer_name(b"\x30\x03\x02\x01"), None);
        assert_eq!(issuer_name(b""), None);
    }
}
