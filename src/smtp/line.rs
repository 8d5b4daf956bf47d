//! A bounded line framer: collects bytes up to LF without ever holding more than the limit.
//! An over-long line is swallowed up to its LF and reported once, so its tail can never be read
//! as a new command.

use memchr::memchr;

/// What one call to [`LineBuffer::push`] found.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Framed {
    /// A whole line (LF included) is available from [`LineBuffer::line`].
    Line,
    /// A line longer than the limit ended; its bytes were dropped.
    TooLong,
    /// All input was consumed without reaching the end of a line.
    Partial,
}

#[derive(Debug, Default)]
pub(crate) struct LineBuffer {
    buf: Vec<u8>,
    /// The current line already exceeded the limit; drop bytes until LF.
    discarding: bool,
    /// `buf` holds a line handed out by the previous call.
    taken: bool,
}

impl LineBuffer {
    /// Consumes bytes from `input` up to the end of one line. `max` counts the LF (and CR).
    pub(crate) fn push(&mut self, input: &mut &[u8], max: usize) -> Framed {
        if self.taken {
            self.buf.clear();
            self.taken = false;
        }
        let Some(pos) = memchr(b'\n', input) else {
            self.absorb(input, max);
            *input = &[];
            return Framed::Partial;
        };
        let (head, tail) = input.split_at(pos + 1);
        *input = tail;
        self.absorb(head, max);
        if std::mem::take(&mut self.discarding) {
            self.buf.clear();
            return Framed::TooLong;
        }
        self.taken = true;
        Framed::Line
    }

    /// The line found by the last `push` that returned [`Framed::Line`].
    pub(crate) fn line(&self) -> &[u8] {
        &self.buf
    }

    /// The line without its CRLF (or bare LF).
    pub(crate) fn line_trimmed(&self) -> &[u8] {
        let line = self.buf.strip_suffix(b"\n").unwrap_or(&self.buf);
        line.strip_suffix(b"\r").unwrap_or(line)
    }

    /// True when part of a line is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.taken || (self.buf.is_empty() && !self.discarding)
    }

    fn absorb(&mut self, chunk: &[u8], max: usize) {
        if self.discarding {
            return;
        }
        if self.buf.len() + chunk.len() > max {
            self.discarding = true;
            self.buf = Vec::new();
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(chunks: &[&[u8]], max: usize) -> Vec<Result<Vec<u8>, ()>> {
        let mut lb = LineBuffer::default();
        let mut out = Vec::new();
        for chunk in chunks {
            let mut input: &[u8] = chunk;
            while !input.is_empty() {
                match lb.push(&mut input, max) {
                    Framed::Line => out.push(Ok(lb.line().to_vec())),
                    Framed::TooLong => out.push(Err(())),
                    Framed::Partial => {}
                }
            }
        }
        out
    }

    #[test]
    fn frames_lines_across_chunks() {
        let got = run(&[b"EHLO a\r\nMA", b"IL FROM:<x>\r", b"\nNOOP\n"], 64);
        let want: Vec<Result<Vec<u8>, ()>> = vec![
            Ok(b"EHLO a\r\n".to_vec()),
            Ok(b"MAIL FROM:<x>\r\n".to_vec()),
            Ok(b"NOOP\n".to_vec()),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn overlong_line_is_dropped_whole_and_reported_once() {
        let long = [b'A'; 100];
        let got = run(&[&long, &long, b"\r\nNOOP\r\n"], 16);
        assert_eq!(got, vec![Err(()), Ok(b"NOOP\r\n".to_vec())]);
        let got = run(&[b"0123456789abcdef\r\n"], 17);
        assert_eq!(got, vec![Err(())]);
        let got = run(&[b"0123456789abcde\r\n"], 17);
        assert_eq!(got.len(), 1);
        assert!(got[0].is_ok());
    }

    #[test]
    fn trimmed_line() {
        let mut lb = LineBuffer::default();
        let mut input: &[u8] = b"abc\r\n";
        assert_eq!(lb.push(&mut input, 10), Framed::Line);
        assert_eq!(lb.line_trimmed(), b"abc");
        assert!(lb.is_empty());
    }
}
