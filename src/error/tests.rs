//! The reply-mapping table: every kind of failure and what the client is told.

use std::time::Duration;

use super::*;
use crate::oauth::OAuthError;
use crate::upstream::TlsFailure;

fn up(code: u16, e: (u8, u16, u16), text: &str) -> UpstreamReply {
    UpstreamReply {
        code,
        enhanced: Some(Enhanced(e.0, e.1, e.2)),
        text: text.into(),
    }
}

fn refused(status: u16, error: &str, code: u32) -> RelayError {
    RelayError::Token(TokenError::Refused {
        status,
        oauth: Some(OAuthError {
            error: error.into(),
            codes: vec![code],
            ..Default::default()
        }),
    })
}

fn rejected(phase: Phase, reply: UpstreamReply, rcpt: Option<&str>) -> RelayError {
    RelayError::Upstream(UpstreamError::Rejected {
        phase,
        reply,
        recipient: rcpt.map(String::from),
    })
}

fn auth(reply: UpstreamReply) -> RelayError {
    RelayError::Upstream(UpstreamError::AuthRejected {
        reply,
        challenge: None,
    })
}

#[test]
fn reply_table() {
    let t = Duration::from_secs(1);
    let cases: Vec<(RelayError, Class, &str)> = vec![
        (
            refused(401, "invalid_client", 7000215),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: Microsoft rejected the client secret (AADSTS7000215)",
        ),
        (
            refused(401, "invalid_client", 7000222),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the client secret has expired",
        ),
        (
            refused(400, "unauthorized_client", 700016),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the application was not found",
        ),
        (
            refused(400, "invalid_request", 90002),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the tenant was not found",
        ),
        (
            refused(400, "invalid_scope", 70011),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the token scope",
        ),
        (
            refused(400, "invalid_resource", 500011),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: Exchange Online was not found",
        ),
        (
            refused(400, "invalid_request", 90055),
            Class::Transient,
            "451 4.7.0 upstream authorization temporarily unavailable",
        ),
        (
            RelayError::Token(TokenError::Refused {
                status: 500,
                oauth: None,
            }),
            Class::Transient,
            "451 4.7.0 upstream authorization",
        ),
        (
            RelayError::Token(TokenError::Timeout(t)),
            Class::Transient,
            "451 4.7.0",
        ),
        (
            RelayError::Token(TokenError::Unreachable("x".into())),
            Class::Transient,
            "451 4.7.0",
        ),
        (
            RelayError::Token(TokenError::Malformed("x".into())),
            Class::Transient,
            "451 4.7.0",
        ),
        (
            auth(up(
                535,
                (5, 7, 139),
                "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
            )),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: SMTP AUTH is disabled",
        ),
        (
            auth(up(535, (5, 7, 3), "Authentication unsuccessful [X]")),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: Exchange refused the app's token",
        ),
        (
            auth(up(432, (4, 3, 2), "Concurrent connections limit exceeded.")),
            Class::Transient,
            "451 4.3.2 upstream: 432 4.3.2 Concurrent connections",
        ),
        (
            rejected(
                Phase::Rcpt,
                up(550, (5, 1, 1), "User unknown"),
                Some("bob@x.test"),
            ),
            Class::Permanent,
            "550 5.1.1 <bob@x.test> refused upstream at RCPT TO: 550 5.1.1 User unknown",
        ),
        (
            rejected(Phase::Rcpt, up(452, (4, 5, 3), "Too many"), Some("b@x")),
            Class::Transient,
            "451 4.5.3 upstream: 452 4.5.3 Too many",
        ),
        (
            rejected(
                Phase::Mail,
                up(
                    550,
                    (5, 7, 60),
                    "SMTP; Client does not have permissions to send as this sender",
                ),
                None,
            ),
            Class::Permanent,
            "550 5.7.60 refused upstream at MAIL FROM",
        ),
        (
            rejected(
                Phase::DataEnd,
                up(
                    554,
                    (5, 2, 0),
                    "STOREDRV.Submission.Exception:SubmissionQuotaExceededException",
                ),
                None,
            ),
            Class::Transient,
            "451 4.2.0 sending quota of the mailbox exceeded",
        ),
        (
            rejected(
                Phase::DataEnd,
                up(552, (5, 3, 4), "Message size exceeds fixed maximum"),
                None,
            ),
            Class::Permanent,
            "552 5.3.4 refused upstream at end of data",
        ),
        (
            rejected(
                Phase::DataEnd,
                up(451, (4, 7, 0), "Temporary server error"),
                None,
            ),
            Class::Transient,
            "451 4.7.0 upstream: 451 4.7.0 Temporary",
        ),
        (
            rejected(
                Phase::DataStart,
                UpstreamReply {
                    code: 554,
                    enhanced: None,
                    text: "no".into(),
                },
                None,
            ),
            Class::Permanent,
            "554 5.0.0 refused upstream at DATA",
        ),
        (
            RelayError::Upstream(UpstreamError::Connect {
                host: "h".into(),
                detail: "refused".into(),
            }),
            Class::Transient,
            "451 4.4.1 cannot reach the upstream server",
        ),
        (
            RelayError::Upstream(UpstreamError::Timeout {
                phase: Phase::DataEnd,
                after: t,
            }),
            Class::Transient,
            "451 4.4.2 upstream timed out during end of data",
        ),
        (
            RelayError::Upstream(UpstreamError::Io {
                phase: Phase::Mail,
                detail: "reset".into(),
            }),
            Class::Transient,
            "451 4.4.2 upstream connection lost",
        ),
        (
            RelayError::Upstream(UpstreamError::Protocol {
                phase: Phase::Mail,
                detail: "x".into(),
            }),
            Class::Transient,
            "451 4.5.0",
        ),
        (
            RelayError::Upstream(UpstreamError::Busy {
                slots: 3,
                waited: t,
            }),
            Class::Transient,
            "451 4.4.5 all upstream connections are busy",
        ),
        (
            RelayError::Upstream(UpstreamError::NoStartTls),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the SMTP server did not offer STARTTLS",
        ),
        (
            RelayError::Upstream(UpstreamError::Tls {
                failure: TlsFailure::Certificate,
                detail: "UnknownIssuer".into(),
            }),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the SMTP server's certificate",
        ),
        (
            RelayError::Upstream(UpstreamError::Tls {
                failure: TlsFailure::Handshake,
                detail: "peer is incompatible: ServerDoesNotSupportTls12Or13".into(),
            }),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the TLS handshake with the SMTP server failed",
        ),
        (
            RelayError::Upstream(UpstreamError::NoXoauth2 {
                offered: "AUTH LOGIN".into(),
            }),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: the SMTP server does not offer XOAUTH2",
        ),
        (
            RelayError::Upstream(UpstreamError::Unsupported("SMTPUTF8")),
            Class::Permanent,
            "554 5.6.7",
        ),
        (
            RelayError::NoRoute("x".into()),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured",
        ),
    ];
    for (error, class, want) in cases {
        assert_eq!(error.class(), class, "{error}");
        let reply = reply_for(&Err(error.clone())).to_string();
        assert!(
            reply.starts_with(want),
            "{error}\n got: {reply}\nwant: {want}"
        );
        assert!(reply.len() < 510, "{reply}");
    }
}

#[test]
fn success_passes_the_upstream_text() {
    let ok = Delivered {
        reply: up(250, (2, 0, 0), "OK <abc@host> [Hostname=X]"),
    };
    assert_eq!(
        reply_for(&Ok(ok)).to_string(),
        "250 2.0.0 Delivered upstream: OK <abc@host> [Hostname=X]"
    );
}

#[test]
fn upstream_text_cannot_inject_lines() {
    let e = rejected(
        Phase::DataEnd,
        up(550, (5, 7, 1), "bad\r\n250 2.0.0 fake"),
        None,
    );
    let mut out = Vec::new();
    reply_for(&Err(e)).write_to(&mut out);
    assert_eq!(out.iter().filter(|b| **b == b'\n').count(), 1);
}
