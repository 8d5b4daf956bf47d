//! The raw shape of the TOML file (filled in by the config loader work).
