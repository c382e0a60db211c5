//! Edge cases: terminators, byte order marks, character sets, large values, errors, the
//! numbering of MSH and the path queries.

use std::borrow::Cow;

use rapport_hl7::{parse, parse_bytes, Charset, FieldProblem, ParseError, ParseWarning};

use crate::support::{cr, parse_ok};

const MSH: &str = r"MSH|^~\&|APP|FAC|PRM|FAC01|20240101120000||ADT^A01^ADT_A01|C1|P|2.5.1";

#[test]
fn lf_only_input_is_split_on_lf_and_warned_about() {
    let input = format!("{MSH}\nPID|1||123^^^FAC^MR||DOE^JANE\nPV1|1|I\n");
    let parsed = parse_ok(&input);
    assert_eq!(parsed.message.segments().len(), 3);
    assert_eq!(parsed.warnings, [ParseWarning::LfSegmentTerminators]);
    assert_eq!(parsed.message.get("PV1-2").unwrap(), "I");
}

#[test]
fn a_single_segment_without_any_terminator_needs_no_warning() {
    let parsed = parse_ok(MSH);
    assert_eq!(parsed.message.segments().len(), 1);
    assert!(parsed.warnings.is_empty());
}

#[test]
fn crlf_and_reversed_lfcr_terminators_leave_no_line_feed_in_segments() {
    for input in [
        format!("{MSH}\r\nPID|1||123\r\nPV1|1|I\r\n"),
        format!("{MSH}\n\rPID|1||123\n\rPV1|1|I\n\r"),
        format!("\r\n\r\n{MSH}\r\n\r\nPID|1||123\r\n\r\nPV1|1|I"),
    ] {
        let parsed = parse_ok(&input);
        let ids: Vec<&str> = parsed.message.segments().map(|s| s.id()).collect();
        assert_eq!(ids, ["MSH", "PID", "PV1"], "{input:?}");
        assert!(parsed.message.segments().all(|s| !s.raw().contains('\n')));
        assert_eq!(parsed.message.get("PID-3").unwrap(), "123");
        assert!(parsed.warnings.is_empty());
    }
}

#[test]
fn a_byte_order_mark_before_msh_is_skipped_in_bytes_and_in_text() {
    let text = format!("\u{feff}{MSH}\rPID|1\r");
    let parsed = parse_ok(&text);
    assert_eq!(parsed.message.msh().id(), "MSH");
    assert!(parsed.message.to_string().starts_with("MSH|"));
    let parsed = parse_bytes(text.as_bytes()).unwrap();
    assert_eq!(parsed.message.control_id(), "C1");
    assert!(parsed.message.is_borrowed());
}

fn with_charset(msh18: &str, name: &[u8]) -> Vec<u8> {
    let mut bytes = format!("{MSH}||||||{msh18}\rPID|1||123^^^FAC^MR||").into_bytes();
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(b"^JANE\r");
    bytes
}

