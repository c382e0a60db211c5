//! The parsing parts of the hard cases in `shared/hard-cases.md`; each test names its case.

use rapport_hl7::{ack, parse, parse_bytes, split_messages, AckCode, ParseWarning};

use crate::support::{cr, leaf_values, parse_ok, reencode};

// ---------------------------------------------------------------------------------------
// B01 — Escape sequences: hex of odd width, adjacent escapes, delimiter escapes

fn b01_input() -> String {
    cr(&[
        r"MSH|^~\&|TESTLAB|LAB01|PRM|FAC01|20200304170212||ORU^R01^ORU_R01|CTRL0001|P|2.5.1",
        r"PID|1||000123^^^LAB01^MR||TEST^PATIENT||19800101|F",
        r"OBR|1||ACC000123|GLU^Glucose^L|||20200304160000",
        r"NTE|1||Line A\X000d\\X0A\Line B",
        r"NTE|2||Ratio 1\S\2 \T\ more\F\pipe\R\tilde\E\backslash",
        r"NTE|3||Adjacent:\X0D\\X0A\end",
    ])
}

#[test]
fn b01_four_digit_hex_cr_and_two_digit_hex_lf_decode_to_crlf_without_nul() {
    // B01: `\X000d\` is the bytes 00 0D; the NUL is dropped and no `\X` remains.
    let input = b01_input();
    let parsed = parse_ok(&input);
    let value = parsed.message.get("NTE(1)-3").unwrap();
    assert_eq!(value, "Line A\r\nLine B");
    assert!(!value.contains('\0'));
    assert!(!value.contains("\\X"));
}

#[test]
fn b01_delimiter_escapes_stay_inside_one_field() {
    // B01: NTE(2)-3 is one field, not split into components or repetitions.
    let input = b01_input();
    let parsed = parse_ok(&input);
    let nte2 = parsed.message.segments_named("NTE").nth(1).unwrap();
    let field = nte2.field(3);
    assert_eq!(field.repetitions().count(), 1);
    assert_eq!(field.repetition(1).components().count(), 1);
    assert_eq!(field.component(1).subcomponents().count(), 1);
    assert_eq!(field.value(), r"Ratio 1^2 & more|pipe~tilde\backslash");
    assert_eq!(nte2.field_count(), 3);
}

#[test]
fn b01_adjacent_hex_escapes_do_not_share_backslashes() {
    // B01: `\X0D\\X0A\` is two escapes, "\r\n", not an escaped backslash.
    let input = b01_input();
    let parsed = parse_ok(&input);
    assert_eq!(parsed.message.get("NTE(3)-3").unwrap(), "Adjacent:\r\nend");
}

#[test]
fn b01_re_encoding_the_decoded_values_parses_back_to_identical_values() {
    // B01: re-encoding escapes | ^ ~ \ & again; parsing the result gives identical values.
    let input = b01_input();
    let parsed = parse_ok(&input);
    let again = reencode(&parsed.message);
    assert!(again.contains(r"Ratio 1\S\2 \T\ more\F\pipe\R\tilde\E\backslash"));
    assert!(again.contains(r"Line A\X0D\\X0A\Line B"));
    let reparsed = parse_ok(&again);
    assert_eq!(leaf_values(&reparsed.message), leaf_values(&parsed.message));
}

// ---------------------------------------------------------------------------------------
// B03 — Custom encoding characters in MSH-2

const B03_A: &str = r"MSH|^~\|SENDER|FAC01|PRM|FAC01|20230101120000||ORU^R01|CTRL0005|P|2.3";
const B03_B: &str = r"MSH|^~&|EHR01|FAC01|||20191107134803||ORM^O01|CTRL0006|T|2.3";
const B03_C: &str =
    r"MSH|^~\&#|ELIMS|LAB01|PRM|FAC01|20230801120000||ORU^R01^ORU_R01|CTRL0007|P|2.7";

