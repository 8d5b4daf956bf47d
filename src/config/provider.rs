//! Account kinds: the service an account sends through (`provider`) and how it gets its token
//! (`auth`). A provider only supplies defaults; every one of them can be set in the account.

/// `provider`: which service the account's mailbox lives on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Provider {
    /// A Microsoft 365 (Exchange Online) mailbox.
    #[default]
    Microsoft365,
    /// A personal Outlook.com / Hotmail / Live account.
    Outlook,
    /// Exchange Online High Volume Email (internal recipients only).
    Hve,
    /// Azure Communication Services SMTP (AUTH LOGIN with an Entra app's secret).
    Acs,
}

/// `auth`: how the relay gets the token it sends with.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Auth {
    /// App-only: the app registration's own credential (OAuth 2.0 client credentials grant).
    #[default]
    ClientCredentials,
    /// A user signs in once; the relay keeps a refresh token.
    Delegated,
}

/// What a provider fills in where the account says nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Preset {
    pub smtp_host: &'static str,
    pub smtp_port: u16,
    pub authority: &'static str,
    pub scope: &'static str,
    /// The tenant path segment when the account does not name one (`consumers` for personal
    /// accounts, which have no tenant of their own).
    pub tenant: Option<&'static str>,
    pub auth: Auth,
}

pub const DEFAULT_AUTHORITY: &str = "https://login.microsoftonline.com";
/// The Exchange Online resource for SMTP/IMAP/POP client credentials (Microsoft Learn,
/// "Authenticate an IMAP, POP or SMTP connection using OAuth").
pub const DEFAULT_SCOPE: &str = "https://outlook.office365.com/.default";
pub const DEFAULT_SMTP_HOST: &str = "smtp.office365.com";
/// SMTP submission with STARTTLS (RFC 6409); every provider here uses it.
pub const DEFAULT_SMTP_PORT: u16 = 587;

const MICROSOFT365: Preset = Preset {
    smtp_host: DEFAULT_SMTP_HOST,
    smtp_port: DEFAULT_SMTP_PORT,
    authority: DEFAULT_AUTHORITY,
    scope: DEFAULT_SCOPE,
    tenant: None,
    auth: Auth::ClientCredentials,
};

impl Provider {
    /// Every provider, in the order messages list them.
    pub const ALL: [Provider; 4] = [
        Provider::Microsoft365,
        Provider::Outlook,
        Provider::Hve,
        Provider::Acs,
    ];

    /// The word used for it in the file.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Microsoft365 => "microsoft365",
            Provider::Outlook => "outlook",
            Provider::Hve => "hve",
            Provider::Acs => "acs",
        }
    }

    pub fn preset(self) -> Preset {
        match self {
            Provider::Microsoft365 => MICROSOFT365,
            // Microsoft Learn, "OAuth authentication for high volume emails for Microsoft 365":
            // XOAUTH2 with an app-only token for Exchange Online, on HVE's own endpoint (the
            // older smtp-hve.office365.com is being retired).
            Provider::Hve => Preset {
                smtp_host: "smtp.hve.mx.microsoft",
                ..MICROSOFT365
            },
            // Personal accounts sign in through the `consumers` tenant with the delegated
            // SMTP.Send permission; basic authentication ended on 16 September 2024.
            Provider::Outlook => Preset {
                smtp_host: "smtp-mail.outlook.com",
                scope: "https://outlook.office.com/SMTP.Send offline_access",
                tenant: Some("consumers"),
                auth: Auth::Delegated,
                ..MICROSOFT365
            },
            Provider::Acs => Preset {
                smtp_host: "smtp.azurecomm.net",
                ..MICROSOFT365
            },
        }
    }

    /// Signs in with a user name and password (`AUTH LOGIN`) rather than a token.
    pub fn uses_login(self) -> bool {
        self == Provider::Acs
    }
}

impl Auth {
    /// Every kind, in the order messages list them.
    pub const ALL: [Auth; 2] = [Auth::ClientCredentials, Auth::Delegated];

    /// The word used for it in the file.
    pub fn name(self) -> &'static str {
        match self {
            Auth::ClientCredentials => "client_credentials",
            Auth::Delegated => "delegated",
        }
    }
}

/// The delegated Exchange Online scope for work accounts; `offline_access` asks for the
/// refresh token (Microsoft identity platform, "Permissions and consent").
pub const DELEGATED_SCOPE: &str = "https://outlook.office365.com/SMTP.Send offline_access";

impl Provider {
    /// The default scope for this provider when it signs in with `auth`.
    pub fn scope(self, auth: Auth) -> &'static str {
        match (self, auth) {
            (Provider::Microsoft365, Auth::Delegated) => DELEGATED_SCOPE,
            _ => self.preset().scope,
        }
    }

    /// Whether an account of this provider can sign in with `auth`.
    pub fn allows(self, auth: Auth) -> bool {
        match auth {
            // A personal account has no tenant to grant an app access to it.
            Auth::ClientCredentials => self != Provider::Outlook,
            // HVE takes app-only tokens; ACS signs in with a password.
            Auth::Delegated => matches!(self, Provider::Microsoft365 | Provider::Outlook),
        }
    }
}

impl std::fmt::Display for Provider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_name_the_documented_endpoints() {
        let m = Provider::Microsoft365.preset();
        assert_eq!((m.smtp_host, m.smtp_port), ("smtp.office365.com", 587));
        assert_eq!(m.auth, Auth::ClientCredentials);
        let h = Provider::Hve.preset();
        assert_eq!(
            (h.smtp_host, h.scope),
            ("smtp.hve.mx.microsoft", DEFAULT_SCOPE)
        );
        assert_eq!(h.auth, Auth::ClientCredentials);
        let o = Provider::Outlook.preset();
        assert_eq!(o.smtp_host, "smtp-mail.outlook.com");
        assert_eq!(
            o.scope,
            "https://outlook.office.com/SMTP.Send offline_access"
        );
        assert_eq!((o.tenant, o.auth), (Some("consumers"), Auth::Delegated));
        assert!(Provider::Acs.uses_login());
        assert!(!Provider::Hve.uses_login());
        assert_eq!(
            Provider::Microsoft365.scope(Auth::Delegated),
            "https://outlook.office365.com/SMTP.Send offline_access"
        );
        assert_eq!(Provider::Outlook.scope(Auth::Delegated), o.scope);
        assert_eq!(Provider::Hve.scope(Auth::ClientCredentials), DEFAULT_SCOPE);
        assert!(Provider::Outlook.allows(Auth::Delegated));
        assert!(!Provider::Hve.allows(Auth::Delegated));
    }
}