#[test]
fn non_ascii_names_are_decoded_under_each_msh18_character_set() {
    let cases: [(&str, &[u8], &str, Charset); 14] = [
        ("", "Zoë Ñuñez".as_bytes(), "Zoë Ñuñez", Charset::Utf8),
        (
            "UNICODE UTF-8",
            "Zoë Ñuñez".as_bytes(),
            "Zoë Ñuñez",
            Charset::Utf8,
        ),
        ("UTF-8", "Łódź".as_bytes(), "Łódź", Charset::Utf8),
        ("UNICODE", "王小明".as_bytes(), "王小明", Charset::Utf8),
        ("ASCII", b"DOE", "DOE", Charset::Ascii),
        (
            "8859/1",
            b"Zo\xeb \xd1u\xf1ez",
            "Zoë Ñuñez",
            Charset::Iso8859(1),
        ),
        (
            "8859/2",
            b"\xa3\xf3d\xbc \xacd\xbcb\xb3o",
            "Łódź Źdźbło",
            Charset::Iso8859(2),
        ),
        ("8859/5", b"\xb8\xd2\xd0\xdd", "Иван", Charset::Iso8859(5)),
        (
            "8859/7",
            b"\xc3\xe9\xfe\xf1\xe3\xef\xf2",
            "Γιώργος",
            Charset::Iso8859(7),
        ),
        (
            "8859/9",
            b"\xde\xfckr\xfc \xd6zt\xfcrk",
            "Şükrü Öztürk",
            Charset::Iso8859(9),
        ),
        ("8859/15", b"\xbcuvre \xa4", "Œuvre €", Charset::Iso8859(15)),
        (
            "GB 18030-2000",
            b"\xcd\xf5\xd0\xa1\xc3\xf7",
            "王小明",
            Charset::Gb18030,
        ),
        (
            "KS X 1001",
            b"\xb1\xe8\xb9\xce\xbc\xf6",
            "김민수",
            Charset::EucKr,
        ),
        // Big5 trail bytes can be 0x5C, the escape character: the text is decoded before it
        // is split, so `許功蓋` is three characters and no escape sequence.
        (
            "BIG-5",
            b"\xb3\x5c\xa5\x5c\xbb\x5c",
            "許功蓋",
            Charset::Big5,
        ),
    ];
    for (msh18, name, expected, charset) in cases {
        let bytes = with_charset(msh18, name);
        let parsed = parse_bytes(&bytes).unwrap_or_else(|e| panic!("{msh18}: {e}"));
        let m = &parsed.message;
        assert_eq!(m.get("PID-5.1").unwrap(), expected, "{msh18}");
        assert_eq!(m.get("PID-5.2").unwrap(), "JANE", "{msh18}");
        assert_eq!(m.charset(), charset, "{msh18}");
        assert_eq!(m.character_set(), msh18);
        assert!(parsed.warnings.is_empty(), "{msh18}: {:?}", parsed.warnings);
        // Valid UTF-8 under a UTF-8 family declaration is borrowed; a decoded one is a copy.
        assert_eq!(
            m.is_borrowed(),
            charset == Charset::Utf8 || name.is_ascii(),
            "{msh18}"
        );
        // Encoding the serialised message gives the input back.
        assert_eq!(charset.encode(&m.to_string()), bytes, "{msh18}");
    }
}

#[test]
fn plain_ascii_under_a_single_byte_declaration_is_still_borrowed() {
    let bytes = with_charset("8859/1", b"DOE");
    let parsed = parse_bytes(&bytes).unwrap();
    assert!(parsed.message.is_borrowed());
    assert_eq!(parsed.message.charset(), Charset::Iso8859(1));
}

#[test]
fn hex_escapes_are_decoded_in_the_declared_character_set() {
    let bytes = with_charset("8859/1", br"Ren\XE9\e");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get("PID-5").unwrap(), "Renée");
    let bytes = with_charset("UNICODE UTF-8", br"Ren\XC3A9\e");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get("PID-5").unwrap(), "Renée");
    // Text that is already decoded still uses MSH-18 for the hex bytes.
    let text = format!("{MSH}||||||8859/1\rPID|1||1||M\\XFC\\ller");
    assert_eq!(parse_ok(&text).message.get("PID-5").unwrap(), "Müller");
}

#[test]
fn undeclared_bytes_that_are_not_utf8_are_read_as_windows_1252_with_a_warning() {
    let bytes = with_charset("", b"M\xfcller \x92");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get("PID-5").unwrap(), "Müller \u{2019}");
    assert_eq!(parsed.warnings, [ParseWarning::DecodedAsWindows1252]);
    assert_eq!(parsed.message.charset(), Charset::Windows1252);
    assert!(!parsed.message.is_borrowed());
    // The same when the sender claims ASCII.
    let bytes = with_charset("ASCII", b"M\xfcller");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get("PID-5").unwrap(), "Müller");
    assert_eq!(parsed.warnings, [ParseWarning::DecodedAsWindows1252]);
}

