//! The problem list the checks write into, and what they need besides the file. Each check
//! records a problem and goes on with a stand-in, so every problem is found in one run; a list
//! with any problem in it discards the config that was built.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use super::Problem;

/// Where relative paths start, the environment for `*_env` settings, and the keys dropped for
/// a wrong value (already reported, so not "missing").
pub struct Context<'a> {
    pub base_dir: &'a Path,
    pub env: &'a HashMap<String, String>,
    pub dropped: &'a BTreeSet<String>,
}

/// Problems found so far.
#[derive(Default)]
pub struct Problems(pub Vec<Problem>);

impl Problems {
    pub fn push(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem::new(key, message));
    }

    /// A string that must be present and not blank; `missing` says what to put there. Never
    /// echoes the value.
    pub fn required(&mut self, key: &str, value: Option<&String>, missing: &str) -> Option<String> {
        match value {
            Some(text) if !text.trim().is_empty() => Some(text.clone()),
            Some(_) => {
                self.push(key, format!("is empty; {missing}"));
                None
            }
            None => {
                self.push(key, format!("is missing; {missing}"));
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_never_echoes_the_value() {
        let mut p = Problems::default();
        assert_eq!(p.required("k", Some(&"  ".to_owned()), "put X here"), None);
        assert_eq!(p.required("k", None, "put X here"), None);
        let messages: Vec<_> = p.0.iter().map(|p| p.message.as_str()).collect();
        assert_eq!(messages, ["is empty; put X here", "is missing; put X here"]);
    }
}
