//! Plain-words explanations of the failures people actually hit with Microsoft 365: what
//! happened, in a few words for the client reply, and what to change, for the log and for
//! `xoauth-relay check`. Sources: Microsoft's "Microsoft Entra authentication and authorization
//! error codes", "Fix issues with printers, scanners and LOB applications that send email using
//! Microsoft 365" and "Non-delivery reports in Exchange Online".

use super::RelayError;
use crate::oauth::TokenError;
use crate::upstream::{TlsFailure, UpstreamError, UpstreamReply};

/// A known failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Explanation {
    /// Stable name, used to log each condition once.
    pub(crate) key: &'static str,
    /// A few words for the client and the log.
    pub(crate) what: &'static str,
    /// What the operator should do.
    pub(crate) fix: &'static str,
}

const fn x(key: &'static str, what: &'static str, fix: &'static str) -> Explanation {
    Explanation { key, what, fix }
}

pub(crate) const SMTP_AUTH_DISABLED: Explanation = x(
    "smtp-auth-disabled",
    "SMTP AUTH is disabled for this mailbox or tenant",
    "Enable SMTP AUTH for the mailbox (it is needed even with OAuth): in Exchange Online PowerShell run \
     Set-CASMailbox -Identity <mailbox> -SmtpClientAuthenticationDisabled $false, or tenant-wide \
     Set-TransportConfig -SmtpClientAuthenticationDisabled $false. Security defaults also block it.",
);
pub(crate) const TOKEN_REJECTED: Explanation = x(
    "token-rejected",
    "Exchange refused the app's token for this mailbox (535 5.7.3)",
    "Check the four Exchange prerequisites: (1) the app registration has the application permission \
     'Office 365 Exchange Online > SMTP.SendAsApp' with admin consent granted; (2) the service principal \
     is registered in Exchange: New-ServicePrincipal -AppId <client_id> -ObjectId <object id of the \
     Enterprise application, not of the app registration>; (3) it may use the mailbox: \
     Add-MailboxPermission -Identity <mailbox> -User <service principal id> -AccessRights FullAccess \
     (or an RBAC for Applications scope); (4) SMTP AUTH is enabled for the mailbox. Also check that \
     'mailbox' is the mailbox's primary address.",
);
pub(crate) const SEND_AS_DENIED: Explanation = x(
    "send-as-denied",
    "the mailbox may not send as this sender (5.7.60 SendAsDenied)",
    "Send from the mailbox's own address, or grant Send As: Add-RecipientPermission -Identity <sender> \
     -Trustee <mailbox> -AccessRights SendAs, then list the sender in allowed_senders.",
);
pub(crate) const CONCURRENCY: Explanation = x(
    "concurrent-connections",
    "more than 3 connections at once for this mailbox (432 4.3.2)",
    "Lower accounts.<name>.max_connections (3 at most) or stop other programs sending as this \
     mailbox at the same time; the client will retry.",
);
pub(crate) const QUOTA: Explanation = x(
    "submission-quota",
    "the mailbox reached its daily limit of 10,000 recipients (554 5.2.0)",
    "Wait for the 24-hour window to roll over, spread mail over several mailboxes, and check that \
     nobody is abusing the relay.",
);
pub(crate) const TOO_BIG: Explanation = x(
    "message-too-big",
    "the message is larger than the mailbox may send (552 5.3.4)",
    "Raise the mailbox's MaxSendSize in Exchange (default 35 MB, up to 150 MB) or lower \
     limits.max_message_size so clients learn the limit up front.",
);
pub(crate) const BAD_SECRET: Explanation = x(
    "invalid-client-secret",
    "Microsoft rejected the client secret (AADSTS7000215)",
    "Use the secret's Value, not its Secret ID: Entra admin center > App registrations > <app> > \
     Certificates & secrets; create a new one if the value is lost.",
);
pub(crate) const SECRET_EXPIRED: Explanation = x(
    "client-secret-expired",
    "the client secret has expired (AADSTS7000222)",
    "Create a new client secret for the app registration and put its Value in client_secret.",
);
pub(crate) const APP_NOT_FOUND: Explanation = x(
    "app-not-found",
    "the application was not found in the tenant (AADSTS700016)",
    "Check client_id (the Application (client) ID) and tenant; the app must be registered in, or \
     consented to by, that tenant.",
);
pub(crate) const TENANT_NOT_FOUND: Explanation = x(
    "tenant-not-found",
    "the tenant was not found (AADSTS90002)",
    "Check tenant (a tenant ID or a verified domain such as contoso.onmicrosoft.com) and, for \
     national clouds, authority.",
);
pub(crate) const BAD_SCOPE: Explanation = x(
    "invalid-scope",
    "the token scope is not valid (AADSTS70011)",
    "Leave scope unset or use https://outlook.office365.com/.default.",
);
pub(crate) const NO_RESOURCE: Explanation = x(
    "resource-not-found",
    "Exchange Online was not found in the tenant (AADSTS500011)",
    "Check the scope's host and the tenant; the tenant needs Exchange Online.",
);
pub(crate) const CLIENT_REFUSED: Explanation = x(
    "token-request-refused",
    "Microsoft refused the token request",
    "Check tenant, client_id and client_secret; the log line above has Microsoft's own reason.",
);
pub(crate) const TOKEN_UNREACHABLE: Explanation = x(
    "token-endpoint-unreachable",
    "the Microsoft token endpoint cannot be reached",
    "Check the network, DNS and any proxy or firewall between this machine and login.microsoftonline.com.",
);
pub(crate) const UPSTREAM_UNREACHABLE: Explanation = x(
    "upstream-unreachable",
    "the SMTP server cannot be reached",
    "Check the network and that outgoing TCP port 587 to smtp.office365.com is allowed.",
);
pub(crate) const NO_STARTTLS: Explanation = x(
    "no-starttls",
    "the SMTP server did not offer STARTTLS",
    "Check smtp_host and smtp_port (smtp.office365.com, 587); something may be intercepting the connection.",
);
pub(crate) const TLS_FAILED: Explanation = x(
    "tls-failed",
    "the SMTP server's certificate could not be verified",
    "If a TLS-inspecting proxy sits in between, add its CA certificate with ca_file; otherwise check smtp_host.",
);
pub(crate) const TLS_HANDSHAKE_FAILED: Explanation = x(
    "tls-handshake-failed",
    "the TLS handshake with the SMTP server failed",
    "Microsoft 365 speaks TLS 1.2 and 1.3; whatever answered offered neither or broke off the \
     handshake. Check smtp_host and smtp_port (smtp.office365.com, 587) and whether a proxy or \
     firewall intercepts the connection; the log line has the TLS error.",
);
pub(crate) const NO_XOAUTH2: Explanation = x(
    "no-xoauth2",
    "the SMTP server does not offer XOAUTH2",
    "Check smtp_host: Microsoft 365 is smtp.office365.com (national clouds differ).",
);
pub(crate) const BUSY: Explanation = x(
    "connections-busy",
    "all upstream connections of the account stayed busy",
    "Clients will retry; if this is frequent, spread senders over several mailboxes.",
);

