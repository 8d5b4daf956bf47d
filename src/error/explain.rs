//! Plain-words explanations of the failures people actually hit with Microsoft 365: what
//! happened, in a few words for the client reply, and what to change, for the log and for
//! `xoauth-relay check`. Sources: Microsoft's "Microsoft Entra authentication and authorization
//! error codes", "Fix issues with printers, scanners and LOB applications that send email using
//! Microsoft 365", "Enable or disable authenticated client SMTP submission (SMTP AUTH) in
//! Exchange Online" and "Non-delivery reports in Exchange Online".

use super::RelayError;
use crate::config::Account;
use crate::oauth::TokenError;
use crate::upstream::{Mechanism, Phase, TlsFailure, UpstreamError, UpstreamReply};

/// A known failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Explanation {
    /// Stable name, used to log each condition once.
    pub(crate) key: &'static str,
    /// A few words for the client and the log.
    pub(crate) what: &'static str,
    /// What the operator should do; `{mailbox}`, `{client_id}`, `{smtp_host}`, `{smtp_port}`,
    /// `{token_host}`, `{token_port}` and `{account}` stand for the account's values (see [`Explanation::fix_for`]).
    pub(crate) fix: &'static str,
}

const fn x(key: &'static str, what: &'static str, fix: &'static str) -> Explanation {
    Explanation { key, what, fix }
}

impl Explanation {
    /// The fix with the account's own values in place of the placeholders.
    pub(crate) fn fix_for(&self, account: &Account) -> String {
        fill(self.fix, account)
    }
}

/// `text` with the placeholders of [`Explanation::fix`] replaced by `account`'s values.
pub(crate) fn fill(text: &str, account: &Account) -> String {
    let url = reqwest::Url::parse(&account.token_url).ok();
    let token_host = url
        .as_ref()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_else(|| account.token_url.clone());
    let token_port = url.and_then(|u| u.port_or_known_default()).unwrap_or(443);
    text.replace("{mailbox}", &account.mailbox)
        .replace("{client_id}", &account.client_id)
        .replace("{smtp_host}", &account.smtp_host)
        .replace("{smtp_port}", &account.smtp_port.to_string())
        .replace("{token_host}", &token_host)
        .replace("{token_port}", &token_port.to_string())
        .replace("{account}", &account.name)
}

pub(crate) const SMTP_AUTH_DISABLED: Explanation = x(
    "smtp-auth-disabled",
    "SMTP AUTH is disabled for this mailbox or tenant",
    "Exchange answered 535 5.7.139: the token was fine, but it refuses any SMTP AUTH for \
     {mailbox}, OAuth included (Microsoft: \"Enable or disable \
     authenticated client SMTP submission (SMTP AUTH) in Exchange Online\"). In Exchange Online \
     PowerShell run Set-CASMailbox -Identity {mailbox} -SmtpClientAuthenticationDisabled $false, \
     or tenant-wide Set-TransportConfig -SmtpClientAuthenticationDisabled $false (the mailbox \
     setting wins over the tenant's). Security defaults also block SMTP AUTH.",
);
pub(crate) const TOKEN_REJECTED: Explanation = x(
    "token-rejected",
    "Exchange refused the app's token for this mailbox (535 5.7.3)",
    "Exchange says 535 5.7.3 for each of these, most likely first: (1) the service principal is \
     not registered in Exchange, or with the wrong object ID: New-ServicePrincipal -AppId \
     {client_id} -ObjectId <object ID of the Enterprise application, not of the app \
     registration>; (2) it may not use the mailbox: Add-MailboxPermission -Identity {mailbox} \
     -User <service principal ID> -AccessRights FullAccess (or an RBAC for Applications scope); \
     (3) the application permission 'Office 365 Exchange Online > SMTP.SendAsApp' lacks admin \
     consent (xoauth-relay check reads the token's roles); (4) {mailbox} is not the mailbox's \
     primary address.",
);
/// Microsoft Learn, "Authenticate an IMAP, POP or SMTP connection using OAuth" (delegated
/// access): the user's token must carry SMTP.Send and the user must be able to use the mailbox.
pub(crate) const USER_TOKEN_REJECTED: Explanation = x(
    "user-token-rejected",
    "Exchange refused the signed-in user's token for this mailbox (535 5.7.3)",
    "The user who signed in with `xoauth-relay login {account}` must be {mailbox} itself, or \
     have Full Access and Send As on it; if someone else signed in, run the login again as \
     {mailbox}. The app registration {client_id} needs the delegated permission SMTP.Send \
     (consented by the user or an admin), and SMTP AUTH must be enabled for the mailbox.",
);
pub(crate) const SEND_AS_DENIED: Explanation = x(
    "send-as-denied",
    "the mailbox may not send as this sender (5.7.60)",
    SEND_AS_FIX,
);
pub(crate) const SEND_AS_DENIED_STOREDRV: Explanation = x(
    "send-as-denied",
    "the mailbox may not send as this sender (554 5.2.252 SendAsDenied)",
    SEND_AS_FIX,
);
const SEND_AS_FIX: &str = "Send from {mailbox} itself, or grant Send As: Add-RecipientPermission \
     -Identity <sender> -Trustee {mailbox} -AccessRights SendAs, then list the sender in \
     allowed_senders; xoauth-relay check --send-to ADDR tries every allowed sender.";
