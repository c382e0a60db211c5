//! HL7 v2 messages (versions 2.3 to 2.8) as the "Control" chapter (chapter 2) of the standard
//! defines them: delimiters, segments, fields, escape sequences, character sets, batches and
//! acknowledgments. Pure functions over bytes and text: no I/O, no network, no clock.
//!
//! ```
//! let input = "MSH|^~\\&|LAB|L1|PRM|F1|20230101120000||ORU^R01|CTRL0008|P|2.5\r\
//!              PID|1||000123^^^L1^MR||TEST^PATIENT\r";
//! let parsed = rapport_hl7::parse(input)?;
//! let message = &parsed.message;
//! assert_eq!(message.message_type(), "ORU");
//! assert_eq!(message.get("PID-3.4").as_deref(), Some("L1"));
//! assert_eq!(message.segment("PID").unwrap().field(5).component(2).value(), "PATIENT");
//! # Ok::<(), rapport_hl7::ParseError>(())
//! ```
//!
//! The modules, each with the rules it follows and why:
//! - [`Delimiters`]: MSH-1 and MSH-2, never assumed.
//! - [`Message`] and its parts ([`Segment`], [`Field`], [`Repetition`], [`Component`],
//!   [`SubComponent`]): zero-copy views, 1-based HL7 positions, raw and decoded access.
//! - [`escape`] and decoding: chapter 2.7 escape sequences.
//! - [`Charset`]: MSH-18 and how bytes become text.
//! - [`split_messages`]: files of several messages and FHS/BHS batch envelopes.
//! - [`ack`] and [`Message::acknowledgment`]: building and reading acknowledgments.
//!
//! Parsing normalises a few things real files do (hard cases B04, B05 and the fixtures'
//! quirks): a UTF-8 byte order mark before MSH is skipped; LF-only files are split on LF with
//! [`ParseWarning::LfSegmentTerminators`]; CRLF, blank lines and trailing terminators are
//! ignored; spaces and tabs at the end of a segment are dropped.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod ack;
mod batch;
mod charset;
mod delimiters;
mod error;
mod escape;
pub mod map;
mod message;

use std::borrow::Cow;

pub use ack::{ack, AckCode, AckError, Acknowledgment, ErrorCode};
pub use batch::{split_messages, EnvelopeSegment, SplitMessages};
pub use charset::Charset;
pub use delimiters::Delimiters;
pub use error::{FieldProblem, ParseError, ParseWarning};
pub use escape::escape;
pub use map::{to_fhir, MapError, MapOptions, Mapped, PatientIdentity};
pub use message::{Component, Field, Fields, Message, Repetition, Segment, Segments, SubComponent};

/// A crate-wide result.
pub type Result<T, E = ParseError> = std::result::Result<T, E>;

/// A parsed message and what the parser tolerated on the way.
#[derive(Debug, Clone)]
pub struct Parsed<'a> {
    /// The message.
    pub message: Message<'a>,
    /// Things a careful importer records (LF terminators, a guessed character set).
    pub warnings: Vec<ParseWarning>,
}

const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Parses one message from text that is already decoded.
///
/// MSH-18 still matters: it says how the bytes of `\Xhh\` escapes are to be read.
pub fn parse(input: &str) -> Result<Parsed<'_>> {
    let text = input.strip_prefix('\u{feff}').unwrap_or(input);
    let mut warnings = Vec::new();
    let mut message = Message::build(Cow::Borrowed(text), Charset::Utf8, &mut warnings)?;
    match read_charset(&message.character_set()) {
        None => {}
        Some(Ok(charset)) => message.set_charset(charset),
        Some(Err(declared)) => warnings.push(ParseWarning::UnsupportedCharset { declared }),
    }
    Ok(Parsed { message, warnings })
}

