//! Putting a path into each of the three languages the service files and printed commands
//! are in: a systemd command line, XML text, and a POSIX shell word.

use std::path::Path;

use super::ServiceError;

/// The path as UTF-8 without control characters: none of the three languages can carry a
/// newline in a path, and a unit or plist is text.
pub fn plain(path: &Path) -> Result<&str, ServiceError> {
    let text = path
        .to_str()
        .ok_or_else(|| ServiceError::Usage(format!("{} is not valid UTF-8", path.display())))?;
    if text.chars().any(char::is_control) {
        return Err(ServiceError::Usage(format!(
            "{text:?} contains a control character; a service file cannot name it"
        )));
    }
    Ok(text)
}

/// One word of a systemd `ExecStart=` (systemd.service(5), "Command lines"): `%` starts a
/// specifier and `$` a variable, so both are doubled; `\` and `"` are C-escaped inside
/// double quotes, which also keep spaces in one word.
pub fn systemd_word(text: &str) -> String {
    let escaped = text
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    let quote = text.is_empty()
        || text
            .chars()
            .any(|c| c.is_whitespace() || "\"'\\".contains(c));
    if quote {
        format!("\"{escaped}\"")
    } else {
        escaped
    }
}

/// Text for an XML element (a plist `<string>`).
pub fn xml_text(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A shell word for printed commands: bare when that is safe, else single-quoted.
pub fn shell_word(text: &str) -> String {
    let safe = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c));
    if safe {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_words() {
        assert_eq!(
            systemd_word("/usr/local/bin/xoauth-relay"),
            "/usr/local/bin/xoauth-relay"
        );
        assert_eq!(systemd_word("/opt/my relay/x"), "\"/opt/my relay/x\"");
        assert_eq!(systemd_word("/a/100%/$HOME"), "/a/100%%/$$HOME");
        assert_eq!(systemd_word(r#"/a "b"\c"#), r#""/a \"b\"\\c""#);
    }

    #[test]
    fn xml_escapes_markup() {
        assert_eq!(xml_text("/Users/a&b/<x>"), "/Users/a&amp;b/&lt;x&gt;");
    }

    #[test]
    fn shell_words() {
        assert_eq!(shell_word("/etc/x.toml"), "/etc/x.toml");
        assert_eq!(
            shell_word("/Users/a/Library/Application Support/x"),
            "'/Users/a/Library/Application Support/x'"
        );
        assert_eq!(shell_word("it's"), r"'it'\''s'");
    }

    #[test]
    fn control_characters_are_refused() {
        assert!(plain(Path::new("/a\nb")).is_err());
        assert_eq!(plain(Path::new("/a b")).ok(), Some("/a b"));
    }
}