pub(crate) const CONCURRENCY: Explanation = x(
    "concurrent-connections",
    "more than 3 connections at once for this mailbox (432 4.3.2)",
    "Lower accounts.{account}.max_connections (3 at most) or stop other programs sending as \
     {mailbox} at the same time; the client will retry.",
);
pub(crate) const SERVICE_UNAVAILABLE: Explanation = x(
    "service-unavailable",
    "the SMTP server refused service when the relay connected (421 at the greeting)",
    "Nothing in the relay's settings causes this: {smtp_host} is not taking connections right now \
     (check the Microsoft 365 service health); clients keep the message and retry. If it \
     persists, check that {smtp_host}:{smtp_port} is Microsoft 365 and that no proxy or \
     firewall answers in its place.",
);
pub(crate) const SERVICE_CLOSING: Explanation = x(
    "service-closing",
    "the SMTP server ended the session (421 service not available)",
    "A problem on {smtp_host}'s side, usually brief; clients keep the message and retry.",
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
    "Raise the MaxSendSize of {mailbox} in Exchange (default 35 MB, up to 150 MB) or lower \
     limits.max_message_size so clients learn the limit up front.",
);
pub(crate) const BAD_SECRET: Explanation = x(
    "invalid-client-secret",
    "Microsoft rejected the client secret (AADSTS7000215)",
    "Use the secret's Value, not its Secret ID: Entra admin center > App registrations > \
     {client_id} > Certificates & secrets; create a new one if the value is lost.",
);
pub(crate) const SECRET_EXPIRED: Explanation = x(
    "client-secret-expired",
    "the client secret has expired (AADSTS7000222)",
    "Create a new client secret for the app registration {client_id} and put its Value in \
     accounts.{account}.client_secret (and the new date in client_secret_expires).",
);
pub(crate) const CERTIFICATE_NOT_REGISTERED: Explanation = x(
    "client-certificate-not-matching",
    "Microsoft did not accept the client certificate (AADSTS700027)",
    "The certificate in accounts.{account}.client_certificate is not one the app registration \
     {client_id} knows, or client_key is not its key. Upload that certificate (the .pem file, \
     public part only) in Entra admin center > App registrations > {client_id} > Certificates & \
     secrets > Certificates, check that the thumbprint shown there is the certificate's, and \
     that the certificate has not expired.",
);
pub(crate) const APP_NOT_FOUND: Explanation = x(
    "app-not-found",
    "the application was not found in the tenant (AADSTS700016)",
    "Check client_id ({client_id}, the Application (client) ID) and the tenant in the token URL \
     (https://{token_host}/...); the app must be registered in, or consented to by, that tenant.",
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
    "Check tenant, client_id ({client_id}) and client_secret; the line above has Microsoft's own \
     reason.",
);
pub(crate) const TOKEN_SERVER_ERROR: Explanation = x(
    "token-endpoint-failed",
    "the Microsoft token endpoint failed on its side (HTTP 5xx)",
    "This is Microsoft's side, not a setting of the relay: clients keep the message and retry. If \
     it persists, check the Microsoft 365 service health; the trace and correlation IDs in the \
     line above identify the request for Microsoft support.",
);
pub(crate) const TOKEN_UNREACHABLE: Explanation = x(
    "token-endpoint-unreachable",
    "the Microsoft token endpoint cannot be reached",
    "Check the network, DNS and any proxy or firewall between this machine and {token_host} \
     (HTTPS, port {token_port}).",
);
pub(crate) const TOKEN_CERTIFICATE: Explanation = x(
    "token-endpoint-certificate",
    "the token endpoint's certificate could not be verified",
    "A certificate problem, not a network one: something between this machine and {token_host} \
     (usually a TLS-inspecting proxy) presents a certificate from a CA the relay does not trust; \
     the line above names its issuer. Put that CA's certificate (PEM) in \
     accounts.{account}.ca_file, or exempt {token_host} from inspection.",
);
pub(crate) const UPSTREAM_UNREACHABLE: Explanation = x(
    "upstream-unreachable",
    "the SMTP server cannot be reached",
    "Check the network and that outgoing TCP port {smtp_port} to {smtp_host} is allowed.",
);
pub(crate) const NO_STARTTLS: Explanation = x(
    "no-starttls",
    "the SMTP server did not offer STARTTLS",
    "Check smtp_host and smtp_port ({smtp_host}:{smtp_port}; Microsoft 365 is \
     smtp.office365.com:587); something may be intercepting the connection.",
);
pub(crate) const TLS_FAILED: Explanation = x(
    "tls-failed",
    "the SMTP server's certificate could not be verified",
    "A certificate problem, not a network one. If a TLS-inspecting proxy sits between this machine \
     and {smtp_host}, put its CA certificate (PEM; the line above names the issuer) in \
     accounts.{account}.ca_file; otherwise check smtp_host ({smtp_host}).",
);
pub(crate) const TLS_HANDSHAKE_FAILED: Explanation = x(
    "tls-handshake-failed",
    "the TLS handshake with the SMTP server failed",
    "Microsoft 365 speaks TLS 1.2 and 1.3; whatever answered offered neither or broke off the \
     handshake. Check smtp_host and smtp_port ({smtp_host}:{smtp_port}; Microsoft 365 is \
     smtp.office365.com:587) and whether a proxy or firewall intercepts the connection; the log \
     line has the TLS error.",
);
pub(crate) const NO_XOAUTH2: Explanation = x(
    "no-xoauth2",
    "the SMTP server does not offer XOAUTH2",
    "Check smtp_host ({smtp_host}): Microsoft 365 is smtp.office365.com (national clouds differ).",
);
pub(crate) const NO_LOGIN: Explanation = x(
    "no-auth-login",
    "the SMTP server does not offer AUTH LOGIN",
    "Check smtp_host ({smtp_host}): Azure Communication Services is smtp.azurecomm.net:587.",
);
/// Azure Communication Services, "Create credentials for SMTP authentication".
pub(crate) const ACS_LOGIN_REJECTED: Explanation = x(
    "acs-login-rejected",
    "Azure Communication Services refused the SMTP username or secret",
    "ACS answered 535 to AUTH LOGIN for accounts.{account}. smtp_username must be the name of \
     an \"SMTP Username\" of the Communication Services resource (Azure portal → the \
     Communication Services resource → SMTP Usernames), and the secret must be a \
     current client secret of the Entra app that SMTP Username is linked to (Entra admin center \
     → App registrations → the app → Certificates & secrets; the value, not the secret ID). The \
     app also needs a role on the Communication Services resource (\"Communication and Email \
     Service Owner\" or a custom role with Microsoft.Communication/CommunicationServices/Read \
     and Microsoft.Communication/EmailServices/write), which can take a few minutes to apply.",
);
/// No reply text of High Volume Email for an external recipient is documented; Exchange's
/// authorization refusals of a recipient are `550 5.7.x` (Microsoft, "Non-delivery reports in
/// Exchange Online"), and HVE delivers to internal recipients only ("High Volume Email for
/// Microsoft 365"), so any such refusal on an HVE account is read as that.
pub(crate) const HVE_EXTERNAL_RECIPIENT: Explanation = x(
    "hve-external-recipient",
    "High Volume Email delivers to recipients inside the tenant only",
    "accounts.{account} uses provider = \"hve\", and HVE refused a recipient with 550 5.7.x: \
     HVE sends only to recipients in your own organization (its accepted domains). Send mail \
     for outside recipients through another account (a Microsoft 365 mailbox, or Azure \
     Communication Services with provider = \"acs\"), and set \
     accounts.{account}.allowed_recipient_domains to your own domains so that the relay refuses \
     outside recipients before sending.",
);
/// Azure Communication Services, "Send email with SMTP": the sender must be an address on a
/// domain linked to the Communication Services resource. No reply text for an unlinked domain is
/// documented, so any permanent refusal of MAIL FROM on an ACS account is read as that.
pub(crate) const ACS_SENDER_DOMAIN: Explanation = x(
    "acs-sender-domain",
    "Azure Communication Services refused the sender address",
    "accounts.{account} uses provider = \"acs\", and ACS refused MAIL FROM: the sender must be \
     an address on a domain linked to the Communication Services resource (Azure portal → the \
     Email Communication Services resource → Provision domains: a verified custom domain or the \
     Azure-managed one; then the Communication Services resource → Email → Domains → Connect \
     domain). Set accounts.{account}.mailbox (and the users' allowed_senders) to such an \
     address (mailbox is {mailbox}).",
);
/// Microsoft identity platform, "Refresh tokens in the Microsoft identity platform" (lifetime
/// and revocation) and "Microsoft Entra authentication and authorization error codes".
pub(crate) const SIGN_IN_NEEDED: Explanation = x(
    "sign-in-needed",
    "the account needs a new sign-in (no refresh token, or Microsoft refused it)",
    "Run `xoauth-relay login {account}` as the relay's user and sign in as {mailbox} (add \
     --device on a machine without a browser); a running relay uses the new sign-in without a \
     restart. Microsoft ends a sign-in after 90 days unused (the relay uses it at least hourly), \
     when the password changes or sessions are revoked, and when a policy (MFA, Conditional \
     Access, sign-in frequency) asks the user to sign in again.",
);
pub(crate) const TOKEN_STORE: Explanation = x(
    "refresh-token-store",
    "the relay cannot read or replace its refresh token file",
    "The line above names the file (under state_dir/tokens): check that the relay's user owns \
     state_dir and may write there, and that the disk is not full. If the file is damaged, \
     run `xoauth-relay login {account}` again.",
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
        RelayError::NoRoute(_) | RelayError::Paced(_) => None,
    }
}

