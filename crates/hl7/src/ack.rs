//! Acknowledgments (HL7 v2 chapter 2, section 2.9 "Message processing rules", and the MSA
//! and ERR segment definitions; v2.5 numbering).
//!
//! [`ack`] answers a message in the sender's own terms: the same MSH-1 and MSH-2 (copied as
//! written, so `^~&` stays `^~&`, hard case B03), sender and receiver swapped, the same
//! processing id and version, MSA-2 echoing MSH-10. Errors are reported the way the version
//! expects:
//!
//! - v2.5 and later: ERR-2 error location (`PID^1^3`, ERL), ERR-3 the HL7 error code from
//!   table 0357 (`207^Application internal error^HL70357`), ERR-4 severity `E`, ERR-8 the
//!   text for a person.
//! - before v2.5: ERR-1 error code and location (`PID^1^3^207&Application internal
//!   error&HL70357`) and the text in MSA-3.
//!
//! [`Message::acknowledgment`] reads MSA from a received ACK, including the enhanced-mode
//! commit codes `CA`, `CE`, `CR` (B08: a `CA` is a valid acceptance, not a malformed ACK).

use std::borrow::Cow;

use crate::error::{FieldProblem, ParseError};
use crate::escape::escape;
use crate::message::Message;

/// Acknowledgment codes (HL7 table 0008): original mode `AA`/`AE`/`AR`, enhanced mode commit
/// `CA`/`CE`/`CR`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AckCode {
    /// Application accept.
    AA,
    /// Application error.
    AE,
    /// Application reject.
    AR,
    /// Commit accept.
    CA,
    /// Commit error.
    CE,
    /// Commit reject.
    CR,
}

impl AckCode {
    /// The code as written in MSA-1.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::AA => "AA",
            AckCode::AE => "AE",
            AckCode::AR => "AR",
            AckCode::CA => "CA",
            AckCode::CE => "CE",
            AckCode::CR => "CR",
        }
    }

    /// Reads an MSA-1 value.
    pub fn parse(code: &str) -> Option<Self> {
        Some(match code.trim() {
            "AA" => AckCode::AA,
            "AE" => AckCode::AE,
            "AR" => AckCode::AR,
            "CA" => AckCode::CA,
            "CE" => AckCode::CE,
            "CR" => AckCode::CR,
            _ => return None,
        })
    }

    /// True for `AA` and `CA`: the receiver took the message.
    pub fn is_accept(self) -> bool {
        matches!(self, AckCode::AA | AckCode::CA)
    }

    /// True for the enhanced-mode commit codes `CA`, `CE` and `CR`.
    pub fn is_commit(self) -> bool {
        matches!(self, AckCode::CA | AckCode::CE | AckCode::CR)
    }
}

/// HL7 error codes (table 0357, "Message error condition codes").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorCode {
    /// 100: segment sequence error.
    SegmentSequenceError,
    /// 101: required field missing.
    RequiredFieldMissing,
    /// 102: data type error.
    DataTypeError,
    /// 103: table value not found.
    TableValueNotFound,
    /// 200: unsupported message type.
    UnsupportedMessageType,
    /// 201: unsupported event code.
    UnsupportedEventCode,
    /// 202: unsupported processing id.
    UnsupportedProcessingId,
    /// 203: unsupported version id.
    UnsupportedVersionId,
    /// 204: unknown key identifier.
    UnknownKeyIdentifier,
    /// 205: duplicate key identifier.
    DuplicateKeyIdentifier,
    /// 206: application record locked.
    ApplicationRecordLocked,
    /// 207: application internal error.
    ApplicationInternalError,
}

impl ErrorCode {
    /// The numeric code.
    pub fn code(self) -> u16 {
        match self {
            ErrorCode::SegmentSequenceError => 100,
            ErrorCode::RequiredFieldMissing => 101,
            ErrorCode::DataTypeError => 102,
            ErrorCode::TableValueNotFound => 103,
            ErrorCode::UnsupportedMessageType => 200,
            ErrorCode::UnsupportedEventCode => 201,
            ErrorCode::UnsupportedProcessingId => 202,
            ErrorCode::UnsupportedVersionId => 203,
            ErrorCode::UnknownKeyIdentifier => 204,
            ErrorCode::DuplicateKeyIdentifier => 205,
            ErrorCode::ApplicationRecordLocked => 206,
            ErrorCode::ApplicationInternalError => 207,
        }
    }

