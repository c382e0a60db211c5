//! The delimiters a message declares for itself in MSH-1 and MSH-2 (HL7 v2 chapter 2,
//! section 2.5.4 "Message delimiters" in v2.5 numbering; MSH-1 and MSH-2 in the MSH
//! segment definition).
//!
//! Nothing is assumed: a parser that fills in the standard `^~\&` where the sender declared
//! fewer characters splits data on characters that were never meant as separators
//! (hard case B03). The rules read here:
//!
//! - MSH-1 is the byte right after `MSH` (or `FHS`/`BHS`).
//! - MSH-2 runs up to the next field separator and holds, in this order, the component,
//!   repetition, escape and subcomponent characters, and from v2.7 on the truncation
//!   character (`^~\&#`). A shorter MSH-2 declares fewer delimiters: `^~\` has no
//!   subcomponent separator, so `&` is data.
//! - One deviation from the positional reading: a three-character MSH-2 whose third
//!   character is `&` (`^~&`) is read as "no escape character, `&` separates subcomponents".
//!   Read positionally, `&` would be the escape character; senders who write `^~&` mean
//!   the opposite (they dropped the backslash), and their data has literal backslashes.
//!
//! Every delimiter must be printable ASCII punctuation and all must differ. Because they are
//! ASCII, the parser can split UTF-8 text at them without ever cutting a character.

use crate::error::ParseError;

/// The field, component, repetition, escape, subcomponent and truncation characters of one
/// message, as declared in its MSH-1 and MSH-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delimiters {
    pub(crate) field: u8,
    pub(crate) component: u8,
    pub(crate) repetition: Option<u8>,
    pub(crate) escape: Option<u8>,
    pub(crate) subcomponent: Option<u8>,
    pub(crate) truncation: Option<u8>,
    /// MSH-2 exactly as declared, so that an ACK can copy it (B03: `^~&` stays `^~&`).
    encoding_characters: [u8; 5],
    encoding_characters_len: u8,
}

impl Default for Delimiters {
    fn default() -> Self {
        Self::STANDARD
    }
}

impl Delimiters {
    /// The recommended delimiters `|^~\&` (v2.3 to v2.6; v2.7 adds `#`, which is optional).
    pub const STANDARD: Delimiters = Delimiters {
        field: b'|',
        component: b'^',
        repetition: Some(b'~'),
        escape: Some(b'\\'),
        subcomponent: Some(b'&'),
        truncation: None,
        encoding_characters: *b"^~\\&\0",
        encoding_characters_len: 4,
    };

    /// Reads the delimiters from a field separator (MSH-1) and the encoding characters
    /// (MSH-2) as written in the message.
    pub fn new(field: char, encoding_characters: &str) -> Result<Self, ParseError> {
        if !is_delimiter_char(field) {
            return Err(ParseError::InvalidFieldSeparator);
        }
        let field = field as u8;
        let chars = encoding_characters.as_bytes();
        if chars.is_empty() {
            return Err(ParseError::EncodingCharactersMissing);
        }
        if chars.len() > 5 {
            return Err(ParseError::InvalidEncodingCharacters {
                reason: "more than five characters",
            });
        }
        for (i, &c) in chars.iter().enumerate() {
            if !is_delimiter_char(c as char) {
                return Err(ParseError::InvalidEncodingCharacters {
                    reason: "each must be printable ASCII punctuation",
                });
            }
            if c == field || chars[..i].contains(&c) {
                return Err(ParseError::InvalidEncodingCharacters {
                    reason: "the delimiters must all differ",
                });
            }
        }
        let (escape, subcomponent) = match chars.len() {
            1 | 2 => (None, None),
            // `^~&`: see the module documentation.
            3 if chars[2] == b'&' => (None, Some(b'&')),
            3 => (Some(chars[2]), None),
            _ => (Some(chars[2]), Some(chars[3])),
        };
        let mut stored = [0u8; 5];
        stored[..chars.len()].copy_from_slice(chars);
        Ok(Delimiters {
            field,
            component: chars[0],
            repetition: chars.get(1).copied(),
            escape,
            subcomponent,
            truncation: chars.get(4).copied(),
            encoding_characters: stored,
            encoding_characters_len: chars.len() as u8,
        })
    }

    /// The field separator (MSH-1).
    pub fn field(&self) -> char {
        self.field as char
    }

    /// The component separator (first character of MSH-2).
    pub fn component(&self) -> char {
        self.component as char
    }

    /// The repetition separator, if declared.
    pub fn repetition(&self) -> Option<char> {
        self.repetition.map(char::from)
    }

    /// The escape character, if declared. Without one a backslash is ordinary data.
    pub fn escape(&self) -> Option<char> {
        self.escape.map(char::from)
    }

    /// The subcomponent separator, if declared. Without one `&` is ordinary data.
    pub fn subcomponent(&self) -> Option<char> {
        self.subcomponent.map(char::from)
    }

    /// The v2.7 truncation character (fifth character of MSH-2), if declared. It is not a
    /// separator: it marks a value the sender truncated, so the parser leaves it in the data.
    pub fn truncation(&self) -> Option<char> {
        self.truncation.map(char::from)
    }

    /// MSH-2 exactly as the message declared it.
    pub fn encoding_characters(&self) -> &str {
        // Checked to be ASCII in `new`, so this never falls back.
        std::str::from_utf8(&self.encoding_characters[..self.encoding_characters_len as usize])
            .unwrap_or("")
    }
}

/// Printable ASCII that is neither a letter, a digit nor a space: anything else would be
/// confused with segment ids, data or padding.
fn is_delimiter_char(c: char) -> bool {
    c.is_ascii_punctuation()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_encoding_characters_declare_all_four_delimiters() {
        let d = Delimiters::new('|', "^~\\&").unwrap();
        assert_eq!(d, Delimiters::STANDARD);
        assert_eq!(d.encoding_characters(), "^~\\&");
    }

    #[test]
    fn three_characters_ending_in_backslash_declare_no_subcomponent_separator() {
        let d = Delimiters::new('|', "^~\\").unwrap();
        assert_eq!(d.escape(), Some('\\'));
        assert_eq!(d.subcomponent(), None);
    }

    #[test]
    fn three_characters_ending_in_ampersand_declare_no_escape_character() {
        let d = Delimiters::new('|', "^~&").unwrap();
        assert_eq!(d.escape(), None);
        assert_eq!(d.subcomponent(), Some('&'));
        assert_eq!(d.encoding_characters(), "^~&");
    }

    #[test]
    fn five_characters_declare_the_truncation_character() {
        let d = Delimiters::new('|', "^~\\&#").unwrap();
        assert_eq!(d.truncation(), Some('#'));
        assert_eq!(d.subcomponent(), Some('&'));
    }

    #[test]
    fn duplicate_or_alphanumeric_delimiters_are_refused() {
        assert!(Delimiters::new('|', "^^").is_err());
        assert!(Delimiters::new('|', "^|").is_err());
        assert!(Delimiters::new('|', "^A").is_err());
        assert!(Delimiters::new('A', "^~").is_err());
        assert!(Delimiters::new('|', "^~\\&#*").is_err());
        assert_eq!(
            Delimiters::new('|', ""),
            Err(ParseError::EncodingCharactersMissing)
        );
    }
}