/// The explanation for `error`, when it is one of the known cases.
pub(crate) fn explain(error: &RelayError) -> Option<Explanation> {
    match error {
        RelayError::Token(t) => explain_token(t),
        RelayError::Upstream(u) => explain_upstream(u),
        RelayError::NoRoute(_) => None,
    }
}

pub(crate) fn explain_token(error: &TokenError) -> Option<Explanation> {
    match error {
        TokenError::Timeout(_) | TokenError::Unreachable(_) => Some(TOKEN_UNREACHABLE),
        TokenError::Malformed(_) => None,
        TokenError::Refused { status, .. } if *status >= 500 => None,
        TokenError::Refused { oauth, .. } => {
            let codes = oauth
                .as_ref()
                .map(|o| o.codes.as_slice())
                .unwrap_or_default();
            let known = [
                (7000215, BAD_SECRET),
                (7000222, SECRET_EXPIRED),
                (700016, APP_NOT_FOUND),
                (90002, TENANT_NOT_FOUND),
                (70011, BAD_SCOPE),
                (500011, NO_RESOURCE),
            ];
            let found = known
                .iter()
                .find(|(code, _)| codes.contains(code))
                .map(|(_, e)| *e);
            Some(found.unwrap_or(CLIENT_REFUSED))
        }
    }
}

pub(crate) fn explain_upstream(error: &UpstreamError) -> Option<Explanation> {
    match error {
        UpstreamError::AuthRejected { reply, .. } | UpstreamError::Rejected { reply, .. } => {
            explain_reply(reply)
        }
        UpstreamError::Connect { .. } => Some(UPSTREAM_UNREACHABLE),
        UpstreamError::Timeout {
            phase: crate::upstream::Phase::Connect,
            ..
        } => Some(UPSTREAM_UNREACHABLE),
        UpstreamError::NoStartTls => Some(NO_STARTTLS),
        UpstreamError::Tls {
            failure: TlsFailure::Certificate,
            ..
        } => Some(TLS_FAILED),
        UpstreamError::Tls {
            failure: TlsFailure::Handshake,
            ..
        } => Some(TLS_HANDSHAKE_FAILED),
        UpstreamError::NoXoauth2 { .. } => Some(NO_XOAUTH2),
        UpstreamError::Busy { .. } => Some(BUSY),
        UpstreamError::Timeout { .. }
        | UpstreamError::Io { .. }
        | UpstreamError::Protocol { .. }
        | UpstreamError::Unsupported(_) => None,
    }
}

/// Recognises Exchange replies by enhanced code or, where a code is shared by several causes,
/// by a word of the text. `(0, 0, 0)` means "by text only".
pub(crate) fn explain_reply(reply: &UpstreamReply) -> Option<Explanation> {
    const TABLE: [((u8, u16, u16), &str, Explanation); 6] = [
        ((5, 7, 139), "SmtpClientAuthentication", SMTP_AUTH_DISABLED),
        ((5, 7, 3), "", TOKEN_REJECTED),
        ((5, 7, 60), "SendAsDenied", SEND_AS_DENIED),
        ((4, 3, 2), "concurrent connections", CONCURRENCY),
        ((0, 0, 0), "SubmissionQuotaExceeded", QUOTA),
        ((5, 3, 4), "", TOO_BIG),
    ];
    let hit = TABLE
        .iter()
        .find(|(enhanced, needle, _)| reply.matches(*enhanced, needle));
    hit.map(|(_, _, e)| *e)
        .or_else(|| (reply.code == 535).then_some(TOKEN_REJECTED))
}