#[test]
fn invalid_utf8_under_a_utf8_declaration_is_an_error_naming_the_field() {
    let bytes = with_charset("UNICODE UTF-8", b"M\xfcller");
    let error = parse_bytes(&bytes).unwrap_err();
    assert_eq!(
        error,
        ParseError::InField {
            segment: 2,
            id: "PID".into(),
            field: 5,
            problem: FieldProblem::InvalidBytes {
                charset: "UNICODE UTF-8"
            },
        }
    );
    assert!(error.to_string().starts_with("segment 2 (PID), field 5: "));
    // In MSH itself the field number is HL7's.
    let mut bytes = b"MSH|^~\\&|AP\xffP|F|||1||ADT^A01|1|P|2.5||||||UTF-8\r".to_vec();
    bytes.extend_from_slice(b"PID|1\r");
    let error = parse_bytes(&bytes).unwrap_err();
    assert!(
        error.to_string().starts_with("segment 1 (MSH), field 3: "),
        "{error}"
    );
}

#[test]
fn an_unsupported_charset_is_read_as_utf8_with_a_warning() {
    let bytes = with_charset("ISO IR87", "DOE".as_bytes());
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(
        parsed.warnings,
        [ParseWarning::UnsupportedCharset {
            declared: "ISO IR87".into()
        }]
    );
    assert_eq!(parsed.message.get("PID-5").unwrap(), "DOE");
}

#[test]
fn a_five_megabyte_base64_obx_parses_and_borrows() {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data: String = (0..5 * 1024 * 1024)
        .map(|i: usize| alphabet[(i * 7 + i / 64) % 64] as char)
        .collect();
    let input = cr(&[
        r"MSH|^~\&|LAB|L|PRM|F|20240101||ORU^R01^ORU_R01|C2|P|2.5.1",
        "PID|1||123^^^L^MR||DOE^JANE",
        &format!("OBX|1|ED|PDF^Report^L||^AP^PDF^Base64^{data}||||||F"),
    ]);
    let parsed = parse_bytes(input.as_bytes()).unwrap();
    let m = &parsed.message;
    assert!(m.is_borrowed());
    let obx5 = m.segment("OBX").unwrap().field(5);
    assert_eq!(obx5.component(2).value(), "AP");
    assert_eq!(obx5.component(4).value(), "Base64");
    let payload = obx5.component(5).value();
    assert!(matches!(payload, Cow::Borrowed(_)));
    assert_eq!(payload.len(), data.len());
    // The slice points into the input: nothing was copied.
    let range = input.as_bytes().as_ptr_range();
    assert!(range.contains(&payload.as_ptr()));
    assert_eq!(m.segment("OBX").unwrap().field(11).value(), "F");
}

#[test]
fn structural_errors_say_what_is_wrong() {
    let cases: [(&str, ParseError, &str); 9] = [
        ("", ParseError::Empty, "empty input"),
        ("\r\n\r\n  \n", ParseError::Empty, "empty input"),
        (
            "PID|1||123",
            ParseError::DoesNotStartWithMsh { batch: false },
            "input does not start with MSH",
        ),
        (
            "MSH",
            ParseError::InvalidFieldSeparator,
            "MSH-1 field separator missing",
        ),
        (
            "MSH|",
            ParseError::EncodingCharactersMissing,
            "MSH-2 encoding characters missing",
        ),
        (
            "MSH||APP",
            ParseError::EncodingCharactersMissing,
            "MSH-2 encoding characters missing",
        ),
        (
            r"MSH|^~\&|A|B|C|D|1|||1|P|2.5",
            ParseError::MessageTypeMissing,
            "MSH-9 message type is missing",
        ),
        (
            r"MSH|^~\&|A|B|C|D|1||^A01|1|P|2.5",
            ParseError::MessageTypeMissing,
            "MSH-9",
        ),
        (
            r"MSH|^^\&|A",
            ParseError::InvalidEncodingCharacters {
                reason: "the delimiters must all differ",
            },
            "MSH-2 encoding characters invalid",
        ),
    ];
    for (input, expected, message) in cases {
        let error = parse(input).unwrap_err();
        assert_eq!(error, expected, "{input:?}");
        assert!(error.to_string().starts_with(message), "{input:?}: {error}");
    }
}

