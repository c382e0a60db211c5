//! Escaping and unescaping (chapter 2.7) through the public API: `escape` then parse gives
//! the value back, for many generated values and for every set of delimiters.

use rapport_hl7::{escape, parse, Delimiters};

use crate::support::parse_ok;

/// A small deterministic generator (xorshift), so the test needs no dependency and fails the
/// same way every time.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[(self.next() % items.len() as u64) as usize]
    }
}

/// Characters that matter to the escaping rules, plus some ordinary ones.
const ALPHABET: [char; 24] = [
    '|', '^', '~', '\\', '&', '#', '$', '%', '!', '*', '\r', '\n', 'X', 'F', 'S', '0', 'd', '.',
    'b', 'r', ' ', 'µ', '’', '王',
];

#[test]
fn escaped_values_parse_back_to_themselves_under_any_delimiters() {
    let headers = [
        ("|", r"^~\&"),
        ("|", r"^~\&#"),
        ("|", r"^~\"),
        ("*", r"$%\!"),
        ("#", r"^~\&"),
    ];
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for (field, msh2) in headers {
        let delimiters = Delimiters::new(field.chars().next().unwrap(), msh2).unwrap();
        for _ in 0..500 {
            let length = (rng.next() % 24) as usize;
            let value: String = (0..length).map(|_| rng.pick(&ALPHABET)).collect();
            // A trailing space at the very end of a segment is padding by rule (B04 /
            // fixture ADT01-23), so the value is followed by one more field.
            let input = format!(
                "MSH{field}{msh2}{field}A{field}B{field}{field}{field}1{field}{field}ADT^A01{field}1{field}P{field}2.5\rNTE{field}1{field}{field}{}{field}end\r",
                escape(&value, &delimiters)
            );
            let parsed = parse(&input).unwrap_or_else(|e| panic!("{value:?} {msh2}: {e}"));
            let nte = parsed.message.segment("NTE").unwrap();
            assert_eq!(nte.field(3).value(), value, "{msh2} {input:?}");
            assert_eq!(nte.field(4).value(), "end");
        }
    }
}

#[test]
fn escape_uses_the_messages_own_characters() {
    let custom = Delimiters::new('*', r"$%\!").unwrap();
    assert_eq!(
        escape("a*b$c%d!e\\f|g^h", &custom),
        r"a\F\b\S\c\R\d\T\e\E\f|g^h"
    );
    assert_eq!(escape("plain", &Delimiters::STANDARD), "plain");
}

#[test]
fn formatting_and_character_set_escapes_decode_as_documented() {
    let input = [
        r"MSH|^~\&|A|B|C|D|1||ORU^R01|1|P|2.5",
        r"OBX|1|FT|X||\H\Result\N\:\.br\line two\.sp 2\end\.in +4\|",
        r"OBX|2|TX|X||\C2842\Kanji\C2B42\ and \Zlocal\ and \Mabcd\ kept",
        r"OBX|3|ST|X||trailing \ and unknown \Q\ kept; \X41\\X4243\",
    ]
    .join("\r");
    let parsed = parse_ok(&input);
    let m = &parsed.message;
    assert_eq!(m.get("OBX(1)-5").unwrap(), "Result:\nline two\n\nend");
    assert_eq!(
        m.get("OBX(2)-5").unwrap(),
        r"\C2842\Kanji\C2B42\ and \Zlocal\ and \Mabcd\ kept"
    );
    assert_eq!(
        m.get("OBX(3)-5").unwrap(),
        r"trailing \ and unknown \Q\ kept; ABC"
    );
}

#[test]
fn values_without_escapes_are_borrowed_from_the_input() {
    let input = "MSH|^~\\&|A|B|C|D|1||ORU^R01|1|P|2.5\rOBX|1|ST|X||plain value\r";
    let parsed = parse_ok(input);
    let value = parsed.message.get("OBX-5").unwrap();
    assert!(matches!(value, std::borrow::Cow::Borrowed(_)));
    assert!(input.as_bytes().as_ptr_range().contains(&value.as_ptr()));
}

#[test]
fn the_v27_truncation_escape_gives_the_truncation_character() {
    // B03 (c) delimiters: `#` is declared, `\P\` stands for it, a bare `#` is data.
    let input = "MSH|^~\\&#|A|B|C|D|1||ORU^R01|1|P|2.7\rNTE|1||see note\\P\\2 and #3\r";
    let parsed = parse_ok(input);
    assert_eq!(parsed.message.get("NTE-3").unwrap(), "see note#2 and #3");
}
