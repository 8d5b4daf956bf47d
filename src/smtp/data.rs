//! The DATA receiver: finds the end of a message, undoes dot-stuffing, notes bare CR and LF,
//! and bounds what it keeps. Pure: bytes in, message content out.
//!
//! Only `CRLF . CRLF` ends the data (RFC 5321 §4.1.1.4), where the first CRLF may be the one
//! that ended the `DATA` command. A line is what a CRLF ends (§2.3.8): a bare CR or LF neither
//! ends a line nor starts one, so `\r\n.\r\r\n`, `\n.\r\n` or `\r\n.\n` end nothing and cannot
//! smuggle a second message past this receiver. A leading dot is removed from every other line
//! that starts with one (§4.5.2).

use memchr::memchr2;

pub use crate::config::BareLineEndings;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// After a CRLF (or at the very start): a dot here is special.
    LineStart,
    /// Inside a line.
    Text,
    /// Inside a line, after a CR that is not kept yet: CRLF, or a bare CR.
    Cr,
    /// A line started with a dot that is not kept yet.
    Dot,
    /// A line started with dot CR: the end of the data if LF follows.
    DotCr,
}

/// Receives one message's data. Feed it with [`DataReceiver::ingest`] until it says done.
#[derive(Debug)]
pub struct DataReceiver {
    state: State,
    policy: BareLineEndings,
    /// Most content octets kept; beyond, the content is dropped and only the end is looked for.
    max: usize,
    /// Content octets seen so far (after un-stuffing), kept or not.
    size: usize,
    bare: bool,
    /// Nothing more is kept: the message is too big or will be refused.
    discarding: bool,
}

impl DataReceiver {
    pub fn new(max: usize, policy: BareLineEndings) -> Self {
        Self {
            state: State::LineStart,
            policy,
            max,
            size: 0,
            bare: false,
            discarding: false,
        }
    }

    /// Consumes `input` up to and including the end-of-data line, appending the content to
    /// `out`. Returns how many octets were used and whether the end was reached; the rest of
    /// `input` belongs to the commands after the message.
    pub fn ingest(&mut self, input: &[u8], out: &mut Vec<u8>) -> (usize, bool) {
        let mut i = 0;
        while i < input.len() {
            if self.state == State::Text {
                // Most of a message is text: copy up to the next CR or LF at once.
                let run = memchr2(b'\r', b'\n', &input[i..]).unwrap_or(input.len() - i);
                self.keep(out, &input[i..i + run]);
                i += run;
                if i == input.len() {
                    break;
                }
            }
            let b = input[i];
            i += 1;
            if self.byte(b, out) {
                return (i, true);
            }
        }
        (i, false)
    }

    /// The message's content size in octets, including what was not kept.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The content grew past the limit; what was kept is incomplete.
    pub fn too_big(&self) -> bool {
        self.size > self.max
    }

    /// A bare CR or LF was seen.
    pub fn has_bare_line_ending(&self) -> bool {
        self.bare
    }

    /// The message must be refused for its bare line endings.
    pub fn refused_for_bare_line_endings(&self) -> bool {
        self.bare && self.policy == BareLineEndings::Reject
    }

    /// One octet outside the text fast path; true at the end of the data.
    fn byte(&mut self, b: u8, out: &mut Vec<u8>) -> bool {
        match (self.state, b) {
            (State::LineStart, b'.') => self.state = State::Dot,
            (State::Dot, b'\r') => self.state = State::DotCr,
            (State::DotCr, b'\n') => return true,
            // A dot followed by more on its line was stuffed: drop it, go on with the rest.
            (State::Dot, _) => self.text_byte(b, out),
            (State::DotCr, _) => self.after_cr(b, out),
            (State::Cr, _) => self.after_cr(b, out),
            (State::LineStart | State::Text, _) => self.text_byte(b, out),
        }
        false
    }

    /// An octet inside a line.
    fn text_byte(&mut self, b: u8, out: &mut Vec<u8>) {
        match b {
            b'\r' => self.state = State::Cr,
            b'\n' => {
                self.bare_line_ending(out);
                self.state = State::Text;
            }
            _ => {
                self.keep(out, &[b]);
                self.state = State::Text;
            }
        }
    }

    /// The octet after a pending CR: LF makes a line end, anything else makes the CR bare.
    fn after_cr(&mut self, b: u8, out: &mut Vec<u8>) {
        if b == b'\n' {
            self.keep(out, b"\r\n");
            self.state = State::LineStart;
            return;
        }
        self.bare_line_ending(out);
        self.text_byte(b, out);
    }

    fn bare_line_ending(&mut self, out: &mut Vec<u8>) {
        self.bare = true;
        match self.policy {
            BareLineEndings::Normalize => self.keep(out, b"\r\n"),
            BareLineEndings::Reject => {
                // Refused at the end whatever follows; keep nothing more of it.
                self.size += 1;
                self.discard(out);
            }
        }
    }

    fn keep(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        self.size = self.size.saturating_add(bytes.len());
        if self.size > self.max {
            self.discard(out);
        }
        if !self.discarding {
            out.extend_from_slice(bytes);
        }
    }

    fn discard(&mut self, out: &mut Vec<u8>) {
        if !self.discarding {
            self.discarding = true;
            *out = Vec::new();
        }
    }
}

