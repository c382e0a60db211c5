//! Escape sequences (HL7 v2 chapter 2, section 2.7 "Use of escape sequences in text fields",
//! v2.5 numbering).
//!
//! An escape sequence is the escape character, an id, optional data and the escape character
//! again. Decoding, as done by [`crate::Field::value`] and friends:
//!
//! | sequence | decoded as |
//! |---|---|
//! | `\F\ \S\ \T\ \R\ \E\` | the message's field, component, subcomponent, repetition and escape characters |
//! | `\P\` (v2.7) | the truncation character (`#` when none is declared) |
//! | `\Xhh…\` | the bytes hh…, any even number of hex digits (an odd count gets a leading 0), decoded in the message's character set; NUL bytes are dropped, so `\X000d\` is `"\r"`; adjacent `\X..\` escapes are decoded together, so a UTF-8 sequence split over two of them survives |
//! | `\H\ \N\` | nothing: highlighting on and off has no meaning in plain text |
//! | `\.br\` | `"\n"` |
//! | `\.sp\`, `\.sp n\` | n line feeds (at least 1, at most 100) |
//! | `\.ce\` | `"\n"` (centre the next line: it starts a new one) |
//! | `\.fi\ \.nf\ \.in n\ \.ti n\ \.sk n\` | nothing (fill mode, indents and skips are layout only) |
//! | `\Cxxyy\ \Mxxyyzz\` | kept as written: they switch character sets (ISO 2022, MSH-20), which this crate does not do, and dropping them would silently change the text |
//! | `\Zxxx\` | kept as written (locally defined) |
//! | anything else | kept as written; the opening escape character is taken as a literal and the closing one may start the next sequence, so a stray backslash before `\F\` does not swallow it |
//!
//! Sequences never nest (2.7), and since escapes never contain a delimiter, a value is split
//! into repetitions, components and subcomponents first and unescaped afterwards.

use std::borrow::Cow;

use crate::charset::Charset;
use crate::delimiters::Delimiters;
use crate::message::find_byte;

/// Line feeds produced for `\.sp n\` at most, so that a hostile number cannot allocate much.
const MAX_SKIPPED_LINES: usize = 100;

/// Decodes the escape sequences in `raw`. Borrows when there is nothing to decode.
pub(crate) fn unescape<'m>(
    raw: &'m str,
    delimiters: &Delimiters,
    charset: Charset,
) -> Cow<'m, str> {
    let Some(esc) = delimiters.escape else {
        return Cow::Borrowed(raw);
    };
    let bytes = raw.as_bytes();
    let Some(mut open) = find_byte(bytes, esc) else {
        return Cow::Borrowed(raw);
    };
    let mut out = String::with_capacity(raw.len());
    // Bytes of consecutive `\X..\` escapes, decoded together when something else follows.
    let mut hex: Vec<u8> = Vec::new();
    // Start of the text not yet copied to `out`.
    let mut copied = 0;
    loop {
        if open > copied {
            flush_hex(&mut hex, charset, &mut out);
            out.push_str(&raw[copied..open]);
        }
        let Some(close) = find(bytes, esc, open + 1) else {
            // An escape character that is never closed is data.
            flush_hex(&mut hex, charset, &mut out);
            out.push_str(&raw[open..]);
            return Cow::Owned(out);
        };
        // Both ends are the ASCII escape character, so these are character boundaries.
        let content = &raw[open + 1..close];
        let next_search;
        match classify(content) {
            Sequence::Hex(digits) => {
                push_hex_bytes(digits, &mut hex);
                copied = close + 1;
                next_search = close + 1;
            }
            Sequence::Text(text) => {
                flush_hex(&mut hex, charset, &mut out);
                out.push_str(text);
                copied = close + 1;
                next_search = close + 1;
            }
            Sequence::Delimiter(which) => {
                flush_hex(&mut hex, charset, &mut out);
                out.push(delimiter_char(which, delimiters));
                copied = close + 1;
                next_search = close + 1;
            }
            Sequence::LineFeeds(count) => {
                flush_hex(&mut hex, charset, &mut out);
                out.extend(std::iter::repeat_n('\n', count));
                copied = close + 1;
                next_search = close + 1;
            }
            Sequence::Keep => {
                flush_hex(&mut hex, charset, &mut out);
                out.push_str(&raw[open..=close]);
                copied = close + 1;
                next_search = close + 1;
            }
            Sequence::Unknown => {
                // Keep the opening character as data and let the closing one open the next
                // sequence (see the module docs).
                flush_hex(&mut hex, charset, &mut out);
                out.push_str(&raw[open..close]);
                copied = close;
                next_search = close;
            }
        }
        match find(bytes, esc, next_search) {
            Some(next) => open = next,
            None => break,
        }
    }
    flush_hex(&mut hex, charset, &mut out);
    out.push_str(&raw[copied..]);
    Cow::Owned(out)
}

