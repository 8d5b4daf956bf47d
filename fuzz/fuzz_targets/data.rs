//! Fuzz target `data`: the DATA receiver against the literal reading of RFC 5321 §4.1.1.4
//! (`smtp::data::reference`), for both bare-line-ending policies and any cut into reads.
//!
//! Input: byte 0 = read length minus one (1..=256, the same for every read); the rest is what
//! the client sends after `DATA`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xoauth_relay::config::BareLineEndings;
use xoauth_relay::smtp::data::{DataReceiver, reference};

fuzz_target!(|input: &[u8]| {
    let Some((&cut, wire)) = input.split_first() else {
        return;
    };
    let read = usize::from(cut) + 1;
    let expected = reference(wire);
    for policy in [BareLineEndings::Normalize, BareLineEndings::Reject] {
        let got = receive(wire, read, policy);
        match (&expected, got) {
            (None, None) => {}
            (Some((end, content, bare)), Some((used, kept, refused))) => {
                assert_eq!(*end, used, "end of data");
                match policy {
                    BareLineEndings::Normalize => assert_eq!(content, &kept, "content"),
                    BareLineEndings::Reject if *bare => assert!(refused && kept.is_empty()),
                    BareLineEndings::Reject => assert_eq!(content, &kept, "content"),
                }
            }
            (e, g) => panic!("reference {e:?}, receiver {g:?}"),
        }
    }
});

/// The octets used, the content kept and whether it is refused; `None` without an end.
fn receive(wire: &[u8], read: usize, policy: BareLineEndings) -> Option<(usize, Vec<u8>, bool)> {
    let mut rx = DataReceiver::new(usize::MAX, policy);
    let mut out = Vec::new();
    let mut at = 0;
    for chunk in wire.chunks(read) {
        let (used, done) = rx.ingest(chunk, &mut out);
        assert!(used <= chunk.len());
        at += used;
        if done {
            return Some((at, out, rx.refused_for_bare_line_endings()));
        }
        assert_eq!(used, chunk.len(), "a read is consumed whole until the end");
    }
    None
}