/// The data of RFC 5321 read literally, for checking [`DataReceiver`] (tests and fuzzing):
/// the content ends before the first `CRLF . CRLF` (counting the CRLF that ended `DATA`), is
/// cut into lines at each CRLF, and loses the first character of each line that starts with a
/// dot. Returns the octets used, the content with bare CR and LF replaced by CRLF, and whether
/// there were any; `None` if the end is not in `input`.
pub fn reference(input: &[u8]) -> Option<(usize, Vec<u8>, bool)> {
    let framed = [b"\r\n".as_slice(), input].concat();
    let end = memchr::memmem::find(&framed, b"\r\n.\r\n")?;
    // Everything up to and including the CRLF before the dot line.
    let text = &framed[2..end + 2];
    let mut content = Vec::with_capacity(text.len());
    let mut bare = false;
    let mut rest = text;
    while let Some(p) = memchr::memmem::find(rest, b"\r\n") {
        let (line, tail) = rest.split_at(p + 2);
        rest = tail;
        let line = line.strip_prefix(b".").unwrap_or(line);
        // The first CRLF ends the line, so every CR or LF before it is bare.
        for &b in &line[..line.len() - 2] {
            if b == b'\r' || b == b'\n' {
                bare = true;
                content.extend_from_slice(b"\r\n");
            } else {
                content.push(b);
            }
        }
        content.extend_from_slice(b"\r\n");
    }
    Some((end + 3, content, bare))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn receive(input: &[u8], policy: BareLineEndings) -> Option<(usize, Vec<u8>, bool)> {
        let mut rx = DataReceiver::new(usize::MAX, policy);
        let mut out = Vec::new();
        let (used, done) = rx.ingest(input, &mut out);
        done.then(|| (used, out, rx.has_bare_line_ending()))
    }

    #[test]
    fn only_crlf_dot_crlf_ends_the_data() {
        let table: &[(&[u8], Option<usize>)] = &[
            (b".\r\n", Some(3)),
            (b"a\r\n.\r\nMAIL", Some(6)),
            (b"a\r\n.\r\r\nMAIL FROM:<x@y>\r\n", None),
            (b"a\r\n.\r\r\r\nMAIL FROM:<x@y>\r\n", None),
            (b"a\n.\r\nMAIL FROM:<x@y>\r\n", None),
            (b"a\n.\nMAIL FROM:<x@y>\r\n", None),
            (b"a\r\n.\nMAIL FROM:<x@y>\r\n", None),
            (b"a\r.\r\nMAIL FROM:<x@y>\r\n", None),
            (b"a\r\n .\r\n", None),
            (b"a\r\n..\r\n", None),
            (b"a\r\n.\r\r\n.\r\n", Some(10)),
        ];
        for (input, end) in table {
            for policy in [BareLineEndings::Reject, BareLineEndings::Normalize] {
                let got = receive(input, policy).map(|(used, ..)| used);
                assert_eq!(got, *end, "{:?}", String::from_utf8_lossy(input));
            }
        }
    }

    #[test]
    fn unstuffs_and_normalizes() {
        let table: &[(&[u8], &[u8], bool)] = &[
            (b".\r\n", b"", false),
            (b"..\r\n.\r\n", b".\r\n", false),
            (b"..x\r\n\r\n...\r\n.\r\n", b".x\r\n\r\n..\r\n", false),
            (b"a\n..x\r\n.\r\n", b"a\r\n..x\r\n", true),
            (b"a\r\n.\r\r\nb\r\n.\r\n", b"a\r\n\r\n\r\nb\r\n", true),
            (b"a\rb\r\n.\r\n", b"a\r\nb\r\n", true),
            (b"x\r\r\n.\r\n", b"x\r\n\r\n", true),
        ];
        for (input, content, bare) in table {
            let got = receive(input, BareLineEndings::Normalize).unwrap();
            assert_eq!((got.1.as_slice(), got.2), (*content, *bare), "{input:?}");
            assert_eq!(reference(input), Some(got), "{input:?}");
        }
    }

    #[test]
    fn keeps_nothing_past_the_limit_but_finds_the_end() {
        let mut rx = DataReceiver::new(4, BareLineEndings::Reject);
        let mut out = Vec::new();
        assert_eq!(rx.ingest(b"abcdefgh\r\n", &mut out), (10, false));
        assert!(rx.too_big() && out.is_empty());
        assert_eq!(rx.ingest(b".\r\nRSET\r\n", &mut out), (3, true));
        let mut rx = DataReceiver::new(4, BareLineEndings::Reject);
        assert_eq!(rx.ingest(b"ab\r\n.\r\n", &mut out), (7, true));
        assert!(!rx.too_big());
        assert_eq!(out, b"ab\r\n");
    }

    #[test]
    fn reject_mode_drops_the_content_of_a_refused_message() {
        let mut rx = DataReceiver::new(1000, BareLineEndings::Reject);
        let mut out = Vec::new();
        let (_, done) = rx.ingest(b"a\nb\r\n.\r\n", &mut out);
        assert!(done && rx.refused_for_bare_line_endings() && out.is_empty());
    }

    proptest::proptest! {
        /// Whatever the bytes and however they are cut into reads, the receiver agrees with
        /// the literal reading of RFC 5321.
        #[test]
        fn agrees_with_the_rfc_reading(
            input in proptest::collection::vec(
                proptest::sample::select(vec![b'\r', b'\n', b'.', b'a', b' ']), 0..64),
            cuts in proptest::collection::vec(0usize..64, 0..6),
        ) {
            let mut rx = DataReceiver::new(usize::MAX, BareLineEndings::Normalize);
            let mut out = Vec::new();
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c <= input.len()).collect();
            cuts.sort_unstable();
            cuts.push(input.len());
            let (mut at, mut got) = (0, None);
            for cut in cuts {
                if cut < at {
                    continue;
                }
                let (used, done) = rx.ingest(&input[at..cut], &mut out);
                at += used;
                if done {
                    got = Some((at, out.clone(), rx.has_bare_line_ending()));
                    break;
                }
            }
            proptest::prop_assert_eq!(got, reference(&input));
        }
    }
}
