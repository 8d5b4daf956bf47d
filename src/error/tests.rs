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
        mechanism: crate::upstream::Mechanism::Xoauth2,
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
            refused(401, "invalid_client", 700027),
            Class::Misconfigured,
            "451 4.3.5 Relay misconfigured: Microsoft did not accept the client certificate (AADSTS700027)",
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
        reused: false,
    };
    assert_eq!(
        reply_for(&Ok(ok)).to_string(),
        "250 2.0.0 OK <abc@host> [Hostname=X]"
    );
    let queued = Delivered {
        reply: up(250, (2, 6, 0), "<id@x> Queued mail for delivery"),
        reused: true,
    };
    assert_eq!(
        reply_for(&Ok(queued)).to_string(),
        "250 2.6.0 <id@x> Queued mail for delivery"
    );
}

#[test]
fn replies_are_classified_by_phase_and_code_not_enhanced_code_alone() {
    use explain::*;
    let greeting = rejected(
        Phase::Greeting,
        up(421, (4, 3, 2), "Service not available"),
        None,
    );
    assert_eq!(explain(&greeting), Some(SERVICE_UNAVAILABLE));
    assert_eq!(greeting.class(), Class::Transient);
    let busy = auth(up(432, (4, 3, 2), "Concurrent connections limit exceeded."));
    assert_eq!(explain(&busy), Some(CONCURRENCY));
    let closing = rejected(
        Phase::Mail,
        up(421, (4, 3, 2), "Service not available"),
        None,
    );
    assert_eq!(explain(&closing), Some(SERVICE_CLOSING));
    let disabled = auth(up(
        535,
        (5, 7, 139),
        "Authentication unsuccessful, SmtpClientAuthentication is disabled for the Tenant.",
    ));
    assert_eq!(explain(&disabled), Some(SMTP_AUTH_DISABLED));
    assert!(!disabled.to_string().contains("token"), "{disabled}");
    assert!(!SMTP_AUTH_DISABLED.what.contains("refused the token"));
    let send_as = rejected(
        Phase::DataEnd,
        up(
            554,
            (5, 2, 252),
            "SendAsDenied; sender@contoso.com not allowed to send as other@contoso.com",
        ),
        None,
    );
    let x = explain(&send_as).unwrap();
    assert_eq!(x, SEND_AS_DENIED_STOREDRV);
    assert!(
        x.what.contains("554 5.2.252") && !x.what.contains("5.7.60"),
        "{}",
        x.what
    );
    let old_send_as = rejected(
        Phase::Mail,
        up(550, (5, 7, 60), "SMTP; Client does not have permissions"),
        None,
    );
    assert_eq!(explain(&old_send_as), Some(SEND_AS_DENIED));
    let server_error = RelayError::Token(TokenError::Refused {
        status: 503,
        oauth: None,
    });
    assert!(
        explain(&server_error)
            .unwrap()
            .fix
            .contains("Microsoft's side")
    );
    let certificate = RelayError::Token(TokenError::Certificate("unknown issuer".into()));
    assert_eq!(certificate.class(), Class::Misconfigured);
    assert!(explain(&certificate).unwrap().fix.contains("ca_file"));
}

#[test]
fn fixes_name_the_accounts_own_hosts_mailbox_and_app() {
    use explain::*;
    let mut a = crate::testkit::relay_config::example_account();
    a.name = "billing".into();
    a.mailbox = "billing@fabrikam.example".into();
    a.client_id = "99999999-8888-7777-6666-555555555555".into();
    a.smtp_host = "smtp.fabrikam.example".into();
    a.smtp_port = 2587;
    a.token_url = "https://login.fabrikam.example/t/oauth2/v2.0/token".into();
    let all = [
        SMTP_AUTH_DISABLED,
        TOKEN_REJECTED,
        SEND_AS_DENIED,
        SEND_AS_DENIED_STOREDRV,
        CONCURRENCY,
        SERVICE_UNAVAILABLE,
        SERVICE_CLOSING,
        QUOTA,
        TOO_BIG,
        BAD_SECRET,
        SECRET_EXPIRED,
        CERTIFICATE_NOT_REGISTERED,
        APP_NOT_FOUND,
        TENANT_NOT_FOUND,
        BAD_SCOPE,
        NO_RESOURCE,
        CLIENT_REFUSED,
        TOKEN_SERVER_ERROR,
        TOKEN_UNREACHABLE,
        TOKEN_CERTIFICATE,
        UPSTREAM_UNREACHABLE,
        NO_STARTTLS,
        TLS_FAILED,
        TLS_HANDSHAKE_FAILED,
        NO_XOAUTH2,
        BUSY,
    ];
    for x in all {
        let fix = x.fix_for(&a);
        assert!(!fix.contains('{'), "{}: {fix}", x.key);
        for placeholder in ["<mailbox>", "<client_id>", "login.microsoftonline.com"] {
            assert!(!fix.contains(placeholder), "{}: {fix}", x.key);
        }
    }
    let unreachable = UPSTREAM_UNREACHABLE.fix_for(&a);
    assert!(
        unreachable.contains("port 2587 to smtp.fabrikam.example"),
        "{unreachable}"
    );
    assert!(!unreachable.contains("office365"), "{unreachable}");
    let token = TOKEN_UNREACHABLE.fix_for(&a);
    assert!(
        token.contains("login.fabrikam.example (HTTPS, port 443)"),
        "{token}"
    );
    a.token_url = "https://login.fabrikam.example:8443/t/oauth2/v2.0/token".into();
    let token = TOKEN_UNREACHABLE.fix_for(&a);
    assert!(token.contains("(HTTPS, port 8443)"), "{token}");
    let rejected = TOKEN_REJECTED.fix_for(&a);
    assert!(
        rejected.contains("-AppId 99999999-8888-7777-6666-555555555555"),
        "{rejected}"
    );
    assert!(
        rejected.contains("-Identity billing@fabrikam.example"),
        "{rejected}"
    );
    assert!(
        CONCURRENCY
            .fix_for(&a)
            .contains("accounts.billing.max_connections")
    );
    assert!(TLS_FAILED.fix_for(&a).contains("accounts.billing.ca_file"));
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