/// [`explain`] with what the account's provider adds: HVE refusing an outside recipient.
pub(crate) fn explain_for(error: &RelayError, account: &Account) -> Option<Explanation> {
    match error {
        RelayError::Upstream(u) => explain_upstream_for(u, account),
        other => explain(other),
    }
}

/// [`explain_upstream`] with what the account's provider adds.
pub(crate) fn explain_upstream_for(
    error: &UpstreamError,
    account: &Account,
) -> Option<Explanation> {
    let refused_recipient = match error {
        UpstreamError::Rejected {
            phase: Phase::Rcpt | Phase::DataEnd,
            reply,
            ..
        } => {
            reply.code == 550
                && reply.enhanced.is_some_and(|e| e.0 == 5 && e.1 == 7)
                && !reply.matches((5, 7, 60), "")
        }
        _ => false,
    };
    if account.provider == crate::config::Provider::Hve && refused_recipient {
        return Some(HVE_EXTERNAL_RECIPIENT);
    }
    let refused_sender = matches!(error, UpstreamError::Rejected { phase: Phase::Mail, reply, .. } if reply.code >= 500);
    if account.provider == crate::config::Provider::Acs && refused_sender {
        return Some(ACS_SENDER_DOMAIN);
    }
    match explain_upstream(error) {
        Some(x) if x == TOKEN_REJECTED && account.auth == crate::config::Auth::Delegated => {
            Some(USER_TOKEN_REJECTED)
        }
        other => other,
    }
}