#[test]
fn a_segment_id_with_whitespace_or_a_bad_shape_is_an_error_naming_the_segment() {
    for (second, number) in [(" PID|1", 2), ("PI|1", 2), ("PIDX|1", 2), ("\tPID|1", 2)] {
        let input = format!("{MSH}\r{second}\r");
        let error = parse(&input).unwrap_err();
        assert_eq!(
            error,
            ParseError::InvalidSegmentId { segment: number },
            "{second:?}"
        );
        assert!(error.to_string().starts_with("segment 2: the segment id"));
    }
    // A segment of three letters and nothing else is fine.
    assert_eq!(
        parse_ok(&format!("{MSH}\rZZZ\r")).message.segments().len(),
        2
    );
}

#[test]
fn msh_fields_are_numbered_as_in_hl7() {
    let input = cr(&[MSH]);
    let parsed = parse_ok(&input);
    let m = &parsed.message;
    let msh = m.msh();
    assert_eq!(msh.field(1).raw(), "|");
    assert_eq!(msh.field(2).raw(), r"^~\&");
    // MSH-2 is not unescaped or split, though it holds the escape and separator characters.
    assert_eq!(msh.field(2).value(), r"^~\&");
    assert_eq!(msh.field(2).repetitions().count(), 1);
    assert_eq!(msh.field(3).raw(), "APP");
    assert_eq!(msh.field(9).component(3).value(), "ADT_A01");
    assert_eq!(msh.field(12).raw(), "2.5.1");
    assert_eq!(msh.field_count(), 12);
    let fields: Vec<&str> = msh.fields().map(|f| f.raw()).collect();
    assert_eq!(fields[..4], ["|", r"^~\&", "APP", "FAC"]);
    assert_eq!(fields.len(), 12);
    assert_eq!(m.get("MSH-1").unwrap(), "|");
    assert_eq!(m.get("MSH-10").unwrap(), "C1");
    assert_eq!(m.sending_application(), "APP");
    assert_eq!(m.receiving_application(), "PRM");
    assert_eq!(m.receiving_facility(), "FAC01");
    assert_eq!(m.processing_id(), "P");
    assert_eq!(m.accept_ack_type(), "");
}

#[test]
fn paths_distinguish_absent_segments_from_empty_positions() {
    let input = cr(&[MSH, "PID|1||A~B^^^X||DOE", "ZXY|1|custom^data"]);
    let parsed = parse_ok(&input);
    let m = &parsed.message;
    assert_eq!(m.get("OBX-5"), None);
    assert_eq!(m.get("PID(2)-1"), None);
    assert_eq!(m.get("not a path"), None);
    assert_eq!(m.get("PID-30").unwrap(), "");
    assert_eq!(m.get("PID-3(3)").unwrap(), "");
    assert_eq!(m.get("PID-3(2).4").unwrap(), "X");
    assert_eq!(m.get_raw("PID-3"), Some("A~B^^^X"));
    assert_eq!(m.get_raw("PID-3(2)"), Some("B^^^X"));
    assert_eq!(m.get("PID-3").unwrap(), "A");
    // Z-segments are kept like any other.
    assert_eq!(m.get("ZXY-2.2").unwrap(), "data");
    assert_eq!(m.segments().next_back().unwrap().id(), "ZXY");
    assert_eq!(m.segments().next_back().unwrap().position(), 3);
    assert_eq!(m.segments().len(), 3);
}

#[test]
fn a_message_can_outlive_its_input_once_owned() {
    let owned = {
        let input = cr(&[MSH, "PID|1||123"]);
        parse_ok(&input).message.into_owned()
    };
    assert_eq!(owned.get("PID-3").unwrap(), "123");
}

#[test]
fn debug_output_shows_structure_but_no_patient_data() {
    let input = cr(&[MSH, "PID|1||123||SECRETNAME^JANE"]);
    let parsed = parse_ok(&input);
    let debug = format!("{:?}", parsed.message);
    assert!(debug.contains("PID"));
    assert!(!debug.contains("SECRETNAME"), "{debug}");
}