#[test]
fn b03_three_encoding_characters_declare_no_subcomponent_separator() {
    // B03 (a): `&` is data, OBX-5 is the single value.
    let input = cr(&[
        B03_A,
        "OBX|1|ST|NOTE^Pharmacy^L||Smith & Sons Pharmacy||||||F",
    ]);
    let parsed = parse_ok(&input);
    let message = &parsed.message;
    assert_eq!(message.delimiters().subcomponent(), None);
    let obx5 = message.segment("OBX").unwrap().field(5);
    assert_eq!(obx5.value(), "Smith & Sons Pharmacy");
    assert_eq!(obx5.component(1).subcomponents().count(), 1);
    assert_eq!(message.get("OBX-5.1.2").unwrap(), "");
}

#[test]
fn b03_without_an_escape_character_backslashes_are_literal() {
    // B03 (b): parses with MSH-9 = ORM^O01; a backslash in the data is literal.
    let input = cr(&[
        B03_B,
        "PID|1||000123^^^EHR01^MR||TEST^PATIENT^A||19600101|M",
        r"NTE|1||C:\temp\F\x & y",
    ]);
    let parsed = parse_ok(&input);
    let message = &parsed.message;
    assert_eq!(message.get_raw("MSH-9"), Some("ORM^O01"));
    assert_eq!(message.message_type(), "ORM");
    assert_eq!(message.trigger(), "O01");
    assert_eq!(message.delimiters().escape(), None);
    assert_eq!(message.get("PID-3.4").unwrap(), "EHR01");
    assert_eq!(message.get("PID-5.3").unwrap(), "A");
    let nte = message.segment("NTE").unwrap().field(3);
    assert_eq!(nte.text(), r"C:\temp\F\x & y");
    // `&` still separates subcomponents in this message.
    assert_eq!(nte.component(1).subcomponent(2).value(), " y");
}

#[test]
fn b03_without_an_escape_character_the_ack_carries_the_same_msh2() {
    // B03 (b): the generated ACK carries MSH-2 = `^~&`, and parses with it.
    let input = cr(&[
        B03_B,
        "PID|1||000123^^^EHR01^MR||TEST^PATIENT^A||19600101|M",
    ]);
    let parsed = parse_ok(&input);
    let reply = ack(
        &parsed.message,
        AckCode::AA,
        None,
        "20191107134804",
        "ACK0006",
    );
    assert!(
        reply.starts_with("MSH|^~&|||EHR01|FAC01|20191107134804||ACK^O01^ACK|ACK0006|T|2.3\r"),
        "{reply:?}"
    );
    let reparsed = parse_ok(&reply);
    assert_eq!(reparsed.message.delimiters().encoding_characters(), "^~&");
    let ack = reparsed.message.acknowledgment().unwrap();
    assert_eq!(ack.code, AckCode::AA);
    assert_eq!(ack.control_id, "CTRL0006");
}

#[test]
fn b03_five_encoding_characters_do_not_shift_msh3() {
    // B03 (c): MSH-3 = ELIMS and MSH-12 = 2.7; `#` is the truncation character.
    let input = cr(&[B03_C, "PID|1||000126^^^LAB01^MR||TEST^PATIENT||19600101|F"]);
    let parsed = parse_ok(&input);
    let message = &parsed.message;
    assert_eq!(message.get("MSH-2").unwrap(), r"^~\&#");
    assert_eq!(message.get("MSH-3").unwrap(), "ELIMS");
    assert_eq!(message.sending_application(), "ELIMS");
    assert_eq!(message.version(), "2.7");
    assert_eq!(message.structure(), "ORU_R01");
    assert_eq!(message.delimiters().truncation(), Some('#'));
    assert_eq!(message.get("PID-3.1").unwrap(), "000126");
}