enum Sequence<'s> {
    Delimiter(u8),
    Hex(&'s str),
    Text(&'static str),
    LineFeeds(usize),
    Keep,
    Unknown,
}

fn classify(content: &str) -> Sequence<'_> {
    match content {
        "F" | "S" | "T" | "R" | "E" | "P" => return Sequence::Delimiter(content.as_bytes()[0]),
        "H" | "N" => return Sequence::Text(""),
        ".br" | ".ce" => return Sequence::Text("\n"),
        ".fi" | ".nf" => return Sequence::Text(""),
        _ => {}
    }
    if let Some(digits) = content.strip_prefix('X') {
        if digits.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Sequence::Hex(digits);
        }
        return Sequence::Unknown;
    }
    if let Some(argument) = content.strip_prefix(".sp") {
        let argument = argument.trim();
        if argument.is_empty() {
            return Sequence::LineFeeds(1);
        }
        if argument.bytes().all(|b| b.is_ascii_digit()) {
            let count = argument.parse::<usize>().unwrap_or(MAX_SKIPPED_LINES);
            return Sequence::LineFeeds(count.clamp(1, MAX_SKIPPED_LINES));
        }
        return Sequence::Unknown;
    }
    for command in [".in", ".ti", ".sk"] {
        if let Some(argument) = content.strip_prefix(command) {
            let argument = argument.trim();
            let digits = argument.strip_prefix(['+', '-']).unwrap_or(argument);
            if digits.bytes().all(|b| b.is_ascii_digit()) {
                return Sequence::Text("");
            }
            return Sequence::Unknown;
        }
    }
    let hex_after = |prefix: char, lengths: &[usize]| {
        content.strip_prefix(prefix).is_some_and(|digits| {
            lengths.contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_hexdigit())
        })
    };
    if hex_after('C', &[4]) || hex_after('M', &[4, 6]) {
        return Sequence::Keep;
    }
    if content.len() > 1 && content.starts_with('Z') {
        return Sequence::Keep;
    }
    Sequence::Unknown
}

fn delimiter_char(which: u8, d: &Delimiters) -> char {
    // A sequence for a delimiter the message did not declare gets the standard character.
    let byte = match which {
        b'F' => d.field,
        b'S' => d.component,
        b'T' => d.subcomponent.unwrap_or(b'&'),
        b'R' => d.repetition.unwrap_or(b'~'),
        b'E' => d.escape.unwrap_or(b'\\'),
        _ => d.truncation.unwrap_or(b'#'),
    };
    byte as char
}

fn push_hex_bytes(digits: &str, hex: &mut Vec<u8>) {
    let digits = digits.as_bytes();
    let nibble = |b: u8| match b {
        b'0'..=b'9' => b - b'0',
        b'a'..=b'f' => b - b'a' + 10,
        _ => b - b'A' + 10,
    };
    // An odd count is read as if it had a leading 0 (`\XD\` is `\X0D\`).
    let pairs = if digits.len() % 2 == 1 {
        hex.push(nibble(digits[0]));
        &digits[1..]
    } else {
        digits
    };
    for pair in pairs.chunks_exact(2) {
        hex.push(nibble(pair[0]) << 4 | nibble(pair[1]));
    }
}

fn flush_hex(hex: &mut Vec<u8>, charset: Charset, out: &mut String) {
    if hex.is_empty() {
        return;
    }
    // NUL has no place in text (B01: `\X000d\` is "\r", never "\0\r").
    hex.retain(|&b| b != 0);
    charset.decode_hex_into(hex, out);
    hex.clear();
}

fn find(bytes: &[u8], needle: u8, from: usize) -> Option<usize> {
    find_byte(bytes.get(from..)?, needle).map(|i| i + from)
}

