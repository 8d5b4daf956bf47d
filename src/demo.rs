//! `xoauth-relay demo` (filled in once the stand-ins land).

use std::net::SocketAddr;

pub async fn run(_once: bool, _listen: Option<SocketAddr>) -> Result<(), String> {
    Err("not yet".into())
}
