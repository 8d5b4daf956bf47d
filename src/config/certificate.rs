//! A client certificate credential (`client_certificate` + `client_key`): the certificate
//! uploaded to the app registration and its RSA private key, read and checked at load. The key
//! never prints (`Debug` shows `***`); it only signs.

use std::path::PathBuf;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SecureRandom;
use ring::signature::{RSA_PSS_SHA256, RsaKeyPair};
use rustls_pki_types::CertificateDer;

use crate::dates::Day;

/// The certificate (DER), what is derived from it, and the private key.
#[derive(Clone)]
pub struct ClientCertificate {
    /// Where the certificate came from, for messages.
    pub path: PathBuf,
    pub der: CertificateDer<'static>,
    /// `x5t#S256`: base64url of the SHA-256 of the DER (RFC 7515 §4.1.8), how Entra finds the
    /// uploaded certificate.
    pub thumbprint_s256: String,
    /// The certificate's last valid day (`notAfter`), if it could be read.
    pub not_after: Option<Day>,
    key: Arc<RsaKeyPair>,
}

impl ClientCertificate {
    /// Pairs a certificate with its key; `Err` says why they do not belong together.
    pub(crate) fn new(
        path: PathBuf,
        der: CertificateDer<'static>,
        key: RsaKeyPair,
    ) -> Result<Self, String> {
        use ring::signature::KeyPair as _;
        let public = crate::tls::subject_public_key(&der)
            .ok_or("the certificate's public key cannot be read; expected an RSA certificate")?;
        if public != key.public_key().as_ref() {
            return Err("the private key does not belong to this certificate".to_owned());
        }
        let digest = ring::digest::digest(&ring::digest::SHA256, &der);
        Ok(Self {
            path,
            thumbprint_s256: URL_SAFE_NO_PAD.encode(digest.as_ref()),
            not_after: crate::tls::not_after(&der),
            der,
            key: Arc::new(key),
        })
    }

    /// RSASSA-PSS with SHA-256 (JWS `PS256`, RFC 7518 §3.5) over `message`.
    pub fn sign_ps256(&self, message: &[u8], rng: &dyn SecureRandom) -> Result<Vec<u8>, String> {
        let mut signature = vec![0; self.key.public().modulus_len()];
        self.key
            .sign(&RSA_PSS_SHA256, rng, message, &mut signature)
            .map_err(|_| "signing the client assertion failed".to_owned())?;
        Ok(signature)
    }
}

impl std::fmt::Debug for ClientCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientCertificate")
            .field("path", &self.path)
            .field("thumbprint_s256", &self.thumbprint_s256)
            .field("not_after", &self.not_after)
            .field("key", &"***")
            .finish()
    }
}

/// The same certificate is the same credential: the key was checked to match it.
impl PartialEq for ClientCertificate {
    fn eq(&self, other: &Self) -> bool {
        self.der == other.der
    }
}
