//! Parsing of durations ("30s", "5m") and sizes ("35MB") in the config file.