#[test]
fn b03_every_ack_reuses_the_senders_delimiters() {
    // B03: in every case the ACK reuses the sender's delimiters.
    for (header, msh2) in [(B03_A, r"^~\"), (B03_B, "^~&"), (B03_C, r"^~\&#")] {
        let input = cr(&[header, "PID|1||000123^^^X^MR||TEST^PATIENT"]);
        let parsed = parse_ok(&input);
        let reply = ack(&parsed.message, AckCode::AE, None, "20230101120001", "A1");
        assert!(reply.starts_with(&format!("MSH|{msh2}|")), "{reply:?}");
        let reparsed = parse_ok(&reply);
        assert_eq!(
            reparsed.message.delimiters(),
            parsed.message.delimiters(),
            "{reply:?}"
        );
    }
}

#[test]
fn b03_entirely_custom_delimiters_are_read_from_msh1_and_msh2() {
    // B03: nothing is assumed, not even the field separator.
    let input = cr(&[
        r"MSH#$%\!#APP#FAC#PRM#FAC01#20230101120000##ADT$A01$ADT_A01#C1#P#2.5",
        r"PID#1##000123$$$FAC!1.2.3!ISO$MR%000999$$$OTHER$MR##TEST$PAT|ENT\S\X",
    ]);
    let parsed = parse_ok(&input);
    let message = &parsed.message;
    assert_eq!(message.delimiters().field(), '#');
    assert_eq!(message.get("MSH-1").unwrap(), "#");
    assert_eq!(message.get("MSH-2").unwrap(), r"$%\!");
    assert_eq!(message.message_type(), "ADT");
    assert_eq!(message.structure(), "ADT_A01");
    assert_eq!(message.get("PID-3.4.2").unwrap(), "1.2.3");
    assert_eq!(message.get("PID-3(2).1").unwrap(), "000999");
    // `|` and `^` are data here; `\S\` is this message's component separator `$`.
    assert_eq!(message.get("PID-5.2").unwrap(), "PAT|ENT$X");
    let reply = ack(&parsed.message, AckCode::AA, None, "20230101120001", "A2");
    assert!(
        reply.starts_with(r"MSH#$%\!#PRM#FAC01#APP#FAC#20230101120001##ACK$A01$ACK#A2#P#2.5"),
        "{reply:?}"
    );
}

// ---------------------------------------------------------------------------------------
// B04 — Segment separators: CR vs LF vs CRLF, embedded LF, trailing blank lines

const B04_A: &str = "MSH|^~\\&|LAB|L1|PRM|F1|20230101120000||ORU^R01|CTRL0008|P|2.5\rPID|1||000123^^^L1^MR||TEST^PATIENT\rNTE|1||first line\nsecond line\r";
const B04_B: &str = "MSH|^~\\&|LAB|L1|PRM|F1|20230101120000||ORU^R01|CTRL0009|P|2.5\nPID|1||000123^^^L1^MR||TEST^PATIENT\nNTE|1||text\n";
const B04_C: &str = "MSH|^~\\&|LAB|L1|PRM|F1|20230101120000||ORU^R01|CTRL0010|P|2.5\r\nPID|1||000123^^^L1^MR||TEST^PATIENT\r\n\r\n\r\n";

fn ids(input: &str) -> Vec<String> {
    parse_ok(input)
        .message
        .segments()
        .map(|s| s.id().to_owned())
        .collect()
}

#[test]
fn b04_a_line_feed_is_data_when_the_input_has_carriage_returns() {
    // B04 (a): three segments; NTE-3 keeps its line feed.
    let parsed = parse_ok(B04_A);
    assert_eq!(ids(B04_A), ["MSH", "PID", "NTE"]);
    assert_eq!(
        parsed.message.segment("NTE").unwrap().field(3).text(),
        "first line\nsecond line"
    );
    assert!(parsed.warnings.is_empty());
}

#[test]
fn b04_line_feed_only_input_is_split_on_line_feeds_with_a_warning() {
    // B04 (b): no CR anywhere: three segments and a recorded warning.
    let parsed = parse_ok(B04_B);
    assert_eq!(ids(B04_B), ["MSH", "PID", "NTE"]);
    assert_eq!(parsed.warnings, [ParseWarning::LfSegmentTerminators]);
    assert_eq!(parsed.message.get("NTE-3").unwrap(), "text");
    // Normalised to CR-separated segments.
    assert_eq!(parsed.message.to_string(), B04_B.replace('\n', "\r"));
    assert_eq!(parsed.message.control_id(), "CTRL0009");
}

#[test]
fn b04_crlf_and_trailing_blank_lines_are_ignored() {
    // B04 (c): two segments; trailing CR/LF and empty lines are ignored.
    let parsed = parse_ok(B04_C);
    assert_eq!(ids(B04_C), ["MSH", "PID"]);
    assert!(parsed.warnings.is_empty());
    assert_eq!(parsed.message.get("PID-5.2").unwrap(), "PATIENT");
    assert_eq!(parsed.message.version(), "2.5");
}

#[test]
fn b04_no_segment_name_ever_starts_with_whitespace() {
    // B04: whatever the terminators, every segment id is three letters or digits.
    for input in [
        B04_A,
        B04_B,
        B04_C,
        "\r\n\nMSH|^~\\&|A|B|C|D|1||ADT^A01|1|P|2.5\n\r\n\rPID|1\r\n\n\r",
    ] {
        for segment in parse_ok(input).message.segments() {
            assert!(
                segment.id().bytes().all(|b| b.is_ascii_alphanumeric()),
                "{:?} in {input:?}",
                segment.id()
            );
        }
    }
}

// ---------------------------------------------------------------------------------------
// B05 — Empty components and trailing empty fields must keep positions

const B05: [&str; 5] = [
    r"MSH|^~\&|PAS|HOSP01|PRM|FAC01|20180723115125||ADT^A08^ADT_A01|CTRL0011|P|2.3",
    r"PID|1||000123^^^HOSP01^MR||TEST^PATIENT||19700101|M",
    r"PV1|1|O|WARD1^^^FAC01^^^^^^^DEPT01|3|||000999^DOCTOR^TEST^^^^^^PROV^^^^ID||||||||||||||000456|SELF",
    r"ORC|RO|2001290459^CS|||A|F|^^^20171102^^R|||||I12007^DOCTOR, TEST|CHI||||E||",
    r"OBX|4|ST|078R^BENZODIAZEPINES^L|1|negative|ng/mL|^CUT-OFF 300 ng/mL|N||F",
];

#[test]
fn b05_empty_components_keep_the_positions_of_the_ones_after_them() {
    // B05: PV1-3.1/.4/.11, PV1-7.9/.13, ORC-7.4/.6, OBX-7.1/.2.
    let input = cr(&B05);
    let parsed = parse_ok(&input);
    let m = &parsed.message;
    assert_eq!(m.get("PV1-3.1").unwrap(), "WARD1");
    assert_eq!(m.get("PV1-3.4").unwrap(), "FAC01");
    assert_eq!(m.get("PV1-3.11").unwrap(), "DEPT01");
    assert_eq!(m.get("PV1-3.2").unwrap(), "");
    assert_eq!(m.get("PV1-7.9").unwrap(), "PROV");
    assert_eq!(m.get("PV1-7.13").unwrap(), "ID");
    assert_eq!(m.get("ORC-7.4").unwrap(), "20171102");
    assert_eq!(m.get("ORC-7.6").unwrap(), "R");
    assert_eq!(m.get("OBX-7.1").unwrap(), "");
    assert_eq!(m.get("OBX-7.2").unwrap(), "CUT-OFF 300 ng/mL");
    // The same through the segment API.
    let pv1 = m.segment("PV1").unwrap();
    assert_eq!(pv1.field(3).component(11).raw(), "DEPT01");
    assert_eq!(pv1.field(3).repetition(1).components().count(), 11);
    assert_eq!(pv1.field(21).raw(), "000456");
    assert_eq!(pv1.field(22).raw(), "SELF");
    assert_eq!(pv1.field(20).raw(), "");
}

#[test]
fn b05_a_split_that_keeps_empty_pieces_keeps_slm_fourth_and_depid_eleventh() {
    // B05: `723327^^^SLM^^^^^^^DEPID` is not `723327^SLM^DEPID`.
    let input = cr(&[B05[0], "PID|1||723327^^^SLM^^^^^^^DEPID||TEST^PATIENT"]);
    let parsed = parse_ok(&input);
    let pid3 = parsed.message.segment("PID").unwrap().field(3);
    assert_eq!(pid3.component(1).value(), "723327");
    assert_eq!(pid3.component(2).value(), "");
    assert_eq!(pid3.component(4).value(), "SLM");
    assert_eq!(pid3.component(11).value(), "DEPID");
    assert_eq!(pid3.component(12).value(), "");
    // A leading empty component is kept too (senaranya/HL7#143).
    let input = cr(&[B05[0], "PID|1||^^^SLM"]);
    assert_eq!(parse_ok(&input).message.get("PID-3.4").unwrap(), "SLM");
}

#[test]
fn b05_trailing_empty_fields_are_kept_and_never_rejected() {
    // B05: ORC ends with `||`: it parses, and its last fields exist, empty.
    let input = cr(&B05);
    let parsed = parse_ok(&input);
    let orc = parsed.message.segment("ORC").unwrap();
    assert_eq!(orc.field_count(), 19);
    assert_eq!(orc.field(17).raw(), "E");
    assert!(orc.field(18).is_empty());
    assert!(orc.field(19).is_empty());
    assert_eq!(orc.fields().count(), 19);
}

#[test]
fn b05_serialising_reproduces_every_segment_byte_for_byte() {
    // B05: the model serialises back to the input, trailing separators included; every
    // segment ends with CR, the last one too.
    let input = cr(&B05);
    let parsed = parse_ok(&input);
    assert_eq!(parsed.message.to_string(), input);
    let without_last_terminator = B05.join("\r");
    assert_eq!(
        parse_ok(&without_last_terminator).message.to_string(),
        input
    );
    for (segment, expected) in parsed.message.segments().zip(B05) {
        assert_eq!(segment.raw(), expected);
        // Joining the fields again gives the segment back.
        let rejoined: Vec<&str> = segment.fields().map(|f| f.raw()).collect();
        if segment.id() == "MSH" {
            // MSH-1 is the separator itself, between "MSH" and MSH-2.
            assert_eq!(
                format!("MSH{}{}", rejoined[0], rejoined[1..].join("|")),
                expected
            );
        } else {
            assert_eq!(format!("{}|{}", segment.id(), rejoined.join("|")), expected);
        }
    }
}

// ---------------------------------------------------------------------------------------
// B10 — A40 merges (parsing only: the merge rules belong to the importer)

#[test]
fn b10_merge_messages_parse_with_their_pid_and_mrg_identifiers() {
    let messages = [
        cr(&[
            r"MSH|^~\&|PAS|HOSP01|PRM|FAC01|20230501090000||ADT^A40^ADT_A39|CTRL0021|P|2.5",
            "EVN||20230501090000",
            "PID|||000123^^^HOSP01^MR||TEST^PATIENT^A||19700101|M",
            "MRG|000123^^^HOSP01^MR",
        ]),
        cr(&[
            r"MSH|^~\&|PAS|HOSP01|PRM|FAC01|20230501091000||ADT^A40^ADT_A39|CTRL0022|P|2.5",
            "EVN||20230501091000",
            "PID|||000200^^^HOSP01^MR||TEST^PATIENT^B||19700101|M",
            "MRG|000201^^^HOSP01^MR",
        ]),
        cr(&[
            r"MSH|^~\&|PAS|HOSP01|PRM|FAC01|20230501091005||ADT^A40^ADT_A39|CTRL0023|P|2.5",
            "EVN||20230501091005",
            "PID|||000201^^^HOSP01^MR||TEST^PATIENT^B||19700101|M",
            "MRG|000200^^^HOSP01^MR",
        ]),
        cr(&[
            r"MSH|^~\&|PAS|HOSP01|PRM|FAC01|20230502080000||ADT^A08^ADT_A01|CTRL0024|P|2.5",
            "PID|||000200^^^HOSP01^MR~000201^^^HOSP01^MR||TEST^PATIENT^B||19700101|M|||1 TEST ROAD^^TESTTOWN",
        ]),
    ];
    let expected = [
        ("A40", "CTRL0021", "000123", Some("000123")),
        ("A40", "CTRL0022", "000200", Some("000201")),
        ("A40", "CTRL0023", "000201", Some("000200")),
        ("A08", "CTRL0024", "000200", None),
    ];
    for (input, (trigger, control_id, pid3, mrg1)) in messages.iter().zip(expected) {
        let parsed = parse_ok(input);
        let m = &parsed.message;
        assert_eq!(m.message_type(), "ADT");
        assert_eq!(m.trigger(), trigger);
        assert_eq!(m.control_id(), control_id);
        assert_eq!(m.get("PID-3.1").unwrap(), pid3);
        assert_eq!(m.get("PID-3.4").unwrap(), "HOSP01");
        assert_eq!(m.get("PID-3.5").unwrap(), "MR");
        assert_eq!(m.get("MRG-1.1").as_deref(), mrg1);
    }
    // 1: the self-merge has MRG-1 equal to PID-3.
    let first = parse_ok(&messages[0]);
    assert_eq!(
        first.message.get_raw("MRG-1"),
        first.message.get_raw("PID-3")
    );
    assert_eq!(first.message.structure(), "ADT_A39");
    // 4: both identifiers are repetitions of PID-3.
    let fourth = parse_ok(&messages[3]);
    let pid3: Vec<String> = fourth
        .message
        .segment("PID")
        .unwrap()
        .field(3)
        .repetitions()
        .map(|r| r.value().into_owned())
        .collect();
    assert_eq!(pid3, ["000200", "000201"]);
    assert_eq!(fourth.message.get("PID-11.3").unwrap(), "TESTTOWN");
}

// ---------------------------------------------------------------------------------------
// B45 — Duplicate delivery, and control IDs reused (parsing only)

#[test]
fn b45_retransmissions_and_reused_control_ids_parse_as_separate_messages() {
    let one = [
        r"MSH|^~\&|LAB|LAB01|PRM|FAC01|20230701100000||ORU^R01^ORU_R01|CTRL0100|P|2.5.1",
        "PID|1||000123^^^LAB01^MR||TEST^PATIENT||19700101|M",
        "OBR|1||ACC000200|GLU^Glucose^L|||20230701093000",
        "OBX|1|NM|2345-7^Glucose^LN||101|mg/dL|||||F",
    ];
    let three = [
        r"MSH|^~\&|LAB|LAB01|PRM|FAC01|20230701100500||ORU^R01^ORU_R01|CTRL0100|P|2.5.1",
        "PID|1||000124^^^LAB01^MR||TEST^OTHER||19800101|F",
        "OBR|1||ACC000201|GLU^Glucose^L|||20230701094000",
        "OBX|1|NM|2345-7^Glucose^LN||88|mg/dL|||||F",
    ];
    let file = format!("{}{}{}", cr(&one), cr(&one), cr(&three));
    let pieces: Vec<&[u8]> = split_messages(file.as_bytes()).collect();
    assert_eq!(pieces.len(), 3);
    // 1 and 2 are byte-identical.
    assert_eq!(pieces[0], pieces[1]);
    let parsed: Vec<_> = pieces.iter().map(|p| parse_bytes(p).unwrap()).collect();
    for p in &parsed {
        assert_eq!(p.message.control_id(), "CTRL0100");
        assert_eq!(p.message.sending_application(), "LAB");
        assert_eq!(p.message.sending_facility(), "LAB01");
    }
    assert_eq!(parsed[0].message.get("OBX-5").unwrap(), "101");
    assert_eq!(parsed[2].message.get("PID-3.1").unwrap(), "000124");
    assert_eq!(parsed[2].message.get("OBX-5").unwrap(), "88");
    assert_eq!(parsed[2].message.get("OBX-6").unwrap(), "mg/dL");
    // Parsing the whole file as one message is refused with a pointer to split_messages.
    let error = parse(&file).unwrap_err().to_string();
    assert!(
        error.contains("segment 5 (MSH)") && error.contains("one by one"),
        "{error}"
    );
}

#[test]
fn b04_a_one_segment_message_with_line_feeds_serialises_to_the_same_message() {
    // B04 (found by fuzzing): CR present, so the LF is data; the serialised form must keep a
    // CR so that parsing it again does not split on the LF.
    let input = "MSH|^~\\&|A\nB|C|D|E|1||ADT^A01|1|P|2.5\r";
    let parsed = parse_ok(input);
    assert_eq!(parsed.message.segments().len(), 1);
    assert_eq!(parsed.message.get("MSH-3").unwrap(), "A\nB");
    let text = parsed.message.to_string();
    assert_eq!(text, input);
    assert_eq!(parse_ok(&text).message.to_string(), text);
}