/// Parses one message from bytes, decoding them as MSH-18 says (see [`Charset`] for the
/// rules). The message borrows `input` whenever the bytes are valid UTF-8 and MSH-18 is
/// empty, ASCII or UTF-8, or when they are plain ASCII whatever MSH-18 says.
pub fn parse_bytes(input: &[u8]) -> Result<Parsed<'_>> {
    let bytes = input.strip_prefix(BOM).unwrap_or(input);
    let mut warnings = Vec::new();
    // The common case: UTF-8 (or ASCII) bytes. Parse them as they are, then read MSH-18 from
    // the parsed header; only a single-byte or other declared set with non-ASCII bytes needs
    // a second, decoded parse.
    if let Ok(text) = std::str::from_utf8(bytes) {
        let mut message = Message::build(Cow::Borrowed(text), Charset::Utf8, &mut warnings)?;
        match read_charset(&message.character_set()) {
            None => {}
            Some(Ok(charset)) if charset.is_utf8() || text.is_ascii() => {
                message.set_charset(charset)
            }
            Some(Ok(charset)) => {
                warnings.clear();
                let decoded = Cow::Owned(charset.decode_to_string(bytes));
                message = Message::build(decoded, charset, &mut warnings)?;
            }
            Some(Err(declared)) => warnings.push(ParseWarning::UnsupportedCharset { declared }),
        }
        return Ok(Parsed { message, warnings });
    }
    // Not UTF-8: MSH-18 has to be read from the bytes before they can become text.
    let (text, charset) = match declared_charset(bytes) {
        None => decode_undeclared(bytes, &mut warnings),
        Some(Ok(Charset::Ascii)) => decode_undeclared(bytes, &mut warnings),
        Some(Ok(charset)) if charset.is_utf8() => {
            let offset = std::str::from_utf8(bytes)
                .err()
                .map_or(0, |e| e.valid_up_to());
            return Err(invalid_bytes_error(bytes, offset, charset));
        }
        Some(Ok(charset)) => (Cow::Owned(charset.decode_to_string(bytes)), charset),
        Some(Err(declared)) => {
            warnings.push(ParseWarning::UnsupportedCharset { declared });
            decode_undeclared(bytes, &mut warnings)
        }
    };
    let message = Message::build(text, charset, &mut warnings)?;
    Ok(Parsed { message, warnings })
}

/// An MSH-18 value: `None` when empty, `Some(Err(name))` when not supported.
fn read_charset(name: &str) -> Option<Result<Charset, String>> {
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    Some(Charset::from_msh18(name).ok_or_else(|| name.to_owned()))
}

/// No usable MSH-18: UTF-8 if the bytes are UTF-8, else Windows-1252 with a warning.
fn decode_undeclared<'a>(
    bytes: &'a [u8],
    warnings: &mut Vec<ParseWarning>,
) -> (Cow<'a, str>, Charset) {
    match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), Charset::Utf8),
        Err(_) => {
            warnings.push(ParseWarning::DecodedAsWindows1252);
            let charset = Charset::Windows1252;
            (Cow::Owned(charset.decode_to_string(bytes)), charset)
        }
    }
}

/// MSH-18 (first repetition) read straight from the bytes of the MSH segment, for bytes
/// that are not UTF-8 and so cannot be parsed before they are decoded. `None` when empty or when the header is unreadable
/// (parsing then reports why); `Some(Err(name))` for a name not supported.
fn declared_charset(bytes: &[u8]) -> Option<Result<Charset, String>> {
    let start = bytes.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let segment = &bytes[start..];
    let delimiters = message::read_delimiters(segment).ok()?;
    let end = segment
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(segment.len());
    // Piece 0 is "MSH", piece 1 is MSH-2, so MSH-18 is piece 17.
    let msh18 = segment[..end].split(|&b| b == delimiters.field).nth(17)?;
    let cut = msh18
        .iter()
        .position(|&b| Some(b) == delimiters.repetition || b == delimiters.component)
        .unwrap_or(msh18.len());
    read_charset(&String::from_utf8_lossy(&msh18[..cut]))
}

/// Names the segment and field of the first byte that is not valid in `charset`.
fn invalid_bytes_error(bytes: &[u8], offset: usize, charset: Charset) -> ParseError {
    let terminator = if bytes.contains(&b'\r') { b'\r' } else { b'\n' };
    let before = &bytes[..offset];
    let line_start = before
        .iter()
        .rposition(|&b| b == terminator)
        .map_or(0, |i| i + 1);
    let segment = 1 + before[..line_start]
        .split(|&b| b == terminator)
        .filter(|line| line.iter().any(|&b| b != b'\r' && b != b'\n'))
        .count();
    let line = &bytes[line_start..];
    let line = &line[line.iter().position(|&b| b != b'\n').unwrap_or(0)..];
    let id = String::from_utf8_lossy(&line[..line.len().min(3)]).into_owned();
    let msh = bytes
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(0);
    let field_separator = bytes.get(msh + 3).copied().unwrap_or(b'|');
    let separators = before[line_start..]
        .iter()
        .filter(|&&b| b == field_separator)
        .count();
    let field = if id == "MSH" {
        separators + 1
    } else {
        separators
    };
    ParseError::InField {
        segment,
        id,
        field,
        problem: FieldProblem::InvalidBytes {
            charset: charset.name(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn invalid_utf8_under_a_utf8_declaration_names_segment_and_field() {
        let input = b"MSH|^~\\&|A|B|C|D|20230101||ORU^R01|1|P|2.5.1||||||UNICODE UTF-8\rPID|1\rOBX|1|ST|X||caf\xe9\r";
        let error = parse_bytes(input).unwrap_err();
        assert_eq!(
            error.to_string(),
            "segment 3 (OBX), field 5: bytes that are not valid UNICODE UTF-8, the character set MSH-18 declares"
        );
    }
}
