//! Character sets named in MSH-18 (HL7 table 0211) and the decoding of the message bytes.
//!
//! Chapter 2 says that without MSH-18 a message is 7-bit ASCII. Real feeds send UTF-8
//! without saying so (the CDC and pipehat fixtures do), and older ones send Windows-1252 or
//! Latin-1 bytes without saying so. The rules, in [`crate::parse_bytes`]:
//!
//! - MSH-18 empty, `ASCII`, `UNICODE UTF-8` (also `UTF-8`, `UNICODE`): the bytes are read as
//!   UTF-8 and borrowed. Not valid UTF-8 when UTF-8 was declared is an error naming the
//!   segment and field; when nothing (or ASCII) was declared they are decoded as
//!   Windows-1252 with [`crate::ParseWarning::DecodedAsWindows1252`].
//! - `8859/1` … `8859/16`, `GB 18030-2000`, `BIG-5`, `KS X 1001`: decoded with `encoding_rs`
//!   (a copy, unless the bytes are plain ASCII). The declaration wins even when the bytes
//!   would also be valid UTF-8.
//! - `8859/1` uses the WHATWG "latin1" decoder, which is Windows-1252: it differs from
//!   ISO 8859-1 only in 0x80–0x9F, which are C1 control codes in 8859-1 that never appear in
//!   text, while senders that say 8859/1 and send 0x92 mean ’.
//! - Anything else (UTF-16, ISO IR87 …) gets [`crate::ParseWarning::UnsupportedCharset`].
//!
//! The message's character set also decodes the bytes of `\Xhh\` escapes.

use encoding_rs::Encoding;

/// The character set a message was decoded with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Charset {
    /// `ASCII` (read as UTF-8, of which it is a subset).
    Ascii,
    /// `UNICODE UTF-8`, or no MSH-18 with bytes that are valid UTF-8.
    Utf8,
    /// `8859/n`, ISO 8859 part n (1 to 16; 1 is decoded as Windows-1252, see the module docs).
    Iso8859(u8),
    /// Not declared, but the bytes were not UTF-8: decoded as Windows-1252.
    Windows1252,
    /// `GB 18030-2000`.
    Gb18030,
    /// `BIG-5`.
    Big5,
    /// `KS X 1001` (as EUC-KR).
    EucKr,
}

impl Charset {
    /// Reads an MSH-18 value. `None` for an empty value is not possible: an empty MSH-18 is
    /// handled by the caller; this returns `None` for names it does not support.
    ///
    /// The match is lenient about case, spaces, `-`, `_` and `/`, and accepts the common
    /// non-HL7 spellings (`UTF-8`, `ISO-8859-1`, `latin1`, `windows-1252`).
    pub fn from_msh18(name: &str) -> Option<Charset> {
        let key: String = name
            .chars()
            .filter(|c| !matches!(c, ' ' | '-' | '_' | '/' | '.'))
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let charset = match key.as_str() {
            "ASCII" | "USASCII" => Charset::Ascii,
            "UNICODEUTF8" | "UTF8" | "UNICODE" => Charset::Utf8,
            "LATIN1" => Charset::Iso8859(1),
            "WINDOWS1252" | "CP1252" => Charset::Windows1252,
            "GB180302000" | "GB18030" => Charset::Gb18030,
            "BIG5" => Charset::Big5,
            "KSX1001" | "EUCKR" => Charset::EucKr,
            other => {
                let digits = other
                    .strip_prefix("ISO")
                    .unwrap_or(other)
                    .strip_prefix("8859")?;
                let part: u8 = digits.parse().ok()?;
                iso8859(part)?;
                Charset::Iso8859(part)
            }
        };
        Some(charset)
    }

