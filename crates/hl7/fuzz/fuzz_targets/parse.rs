//! Fuzzes the parser: any bytes either fail to parse with an error or give a message whose
//! every part can be walked, decoded, serialised, acknowledged and parsed again, without a
//! panic.
//!
//! ```text
//! cd fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run parse -j1 -- -max_total_time=60
//! ```

#![no_main]

use libfuzzer_sys::fuzz_target;
use rapport_hl7::{
    ack, escape, parse, parse_bytes, split_messages, AckCode, AckError, ErrorCode, Message,
};

fn walk(message: &Message<'_>) -> usize {
    let mut total = 0;
    for segment in message.segments() {
        total += segment.id().len() + segment.field_count();
        for field in segment.fields() {
            total += field.text().len() + field.value().len();
            for repetition in field.repetitions() {
                total += repetition.text().len();
                for component in repetition.components() {
                    total += component.text().len();
                    for sub in component.subcomponents() {
                        total += sub.value().len() + usize::from(sub.is_null());
                    }
                }
            }
        }
        // Positions past the end and 0 must be empty, not panics.
        total += segment.field(0).raw().len() + segment.field(1000).component(7).raw().len();
    }
    for path in [
        "MSH-9.2",
        "PID-3(2).4.1",
        "OBX(2)-5",
        "MSH-1",
        "MSH-2.1",
        "ZZZ-1",
    ] {
        total += message.get(path).map_or(0, |v| v.len());
    }
    total += message.message_type().len() + message.control_id().len() + message.version().len();
    let _ = message.acknowledgment();
    total
}

fn check(message: &Message<'_>) {
    walk(message);
    let error = AckError::new(ErrorCode::ApplicationInternalError)
        .at("PID", 1, 3)
        .with_text("text | with ^ delimiters \\ & ~ #");
    for code in [AckCode::AA, AckCode::AE] {
        let reply = ack(message, code, Some(&error), "20240101120000", "CTRL|1");
        // An ACK is a message in the sender's own delimiters.
        let parsed = parse(&reply).expect("the ACK parses");
        assert_eq!(parsed.message.acknowledgment().expect("MSA").code, code);
    }
    // Serialising and parsing again gives the same segments.
    let text = message.to_string();
    let again = parse(&text).expect("the serialised message parses");
    assert_eq!(again.message.to_string(), text);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_bytes(data) {
        check(&parsed.message);
    }
    for piece in split_messages(data).take(16) {
        if let Ok(parsed) = parse_bytes(piece) {
            walk(&parsed.message);
        }
    }
    // Escaping: whatever the text, escape then parse gives it back (NUL aside).
    if let Ok(text) = std::str::from_utf8(data) {
        let value: String = text.chars().filter(|&c| c != '\0').take(200).collect();
        let d = rapport_hl7::Delimiters::STANDARD;
        let input = format!(
            "MSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\rNTE|1||{}|end",
            escape(&value, &d)
        );
        let parsed = parse(&input).expect("an escaped value parses");
        let nte = parsed.message.segment("NTE").expect("NTE");
        assert_eq!(nte.field(3).value(), value);
    }
});
