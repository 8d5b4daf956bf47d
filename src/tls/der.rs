//! Reads a few fields of an X.509 certificate's DER (RFC 5280 §4.1) without trusting it:
//! bounded walks that give `None` on anything unexpected. Enough for naming an issuer, warning
//! before a client certificate expires, and checking a signature against its key.

use crate::dates::Day;

/// The fields of `TBSCertificate` after the version, in order (RFC 5280 §4.1).
const SERIAL: usize = 0;
const VALIDITY: usize = 3;
const SUBJECT_PUBLIC_KEY_INFO: usize = 5;

/// The `index`-th field of the certificate's `TBSCertificate`, not counting the version.
fn tbs_field(cert: &[u8], index: usize) -> Option<(u8, &[u8])> {
    let (_, certificate, _) = tlv(cert)?;
    let (_, mut tbs, _) = tlv(certificate)?;
    if tbs.first() == Some(&0xA0) {
        tbs = tlv(tbs)?.2; // explicit version
    }
    for _ in SERIAL..index {
        tbs = tlv(tbs)?.2;
    }
    let (tag, content, _) = tlv(tbs)?;
    Some((tag, content))
}

/// The last day the certificate is valid (`notAfter`, UTCTime or GeneralizedTime).
pub(crate) fn not_after(cert: &[u8]) -> Option<Day> {
    let (_, validity) = tbs_field(cert, VALIDITY)?;
    let not_before_rest = tlv(validity)?.2;
    let (tag, time, _) = tlv(not_before_rest)?;
    let text = std::str::from_utf8(time).ok()?;
    let (year, rest) = match tag {
        // RFC 5280 §4.1.2.5.1: YYMMDDHHMMSSZ, 50–99 meaning 19xx.
        0x17 => {
            let yy: i64 = text.get(..2)?.parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, text.get(2..)?)
        }
        0x18 => (text.get(..4)?.parse().ok()?, text.get(4..)?),
        _ => return None,
    };
    Day::parse(&format!("{year}-{}-{}", rest.get(..2)?, rest.get(2..4)?))
}

/// The `subjectPublicKey` BIT STRING's bytes (for RSA, the PKCS#1 `RSAPublicKey`).
pub(crate) fn subject_public_key(cert: &[u8]) -> Option<&[u8]> {
    let (tag, spki) = tbs_field(cert, SUBJECT_PUBLIC_KEY_INFO)?;
    if tag != 0x30 {
        return None;
    }
    let after_algorithm = tlv(spki)?.2;
    let (tag, bits, _) = tlv(after_algorithm)?;
    match (tag, bits.split_first()) {
        (0x03, Some((0, key))) => Some(key),
        _ => None,
    }
}

/// One DER tag-length-value: (tag, content, what follows).
pub(super) fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (usize::from(first), rest)
    } else {
        let n = usize::from(first & 0x7F);
        if n == 0 || n > 3 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |l, b| (l << 8) | usize::from(*b));
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_not_after_and_the_key_of_a_generated_certificate() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["x.test".into()]).unwrap();
        params.not_after = rcgen::date_time_ymd(2031, 7, 9);
        let cert = params.self_signed(&key).unwrap();
        assert_eq!(not_after(cert.der()), Day::parse("2031-07-09"));
        params.not_after = rcgen::date_time_ymd(2051, 1, 2); // GeneralizedTime from 2050
        let late = params.self_signed(&key).unwrap();
        assert_eq!(not_after(late.der()), Day::parse("2051-01-02"));
        // ECDSA: the BIT STRING is the uncompressed point.
        assert_eq!(subject_public_key(cert.der()), Some(key.public_key_raw()));
        assert_eq!(not_after(b"\x30\x03\x02\x01"), None);
        assert_eq!(subject_public_key(b""), None);
    }
}