/// Writes `value` so that it can stand in a field of a message with these delimiters:
/// `| ^ ~ \ &` (the message's own characters) become `\F\ \S\ \R\ \E\ \T\`, a declared
/// truncation character becomes `\P\`, and CR and LF become `\X0D\` and `\X0A\` (a bare CR
/// would end the segment). Parsing the result gives `value` back, except that NUL characters
/// are dropped (they have no escape that survives decoding).
///
/// When the delimiters declare no escape character (MSH-2 `^~&`) nothing can be escaped: the
/// delimiter characters, CR and LF are replaced by spaces so that the message stays
/// well-formed.
pub fn escape(value: &str, delimiters: &Delimiters) -> String {
    let d = delimiters;
    let special = |c: char| {
        c == '\r'
            || c == '\n'
            || c == '\0'
            || (c.is_ascii()
                && [
                    Some(d.field),
                    Some(d.component),
                    d.repetition,
                    d.escape,
                    d.subcomponent,
                    d.truncation,
                ]
                .contains(&Some(c as u8)))
    };
    let mut out = String::with_capacity(value.len() + 8);
    let Some(esc) = d.escape.map(char::from) else {
        for c in value.chars() {
            match c {
                '\0' => {}
                c if special(c) => out.push(' '),
                c => out.push(c),
            }
        }
        return out;
    };
    for c in value.chars() {
        if !special(c) {
            out.push(c);
            continue;
        }
        let code = match c {
            '\r' => "X0D",
            '\n' => "X0A",
            '\0' => continue,
            c if c as u32 == d.field as u32 => "F",
            c if c as u32 == d.component as u32 => "S",
            c if Some(c as u32) == d.repetition.map(u32::from) => "R",
            c if Some(c as u32) == d.subcomponent.map(u32::from) => "T",
            c if c == esc => "E",
            _ => "P",
        };
        out.push(esc);
        out.push_str(code);
        out.push(esc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(raw: &str) -> String {
        unescape(raw, &Delimiters::STANDARD, Charset::Utf8).into_owned()
    }

    #[test]
    fn text_without_escapes_is_borrowed() {
        assert!(matches!(
            unescape("plain", &Delimiters::STANDARD, Charset::Utf8),
            Cow::Borrowed("plain")
        ));
    }

    #[test]
    fn delimiter_escapes_give_the_delimiters() {
        assert_eq!(decode(r"a\F\b\S\c\T\d\R\e\E\f"), r"a|b^c&d~e\f");
    }

    #[test]
    fn hex_of_any_even_width_drops_nul_bytes() {
        assert_eq!(decode(r"A\X000d\\X0A\B"), "A\r\nB");
        assert_eq!(decode(r"\X0D0A\"), "\r\n");
        assert_eq!(decode(r"\XD\"), "\r");
        assert_eq!(decode(r"\X00\"), "");
    }

    #[test]
    fn utf8_split_over_two_hex_escapes_is_joined() {
        assert_eq!(decode(r"\XC2\\XB5\mol"), "µmol");
    }

    #[test]
    fn hex_is_decoded_in_the_message_charset() {
        let latin1 = unescape(r"Ren\XE9\e", &Delimiters::STANDARD, Charset::Iso8859(1));
        assert_eq!(latin1, "Renée");
        // Not valid UTF-8 in a UTF-8 message: read as Windows-1252 rather than lost.
        assert_eq!(decode(r"Ren\XE9\e"), "Renée");
    }

    #[test]
    fn formatting_escapes_become_line_breaks_or_nothing() {
        assert_eq!(decode(r"\H\bold\N\ text"), "bold text");
        assert_eq!(decode(r"one\.br\two"), "one\ntwo");
        assert_eq!(decode(r"one\.sp 2\two\.in +4\"), "one\n\ntwo");
        assert_eq!(decode(r"\.sp 999999999999999999999\"), "\n".repeat(100));
    }

    #[test]
    fn charset_switches_and_local_escapes_are_kept() {
        assert_eq!(decode(r"\C2842\abc\M2442\"), r"\C2842\abc\M2442\");
        assert_eq!(decode(r"\Zfoo\"), r"\Zfoo\");
    }

    #[test]
    fn unknown_or_unclosed_sequences_are_kept_literally() {
        assert_eq!(decode(r"C:\dir"), r"C:\dir");
        assert_eq!(decode(r"a\b\F\"), r"a\b|");
        assert_eq!(decode(r"\Xzz\"), r"\Xzz\");
        assert_eq!(decode(r"\\"), r"\\");
    }

    #[test]
    fn escape_then_unescape_gives_the_value_back() {
        let value = "a|b^c~d\\e&f#g\r\nh µ";
        let escaped = escape(value, &Delimiters::STANDARD);
        assert_eq!(escaped, r"a\F\b\S\c\R\d\E\e\T\f#g\X0D\\X0A\h µ");
        assert_eq!(decode(&escaped), value);
        let v27 = Delimiters::new('|', "^~\\&#").unwrap();
        let escaped = escape(value, &v27);
        assert!(escaped.contains(r"\P\"));
        assert_eq!(unescape(&escaped, &v27, Charset::Utf8), value);
    }

    #[test]
    fn without_an_escape_character_delimiters_become_spaces() {
        let d = Delimiters::new('|', "^~&").unwrap();
        assert_eq!(escape("a|b^c\\d", &d), "a b c\\d");
    }
}