pub(crate) fn explain_token(error: &TokenError) -> Option<Explanation> {
    match error {
        TokenError::Timeout(_) | TokenError::Unreachable(_) => Some(TOKEN_UNREACHABLE),
        TokenError::Certificate(_) => Some(TOKEN_CERTIFICATE),
        TokenError::Malformed(_) | TokenError::Signing(_) => None,
        TokenError::SignIn { .. } => Some(SIGN_IN_NEEDED),
        TokenError::Store { .. } => Some(TOKEN_STORE),
        TokenError::Refused { status, .. } if *status >= 500 => Some(TOKEN_SERVER_ERROR),
        TokenError::Refused { oauth, .. } => {
            let codes = oauth
                .as_ref()
                .map(|o| o.codes.as_slice())
                .unwrap_or_default();
            let known = [
                (7000215, BAD_SECRET),
                (7000222, SECRET_EXPIRED),
                (700027, CERTIFICATE_NOT_REGISTERED),
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
        UpstreamError::AuthRejected {
            mechanism: Mechanism::Login,
            reply,
            ..
        } if reply.code == 535 => Some(ACS_LOGIN_REJECTED),
        UpstreamError::AuthRejected { reply, .. } => explain_reply(Phase::Auth, reply),
        UpstreamError::Rejected { phase, reply, .. } => explain_reply(*phase, reply),
        UpstreamError::Connect { .. } => Some(UPSTREAM_UNREACHABLE),
        UpstreamError::Timeout {
            phase: Phase::Connect,
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
        UpstreamError::NoLogin { .. } => Some(NO_LOGIN),
        UpstreamError::Busy { .. } => Some(BUSY),
        UpstreamError::Timeout { .. }
        | UpstreamError::Io { .. }
        | UpstreamError::Protocol { .. }
        | UpstreamError::Unsupported(_) => None,
    }
}

/// Recognises an Exchange reply by the phase it came in and its basic and enhanced codes, or,
/// where a code is shared by several causes, by a word of the text. An enhanced code alone is
/// not enough: Exchange greets with `421 4.3.2 Service not available` when it is down, and
/// `4.3.2` after AUTH means too many connections.
pub(crate) fn explain_reply(phase: Phase, reply: &UpstreamReply) -> Option<Explanation> {
    let code = reply.code;
    let has = |needle: &str| reply.matches((0, 0, 0), needle);
    let is = |c, s, d| reply.matches((c, s, d), "");
    match phase {
        Phase::Connect | Phase::Greeting if code == 421 => return Some(SERVICE_UNAVAILABLE),
        Phase::Connect | Phase::Greeting => return None,
        Phase::Auth if is(5, 7, 139) || has("SmtpClientAuthentication") => {
            return Some(SMTP_AUTH_DISABLED);
        }
        Phase::Auth if code == 535 => return Some(TOKEN_REJECTED),
        _ => {}
    }
    if code == 421 {
        return Some(SERVICE_CLOSING);
    }
    if code == 432 || has("concurrent connections") || has("thread limit") {
        return Some(CONCURRENCY);
    }
    if is(5, 2, 252) || has("SendAsDenied") {
        return Some(SEND_AS_DENIED_STOREDRV);
    }
    if is(5, 7, 60) {
        return Some(SEND_AS_DENIED);
    }
    if has("SubmissionQuotaExceeded") {
        return Some(QUOTA);
    }
    is(5, 3, 4).then_some(TOO_BIG)
}
