//! Files of several messages and the batch protocol (HL7 v2 chapter 2, section 2.10.3
//! "HL7 batch file structure" in v2.5 numbering: `[FHS] {[BHS] {MSH …} [BTS]} [FTS]`).
//!
//! [`split_messages`] works on bytes, because each message may declare its own character
//! set in MSH-18; every piece it yields is then given to [`crate::parse_bytes`]. The envelope
//! segments are taken out and kept for the caller. Real files are loose about the envelope,
//! so none of it is required: a CDC file has FHS and BHS but no BTS or FTS, most files are
//! messages back to back with no envelope at all.
//!
//! Segment terminators follow the message rule: CR if the input contains any CR, LF
//! otherwise. Anything between messages that is not an envelope segment or a blank line is
//! yielded as a piece of its own, so that parsing it reports the problem instead of it being
//! silently dropped.

use std::borrow::Cow;

use crate::message::is_envelope_or_header;

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits a file into its messages. See the module documentation.
pub fn split_messages(input: &[u8]) -> SplitMessages<'_> {
    let rest = input.strip_prefix(BOM).unwrap_or(input);
    let terminator = if rest.contains(&b'\r') { b'\r' } else { b'\n' };
    let mut split = SplitMessages {
        rest,
        terminator,
        file_header: None,
        batch_header: None,
        batch_trailer: None,
        file_trailer: None,
    };
    // Read the leading envelope now, so that the headers are known before the first message.
    split.take_envelope();
    split
}

/// Iterator over the messages of a file, each a byte slice from its MSH to the end of its
/// last segment.
#[derive(Clone)]
pub struct SplitMessages<'a> {
    rest: &'a [u8],
    terminator: u8,
    file_header: Option<EnvelopeSegment<'a>>,
    batch_header: Option<EnvelopeSegment<'a>>,
    batch_trailer: Option<EnvelopeSegment<'a>>,
    file_trailer: Option<EnvelopeSegment<'a>>,
}

/// Shows the envelope ids only, not the messages (patient data).
impl std::fmt::Debug for SplitMessages<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SplitMessages")
            .field("remaining_bytes", &self.rest.len())
            .field("file_header", &self.file_header.map(|h| h.id()))
            .field("batch_header", &self.batch_header.map(|h| h.id()))
            .finish()
    }
}

impl<'a> SplitMessages<'a> {
    /// The FHS segment, if the file has one.
    pub fn file_header(&self) -> Option<EnvelopeSegment<'a>> {
        self.file_header
    }

    /// The BHS segment of the batch being read (the latest one seen).
    pub fn batch_header(&self) -> Option<EnvelopeSegment<'a>> {
        self.batch_header
    }

    /// The latest BTS segment seen (BTS-1 is the message count of the batch).
    pub fn batch_trailer(&self) -> Option<EnvelopeSegment<'a>> {
        self.batch_trailer
    }

    /// The FTS segment, once the iteration has reached it.
    pub fn file_trailer(&self) -> Option<EnvelopeSegment<'a>> {
        self.file_trailer
    }

    /// The next segment: (its start in `rest`, its end, where the following one may start).
    fn next_segment(&self, from: usize) -> Option<(usize, usize, usize)> {
        let bytes = self.rest;
        let start = from
            + bytes
                .get(from..)?
                .iter()
                .position(|&b| b != b'\r' && b != b'\n')?;
        let end = bytes[start..]
            .iter()
            .position(|&b| b == self.terminator)
            .map_or(bytes.len(), |i| start + i);
        Some((start, end, (end + 1).min(bytes.len())))
    }

    /// Consumes envelope segments (FHS, BHS, BTS, FTS) at the front of `rest`.
    fn take_envelope(&mut self) {
        while let Some((start, end, next)) = self.next_segment(0) {
            let segment = EnvelopeSegment {
                raw: &self.rest[start..end],
            };
            let slot = match segment_id(segment.raw) {
                Some(b"FHS") => &mut self.file_header,
                Some(b"BHS") => &mut self.batch_header,
                Some(b"BTS") => &mut self.batch_trailer,
                Some(b"FTS") => &mut self.file_trailer,
                _ => return,
            };
            *slot = Some(segment);
            self.rest = &self.rest[next..];
        }
        self.rest = &[];
    }
}

