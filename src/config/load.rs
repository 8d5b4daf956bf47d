//! Loading: TOML file, then `XOAUTH_RELAY__…` environment overrides, then validation that
//! reports every problem at once. (Stub: replaced by the loader implementation.)

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::Config;

/// One thing wrong with the configuration: where (`accounts.contoso.tenant`) and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub key: String,
    pub message: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no configuration file found")]
    NotFound { searched: Vec<PathBuf> },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("invalid configuration")]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

pub fn search_paths(_env: &HashMap<String, String>) -> Vec<PathBuf> {
    Vec::new()
}

pub fn resolve_path(
    _cli: Option<&Path>,
    _env: &HashMap<String, String>,
) -> Result<PathBuf, ConfigError> {
    Err(ConfigError::NotFound {
        searched: Vec::new(),
    })
}

pub fn load(_path: &Path, _env: &HashMap<String, String>) -> Result<Config, ConfigError> {
    Err(ConfigError::NotFound {
        searched: Vec::new(),
    })
}

pub fn load_str(
    _toml: &str,
    _base_dir: &Path,
    _env: &HashMap<String, String>,
) -> Result<Config, ConfigError> {
    Err(ConfigError::NotFound {
        searched: Vec::new(),
    })
}
