//! Errors and warnings of parsing.
//!
//! Errors name where the problem is (segment number and id, HL7 field number) and why, never
//! the value found there: messages carry patient data, and errors end up in logs.

use std::fmt;

/// Why an input could not be read as an HL7 v2 message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParseError {
    /// Nothing but (possibly) a byte order mark and blank lines.
    #[error("empty input")]
    Empty,
    /// A message starts with its MSH segment (chapter 2, MSH definition).
    #[error("input does not start with MSH{}", if *.batch { " (it starts with an FHS or BHS batch header: send its messages one by one, or import the file)" } else { "" })]
    DoesNotStartWithMsh {
        /// The input starts with FHS or BHS instead.
        batch: bool,
    },
    /// `MSH` is not followed by a field separator.
    #[error("MSH-1 field separator missing or invalid: it must be the ASCII punctuation character right after MSH")]
    InvalidFieldSeparator,
    /// MSH-2 is empty.
    #[error("MSH-2 encoding characters missing")]
    EncodingCharactersMissing,
    /// MSH-2 holds something that cannot be a set of delimiters.
    #[error("MSH-2 encoding characters invalid: {reason}")]
    InvalidEncodingCharacters {
        /// What is wrong with them.
        reason: &'static str,
    },
    /// MSH-9 (or its first component, the message code) is empty.
    #[error("MSH-9 message type is missing")]
    MessageTypeMissing,
    /// A segment does not start with a three-character segment id.
    #[error("segment {segment}: the segment id must be three ASCII letters or digits followed by the field separator")]
    InvalidSegmentId {
        /// 1-based position of the segment in the message.
        segment: usize,
    },
    /// A second MSH, or a batch envelope segment, in what should be one message.
    #[error("segment {segment} ({id}): a message or batch header inside a message: send the messages one by one, or import the file")]
    UnexpectedHeader {
        /// 1-based position of the segment in the message.
        segment: usize,
        /// MSH, FHS, BHS, BTS or FTS.
        id: String,
    },
    /// A problem in one field.
    #[error("segment {segment} ({id}), field {field}: {problem}")]
    InField {
        /// 1-based position of the segment in the message.
        segment: usize,
        /// The segment id.
        id: String,
        /// HL7 field number (for MSH, MSH-1 is the field separator).
        field: usize,
        /// What is wrong.
        problem: FieldProblem,
    },
    /// A segment the operation needs is not in the message.
    #[error("no {id} segment in the message")]
    MissingSegment {
        /// The segment id looked for.
        id: &'static str,
    },
}

/// What is wrong in a field, for [`ParseError::InField`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FieldProblem {
    /// The bytes are not valid in the character set that MSH-18 declares.
    InvalidBytes {
        /// The HL7 name of the declared character set.
        charset: &'static str,
    },
    /// MSA-1 is not an acknowledgment code of HL7 table 0008.
    UnknownAcknowledgmentCode,
}

impl fmt::Display for FieldProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldProblem::InvalidBytes { charset } => {
                write!(
                    f,
                    "bytes that are not valid {charset}, the character set MSH-18 declares"
                )
            }
            FieldProblem::UnknownAcknowledgmentCode => {
                f.write_str("acknowledgment code is not one of AA, AE, AR, CA, CE, CR")
            }
        }
    }
}

/// Something the parser tolerated but a careful importer wants to record.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseWarning {
    /// The input has no CR at all, so line feeds were taken as segment terminators
    /// (files copied through editors and mail; the standard terminator is CR, hard case B04).
    LfSegmentTerminators,
    /// The bytes are not valid UTF-8 and MSH-18 declares no character set (or ASCII), so they
    /// were decoded as Windows-1252, a superset of ISO 8859-1 that such feeds almost always use.
    DecodedAsWindows1252,
    /// MSH-18 names a character set this crate does not decode; the text was read as UTF-8,
    /// or as Windows-1252 where it is not valid UTF-8.
    UnsupportedCharset {
        /// MSH-18 as written.
        declared: String,
    },
}

impl fmt::Display for ParseWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseWarning::LfSegmentTerminators => {
                f.write_str("no CR in the input: line feeds were read as segment terminators")
            }
            ParseWarning::DecodedAsWindows1252 => f.write_str(
                "not valid UTF-8 and MSH-18 declares no character set: decoded as Windows-1252",
            ),
            ParseWarning::UnsupportedCharset { declared } => write!(
                f,
                "MSH-18 character set {declared:?} is not supported: read as UTF-8 (Windows-1252 where not valid UTF-8)"
            ),
        }
    }
}