    /// The HL7 table 0211 name (`windows-1252` for the undeclared fallback).
    pub fn name(&self) -> &'static str {
        match self {
            Charset::Ascii => "ASCII",
            Charset::Utf8 => "UNICODE UTF-8",
            Charset::Iso8859(part) => match part {
                1 => "8859/1",
                2 => "8859/2",
                3 => "8859/3",
                4 => "8859/4",
                5 => "8859/5",
                6 => "8859/6",
                7 => "8859/7",
                8 => "8859/8",
                9 => "8859/9",
                10 => "8859/10",
                11 => "8859/11",
                13 => "8859/13",
                14 => "8859/14",
                15 => "8859/15",
                _ => "8859/16",
            },
            Charset::Windows1252 => "windows-1252",
            Charset::Gb18030 => "GB 18030-2000",
            Charset::Big5 => "BIG-5",
            Charset::EucKr => "KS X 1001",
        }
    }

    /// `None` for the UTF-8 family, which needs no decoder.
    fn encoding(&self) -> Option<&'static Encoding> {
        match self {
            Charset::Ascii | Charset::Utf8 => None,
            Charset::Iso8859(part) => iso8859(*part),
            Charset::Windows1252 => Some(encoding_rs::WINDOWS_1252),
            Charset::Gb18030 => Some(encoding_rs::GB18030),
            Charset::Big5 => Some(encoding_rs::BIG5),
            Charset::EucKr => Some(encoding_rs::EUC_KR),
        }
    }

    /// True for ASCII and UTF-8, whose bytes are the text as it is.
    pub(crate) fn is_utf8(&self) -> bool {
        self.encoding().is_none()
    }

    /// Decodes bytes that are not UTF-8-family text (the caller handles those).
    pub(crate) fn decode_to_string(&self, bytes: &[u8]) -> String {
        let encoding = self.encoding().unwrap_or(encoding_rs::WINDOWS_1252);
        encoding.decode_without_bom_handling(bytes).0.into_owned()
    }

    /// Appends the text of the bytes of one or more `\Xhh\` escapes. In the UTF-8 family,
    /// bytes that are not valid UTF-8 are read as Windows-1252 rather than lost.
    pub(crate) fn decode_hex_into(&self, bytes: &[u8], out: &mut String) {
        match self.encoding() {
            None => match std::str::from_utf8(bytes) {
                Ok(text) => out.push_str(text),
                Err(_) => out.push_str(
                    &encoding_rs::WINDOWS_1252
                        .decode_without_bom_handling(bytes)
                        .0,
                ),
            },
            Some(encoding) => out.push_str(&encoding.decode_without_bom_handling(bytes).0),
        }
    }

    /// Encodes text for sending in this character set (an ACK to an 8859/1 sender, say).
    /// Characters the set cannot represent become `?`.
    pub fn encode(&self, text: &str) -> Vec<u8> {
        let Some(encoding) = self.encoding() else {
            return text.as_bytes().to_vec();
        };
        let mut encoder = encoding.new_encoder();
        let mut out = Vec::with_capacity(text.len());
        let mut buffer = [0u8; 1024];
        let mut rest = text;
        loop {
            let (result, read, written) =
                encoder.encode_from_utf8_without_replacement(rest, &mut buffer, true);
            out.extend_from_slice(&buffer[..written]);
            rest = &rest[read..];
            match result {
                encoding_rs::EncoderResult::InputEmpty => return out,
                encoding_rs::EncoderResult::OutputFull => {}
                encoding_rs::EncoderResult::Unmappable(_) => out.push(b'?'),
            }
        }
    }
}

fn iso8859(part: u8) -> Option<&'static Encoding> {
    Some(match part {
        // WHATWG: "iso-8859-1" is windows-1252 (see the module docs).
        1 => encoding_rs::WINDOWS_1252,
        2 => encoding_rs::ISO_8859_2,
        3 => encoding_rs::ISO_8859_3,
        4 => encoding_rs::ISO_8859_4,
        5 => encoding_rs::ISO_8859_5,
        6 => encoding_rs::ISO_8859_6,
        7 => encoding_rs::ISO_8859_7,
        8 => encoding_rs::ISO_8859_8,
        // WHATWG: "iso-8859-9" is windows-1254, its superset.
        9 => encoding_rs::WINDOWS_1254,
        10 => encoding_rs::ISO_8859_10,
        // Thai; windows-874 is its superset.
        11 => encoding_rs::WINDOWS_874,
        13 => encoding_rs::ISO_8859_13,
        14 => encoding_rs::ISO_8859_14,
        15 => encoding_rs::ISO_8859_15,
        16 => encoding_rs::ISO_8859_16,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn msh18_names_are_read_leniently() {
        assert_eq!(Charset::from_msh18("UNICODE UTF-8"), Some(Charset::Utf8));
        assert_eq!(Charset::from_msh18("utf-8"), Some(Charset::Utf8));
        assert_eq!(Charset::from_msh18("8859/1"), Some(Charset::Iso8859(1)));
        assert_eq!(
            Charset::from_msh18("ISO-8859-15"),
            Some(Charset::Iso8859(15))
        );
        assert_eq!(Charset::from_msh18("8859/12"), None);
        assert_eq!(Charset::from_msh18("UNICODE UTF-16"), None);
        assert_eq!(Charset::from_msh18("ASCII"), Some(Charset::Ascii));
    }

    #[test]
    fn encoding_replaces_unmappable_characters() {
        assert_eq!(Charset::Iso8859(1).encode("Zoë €"), b"Zo\xeb \x80".to_vec());
        assert_eq!(
            Charset::Iso8859(2).encode("Łódź ☃"),
            b"\xa3\xf3d\xbc ?".to_vec()
        );
        assert_eq!(Charset::Utf8.encode("µ"), "µ".as_bytes().to_vec());
    }
}