impl<'a> Iterator for SplitMessages<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        self.take_envelope();
        let (start, end, mut next) = self.next_segment(0)?;
        let mut message_end = end;
        // A message runs until the next MSH or envelope segment.
        while let Some((segment_start, segment_end, after)) = self.next_segment(next) {
            if segment_id(&self.rest[segment_start..]).is_some_and(is_envelope_or_header) {
                break;
            }
            message_end = segment_end;
            next = after;
        }
        let message = &self.rest[start..message_end];
        self.rest = &self.rest[next.min(self.rest.len())..];
        // Keep trailing separators' CR out of the next message: `next` already skips it.
        Some(message)
    }
}

/// The three-character id of a segment, when followed by something that is not a letter or
/// digit (a field separator, or the end).
fn segment_id(segment: &[u8]) -> Option<&[u8; 3]> {
    let id: &[u8; 3] = segment.get(..3)?.try_into().ok()?;
    match segment.get(3) {
        Some(b) if b.is_ascii_alphanumeric() => None,
        _ => Some(id),
    }
}

/// An FHS, BHS, BTS or FTS segment. Its fields are numbered like MSH's for FHS and BHS
/// (FHS-1 is the field separator, FHS-2 the encoding characters, FHS-3 the sending
/// application, FHS-7 the creation time, FHS-9 the file name, FHS-11 the control id) and
/// normally for the trailers (BTS-1 the message count, FTS-1 the batch count).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeSegment<'a> {
    raw: &'a [u8],
}

impl<'a> EnvelopeSegment<'a> {
    /// The segment id.
    pub fn id(&self) -> &'a str {
        std::str::from_utf8(self.raw.get(..3).unwrap_or_default()).unwrap_or("")
    }

    /// The segment's bytes, without terminator.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Field `n`, raw (not unescaped; non-UTF-8 bytes replaced), empty past the end.
    pub fn field(&self, n: usize) -> Cow<'a, str> {
        let Some(&separator) = self.raw.get(3) else {
            return Cow::Borrowed("");
        };
        let header = matches!(self.raw.get(..3), Some(b"FHS" | b"BHS"));
        let piece = match (header, n) {
            (_, 0) => None,
            (true, 1) => Some(&self.raw[3..4]),
            (true, n) => self.raw.split(|&b| b == separator).nth(n - 1),
            (false, n) => self.raw.split(|&b| b == separator).nth(n),
        };
        piece.map_or(Cow::Borrowed(""), String::from_utf8_lossy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_back_to_back_are_split_at_each_msh() {
        let input = b"MSH|^~\\&|A\rPID|1\r\rMSH|^~\\&|B\rPID|2\r";
        let messages: Vec<&[u8]> = split_messages(input).collect();
        assert_eq!(
            messages,
            [&b"MSH|^~\\&|A\rPID|1"[..], &b"MSH|^~\\&|B\rPID|2"[..]]
        );
    }

    #[test]
    fn a_full_envelope_is_taken_out_and_kept() {
        let input =
            b"FHS|^~\\&|APP||||20240101||F1\nBHS|^~\\&|APP\nMSH|^~\\&|A\nPID|1\nBTS|1\nFTS|1\n";
        let mut split = split_messages(input);
        assert_eq!(split.file_header().unwrap().field(9), "F1");
        assert_eq!(split.file_header().unwrap().field(2), "^~\\&");
        assert_eq!(split.batch_header().unwrap().id(), "BHS");
        assert_eq!(split.next(), Some(&b"MSH|^~\\&|A\nPID|1"[..]));
        assert_eq!(split.next(), None);
        assert_eq!(split.batch_trailer().unwrap().field(1), "1");
        assert_eq!(split.file_trailer().unwrap().field(1), "1");
    }

    #[test]
    fn an_empty_file_has_no_messages() {
        assert_eq!(split_messages(b"").count(), 0);
        assert_eq!(split_messages(b"\r\n\r\n").count(), 0);
    }
}