    /// The table's text for the code.
    pub fn text(self) -> &'static str {
        match self {
            ErrorCode::SegmentSequenceError => "Segment sequence error",
            ErrorCode::RequiredFieldMissing => "Required field missing",
            ErrorCode::DataTypeError => "Data type error",
            ErrorCode::TableValueNotFound => "Table value not found",
            ErrorCode::UnsupportedMessageType => "Unsupported message type",
            ErrorCode::UnsupportedEventCode => "Unsupported event code",
            ErrorCode::UnsupportedProcessingId => "Unsupported processing id",
            ErrorCode::UnsupportedVersionId => "Unsupported version id",
            ErrorCode::UnknownKeyIdentifier => "Unknown key identifier",
            ErrorCode::DuplicateKeyIdentifier => "Duplicate key identifier",
            ErrorCode::ApplicationRecordLocked => "Application record locked",
            ErrorCode::ApplicationInternalError => "Application internal error",
        }
    }
}

/// What went wrong, for the ERR segment of an acknowledgment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckError {
    /// Segment id of the error location (`PID`); no location when `None`.
    pub segment: Option<String>,
    /// Which occurrence of that segment (1-based).
    pub sequence: Option<usize>,
    /// Field number.
    pub field: Option<usize>,
    /// Component number (v2.5+ only: ERR-1 of earlier versions has no place for it).
    pub component: Option<usize>,
    /// HL7 table 0357 code.
    pub hl7_code: ErrorCode,
    /// Text for a person (ERR-8, or MSA-3 before v2.5). It must not carry patient data:
    /// acknowledgments are logged by both sides.
    pub text: Option<String>,
}

impl AckError {
    /// An error with a code and no location or text.
    pub fn new(hl7_code: ErrorCode) -> Self {
        AckError {
            segment: None,
            sequence: None,
            field: None,
            component: None,
            hl7_code,
            text: None,
        }
    }

    /// Sets the location: segment id, its occurrence, field number.
    pub fn at(mut self, segment: &str, sequence: usize, field: usize) -> Self {
        self.segment = Some(segment.to_owned());
        self.sequence = Some(sequence);
        self.field = Some(field);
        self
    }

    /// Sets the text.
    pub fn with_text(mut self, text: &str) -> Self {
        self.text = Some(text.to_owned());
        self
    }
}

