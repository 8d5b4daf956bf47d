//! In-process stand-ins for Microsoft 365, for `xoauth-relay demo` and the tests.