/// Builds the acknowledgment of `message`: MSH, MSA and, with an error, ERR, each segment
/// ended by CR (MLLP framing is the transport's business).
///
/// `now` goes into MSH-7 as given (an HL7 DTM such as `20240101120000+0100`; the caller owns
/// the clock) and `own_control_id` into MSH-10. The string is Unicode text: when the message
/// declared another character set, encode it with [`crate::Charset::encode`] before sending.
pub fn ack(
    message: &Message<'_>,
    code: AckCode,
    error: Option<&AckError>,
    now: &str,
    own_control_id: &str,
) -> String {
    let d = message.delimiters();
    let fs = d.field();
    let cs = d.component();
    let msh = message.msh();
    let raw = |n: usize| msh.field(n).raw();
    let mut out = String::with_capacity(256);

    // MSH: receiver and sender swapped (MSH-5/6 of the message become MSH-3/4), copied raw
    // because the delimiters are the same.
    out.push_str("MSH");
    out.push(fs);
    out.push_str(d.encoding_characters());
    for value in [raw(5), raw(6), raw(3), raw(4)] {
        out.push(fs);
        out.push_str(value);
    }
    out.push(fs);
    out.push_str(&escape(now, d));
    out.push(fs); // MSH-8 security
    out.push(fs);
    out.push_str("ACK");
    let trigger = msh.field(9).component(2).raw();
    if !trigger.is_empty() {
        out.push(cs);
        out.push_str(trigger);
        out.push(cs);
        out.push_str("ACK");
    }
    out.push(fs);
    out.push_str(&escape(own_control_id, d));
    out.push(fs);
    out.push_str(raw(11));
    out.push(fs);
    out.push_str(raw(12));
    let charset = msh.field(18).raw();
    if !charset.is_empty() {
        // MSH-13 to MSH-17 empty, then MSH-18: the ACK is in the sender's character set.
        for _ in 13..=18 {
            out.push(fs);
        }
        out.push_str(charset);
    }
    out.push('\r');

    let modern = version_at_least(&message.version(), 2, 5);
    out.push_str("MSA");
    out.push(fs);
    out.push_str(code.as_str());
    out.push(fs);
    out.push_str(raw(10));
    if let (false, Some(text)) = (modern, error.and_then(|e| e.text.as_deref())) {
        out.push(fs);
        out.push_str(&escape(text, d));
    }
    out.push('\r');

    if let Some(error) = error {
        out.push_str("ERR");
        out.push(fs);
        let number = |n: Option<usize>| n.map(|n| n.to_string()).unwrap_or_default();
        let mut location = vec![
            escape(error.segment.as_deref().unwrap_or(""), d),
            number(error.sequence),
            number(error.field),
        ];
        let hl7_code = error.hl7_code;
        if modern {
            // ERL: segment ^ sequence ^ field ^ field repetition ^ component.
            if error.component.is_some() {
                location.push(String::new());
                location.push(number(error.component));
            }
            out.push(fs);
            out.push_str(trim_trailing(&location.join(&cs.to_string()), cs));
            out.push(fs);
            out.push_str(&hl7_code.code().to_string());
            out.push(cs);
            out.push_str(&escape(hl7_code.text(), d));
            out.push(cs);
            out.push_str("HL70357");
            out.push(fs);
            out.push('E');
            if let Some(text) = &error.text {
                // ERR-5 to ERR-7 empty, ERR-8 user message.
                for _ in 5..=8 {
                    out.push(fs);
                }
                out.push_str(&escape(text, d));
            }
        } else {
            // ERR-1 (ELD): segment ^ sequence ^ field ^ code as a CE in subcomponents.
            let code = match d.subcomponent() {
                Some(sub) => format!(
                    "{}{sub}{}{sub}HL70357",
                    hl7_code.code(),
                    escape(hl7_code.text(), d)
                ),
                None => hl7_code.code().to_string(),
            };
            location.push(code);
            out.push_str(&location.join(&cs.to_string()));
        }
        out.push('\r');
    }
    out
}

fn trim_trailing(value: &str, separator: char) -> &str {
    value.trim_end_matches(separator)
}

/// `2.5.1` ≥ 2.5? An unreadable or empty version counts as current.
fn version_at_least(version: &str, major: u32, minor: u32) -> bool {
    let mut parts = version.trim().split('.').map(|p| p.parse::<u32>());
    match (parts.next(), parts.next()) {
        (Some(Ok(a)), Some(Ok(b))) => (a, b) >= (major, minor),
        (Some(Ok(a)), None) => a >= major,
        _ => true,
    }
}

/// What a received acknowledgment says (its MSA segment).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acknowledgment<'m> {
    /// MSA-1.
    pub code: AckCode,
    /// MSA-2, the control id of the message acknowledged.
    pub control_id: Cow<'m, str>,
    /// MSA-3, the text message (before v2.7), often empty.
    pub text: Cow<'m, str>,
}

impl Message<'_> {
    /// Reads the MSA segment of an acknowledgment (an `ACK`, or any response that carries
    /// MSA such as `RSP^K11`).
    pub fn acknowledgment(&self) -> Result<Acknowledgment<'_>, ParseError> {
        let msa = self
            .segment("MSA")
            .ok_or(ParseError::MissingSegment { id: "MSA" })?;
        let code = AckCode::parse(msa.field(1).raw()).ok_or_else(|| ParseError::InField {
            segment: msa.position(),
            id: "MSA".to_owned(),
            field: 1,
            problem: FieldProblem::UnknownAcknowledgmentCode,
        })?;
        Ok(Acknowledgment {
            code,
            control_id: msa.field(2).value(),
            text: msa.field(3).text(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("2.5.1", 2, 5));
        assert!(version_at_least("2.10", 2, 5));
        assert!(!version_at_least("2.3.1", 2, 5));
        assert!(!version_at_least("2.4", 2, 5));
        assert!(version_at_least("", 2, 5));
    }
}
