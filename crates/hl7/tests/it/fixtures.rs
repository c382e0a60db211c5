//! Every file in `shared/fixtures/hl7v2`, read from where it is (never copied into the crate).
//! The quirks they exercise are listed in `shared/fixtures/SOURCES.md`.

use std::path::{Path, PathBuf};

use rapport_hl7::{parse, parse_bytes, split_messages, AckCode, Charset, ParseError, ParseWarning};

use crate::support::{fixtures_dir, leaf_values, reencode};

fn read(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn all_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    let mut folders = vec![dir.to_path_buf()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "hl7") {
                files.push(path);
            }
        }
    }
    files.sort();
    files
}

/// The files that are meant to be rejected.
const INVALID: [&str; 2] = ["empty.hl7", "msh_present_but_missing_msh-9.hl7"];

/// The segments of a file the way chapter 2 and the B04 rule see them, computed without the
/// crate: for checking that serialising the model reproduces each segment.
fn expected_segments(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let terminator = if text.contains('\r') { '\r' } else { '\n' };
    text.split(terminator)
        .map(|s| {
            s.trim_start_matches('\n')
                .trim_end_matches([' ', '\t', '\n'])
        })
        .filter(|s| !s.is_empty())
        .filter(|s| !["FHS", "BHS", "BTS", "FTS"].contains(&&s[..3]))
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_fixture_file_parses_serialises_back_and_survives_re_encoding() {
    let Some(dir) = fixtures_dir() else { return };
    let files = all_files(&dir);
    assert!(
        files.len() >= 50,
        "only {} fixture files found",
        files.len()
    );
    let mut messages = 0;
    for path in &files {
        let name = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let pieces: Vec<&[u8]> = split_messages(&bytes).collect();
        if INVALID.contains(&name) {
            continue;
        }
        assert!(!pieces.is_empty(), "{name}: no message");
        let mut serialised = Vec::new();
        for piece in pieces {
            let parsed = parse_bytes(piece).unwrap_or_else(|e| panic!("{name}: {e}"));
            let message = &parsed.message;
            assert!(
                message.is_borrowed(),
                "{name}: UTF-8 input must be borrowed"
            );
            assert!(!message.message_type().is_empty(), "{name}");
            // B05: every segment is reproduced byte for byte.
            let text = message.to_string();
            assert!(text.ends_with('\r'), "{name}");
            serialised.extend(text.split_terminator('\r').map(str::to_owned));
            // B01: escaping the decoded values and parsing again gives the same values.
            let again = reencode(message);
            let reparsed = parse(&again).unwrap_or_else(|e| panic!("{name} re-encoded: {e}"));
            assert_eq!(
                leaf_values(&reparsed.message),
                leaf_values(message),
                "{name}"
            );
            messages += 1;
        }
        assert_eq!(serialised, expected_segments(&bytes), "{name}");
    }
    assert!(messages >= 58, "{messages} messages");
}

#[test]
fn fixture_headers_give_type_trigger_control_id_version_and_segment_count() {
    let Some(dir) = fixtures_dir() else { return };
    // (file, MSH-9.1, MSH-9.2, MSH-9.3, MSH-10, MSH-12.1, segments), checked against the
    // files by hand and against SOURCES.md.
    let expected = [
        ("cdc-trusted-intermediary/001_ADT_A01.hl7", "ADT", "A01", "ADT_A01", "MSG00001", "2.8", 5),
        ("cdc-trusted-intermediary/001_Natus_ACK.hl7", "ACK", "", "", "A0A173B79-D7AC-444F-99E7-C96B4A68B188", "2.5.1", 2),
        ("cdc-trusted-intermediary/002_TX_ORU_R01.hl7", "ORU", "R01", "ORU_R01", "DSHS123456789012345", "2.5.1", 55),
        ("cdc-trusted-intermediary/004_Oracle_ORU_R01.hl7", "ORU", "R01", "", "20230317-29887.E.106214", "2.3", 15),
        ("cdc-trusted-intermediary/005_MN_ADT_A01.hl7", "ADT", "A01", "", "407750281", "2.3", 7),
        ("cdc-trusted-intermediary/007_CA_ORU_R01_CDPH_produced_UCSD2024-07-11-16-02-17-749_0_initial_message.hl7", "ORU", "R01", "ORU_R01", "243747623", "2.5.1", 129),
        ("cdc-trusted-intermediary/008_ORU_R01_micro_character_encoding.hl7", "ORU", "R01", "ORU_R01", "008", "2.5.1", 6),
        ("fhir-converter/ADT-A01-01.hl7", "ADT", "A01", "ADT_A01", "MSG00001", "2.8", 24),
        ("fhir-converter/ADT-A40-01.hl7", "ADT", "A40", "ADT_A40", "8919-40", "2.8", 4),
        ("fhir-converter/ADT-A40-02.hl7", "ADT", "A40", "ADT_A40", "8919-40", "2.8", 6),
        ("fhir-converter/ADT01-23.hl7", "ADT", "A01", "", "599102", "2.3", 12),
        ("fhir-converter/ADT04-251.hl7", "ADT", "A04", "", "1270326314", "2.3", 4),
        ("fhir-converter/LRI_2.0-NG_CBC_Typ_Message.hl7", "ORU", "R01", "ORU_R01", "NIST-LRI-NG-002.00", "2.5.1", 33),
        ("fhir-converter/MDM-T02-03.hl7", "MDM", "T02", "MDM_T02", "112", "2.3", 36),
        ("fhir-converter/OML-O21-01.hl7", "OML", "O21", "OML_O21", "MSG00019", "2.6", 23),
        ("fhir-converter/PC1-Problem-Add-v2.3.1.hl7", "PPR", "PC1", "", "331", "2.3.1", 3),
        ("fhir-converter/SIU-S12-02.hl7", "SIU", "S12", "SIU_S12", "MSG00012", "2.8", 28),
        ("fhir-converter/VXU.hl7", "VXU", "V04", "VXU_V04", "NIST-IZ-AD-2.1_Send_V04_Z22", "2.5.1", 14),
        ("pipehat/sample-v2.3-adt-a01-1.hl7", "ADT", "A01", "ADT_A01", "01052901", "2.5", 8),
        ("pipehat/sample-v2.3-oru-r01-3.hl7", "ORU", "R01", "", "P1055\u{2013}0000047907", "2.3", 126),
        ("pipehat/sample-v2.3.1-ack-1.hl7", "ACK", "", "", "1125342816253.100000055", "2.3.1", 3),
        ("pipehat/sample-v2.3.1-oru-r01-1.hl7", "ORU", "R01", "", "XX02021630854-1539", "2.3.1", 2),
        ("pipehat/sample-v2.4-oru-r01-1.hl7", "ADT", "A04", "ADT_A01", "000001", "2.4", 15),
        ("pipehat/sample-v2.5.1-rsp-k11-2.hl7", "RSP", "K11", "RSP_K11", "1320446034070.100000002", "2.5.1", 13),
        ("simhospital/hl7.message.2.hl7", "ORU", "R01", "", "2", "2.3", 13),
    ];
    for (name, kind, trigger, structure, control_id, version, segments) in expected {
        let bytes = read(&dir, name);
        // One message per file; split first, as an importer does, because one of them ends
        // with an FTS trailer.
        let pieces: Vec<&[u8]> = split_messages(&bytes).collect();
        assert_eq!(pieces.len(), 1, "{name}");
        let parsed = parse_bytes(pieces[0]).unwrap_or_else(|e| panic!("{name}: {e}"));
        let m = &parsed.message;
        assert_eq!(
            (
                &*m.message_type(),
                &*m.trigger(),
                &*m.structure(),
                &*m.control_id(),
                &*m.version(),
                m.segments().len()
            ),
            (kind, trigger, structure, control_id, version, segments),
            "{name}"
        );
    }
}

#[test]
fn line_endings_of_the_fixture_families_are_recognised() {
    let Some(dir) = fixtures_dir() else { return };
    // CR only (pipehat): no warning.
    let cr = read(&dir, "pipehat/sample-v2.4-oru-r01-2.hl7");
    assert!(parse_bytes(&cr).unwrap().warnings.is_empty());
    // LF only (fhir-converter, simhospital, most CDC): a warning.
    for name in [
        "fhir-converter/ADT-A01-02.hl7",
        "simhospital/hl7.message.1.hl7",
    ] {
        let lf = read(&dir, name);
        assert_eq!(
            parse_bytes(&lf).unwrap().warnings,
            [ParseWarning::LfSegmentTerminators],
            "{name}"
        );
    }
    // CRLF (the CDC CA file): no warning, and no segment keeps a LF.
    let crlf = read(&dir, "cdc-trusted-intermediary/007_CA_ORU_R01_CDPH_produced_UCSD2024-07-11-16-02-17-749_0_initial_message.hl7");
    let parsed = parse_bytes(&crlf).unwrap();
    assert!(parsed.warnings.is_empty());
    assert!(parsed.message.segments().all(|s| !s.raw().contains('\n')));
}

#[test]
fn non_ascii_text_in_the_fixtures_is_decoded_right() {
    let Some(dir) = fixtures_dir() else { return };
    // µ in OBX-6, no MSH-18.
    let micro = read(
        &dir,
        "cdc-trusted-intermediary/008_ORU_R01_micro_character_encoding.hl7",
    );
    let parsed = parse_bytes(&micro).unwrap();
    assert_eq!(parsed.message.get("OBX-6").unwrap(), "µmol/L");
    assert_eq!(parsed.message.get("OBX-5").unwrap(), "0.5");
    assert_eq!(parsed.message.charset(), Charset::Utf8);
    assert!(parsed
        .warnings
        .iter()
        .all(|w| *w != ParseWarning::DecodedAsWindows1252));
    // The CRLF file has µmol/L in 43 OBX-6 and `\.br\` line breaks in its narrative.
    let crlf = read(&dir, "cdc-trusted-intermediary/007_CA_ORU_R01_CDPH_produced_UCSD2024-07-11-16-02-17-749_0_initial_message.hl7");
    let parsed = parse_bytes(&crlf).unwrap();
    let micro_units = parsed
        .message
        .segments_named("OBX")
        .filter(|obx| obx.field(6).value().starts_with("µmol/L"))
        .count();
    // 41 `µmol/L` and 2 `µmol/L/h`.
    assert_eq!(micro_units, 43);
    let narrative = parsed
        .message
        .segments_named("OBX")
        .find(|obx| obx.field(2).raw() == "TX")
        .unwrap()
        .field(5)
        .text();
    assert!(
        narrative.starts_with("ACTION REQUIRED\n\nNBS Testing Lab"),
        "{narrative:.40}"
    );
    assert!(!narrative.contains("\\.br\\"));
    // Typographic quotes in a TX NTE of the Texas file.
    let texas = read(&dir, "cdc-trusted-intermediary/002_TX_ORU_R01.hl7");
    let parsed = parse_bytes(&texas).unwrap();
    assert!(parsed
        .message
        .segments_named("NTE")
        .any(|nte| nte.field(3).text().contains("\u{2018}Normal\u{2019}")));
    // ’ next to a `\T\` escape, in the second repetition of PID-11.
    let pickles = read(&dir, "pipehat/sample-v2.3-adt-a01-1.hl7");
    let parsed = parse_bytes(&pickles).unwrap();
    assert_eq!(
        parsed.message.get("PID-11(2).1").unwrap(),
        "NICKELL\u{2019}S PICKLES & DILL"
    );
    assert_eq!(parsed.message.get("PID-11(1).3").unwrap(), "BIRMINGHAM");
    assert_eq!(parsed.message.get("PID-5.1").unwrap(), "KLEINSAMPLE");
    // En dash in MSH-10 and in codes.
    let dashes = read(&dir, "pipehat/sample-v2.3-oru-r01-3.hl7");
    let parsed = parse_bytes(split_messages(&dashes).next().unwrap()).unwrap();
    assert_eq!(parsed.message.get("OBX(1)-3.1").unwrap(), "0135\u{2013}4");
    assert_eq!(parsed.message.get("PID-7.1").unwrap(), "01/10/1948");
    assert_eq!(parsed.message.get("PID-7.2").unwrap(), "53 Y");
}

#[test]
fn bom_and_trailing_spaces_of_adt01_23_are_tolerated() {
    let Some(dir) = fixtures_dir() else { return };
    let bytes = read(&dir, "fhir-converter/ADT01-23.hl7");
    assert!(bytes.starts_with(b"\xEF\xBB\xBF"));
    let parsed = parse_bytes(&bytes).unwrap();
    let m = &parsed.message;
    assert_eq!(m.segments().next().unwrap().id(), "MSH");
    assert_eq!(m.get("PID-5").unwrap(), "DUCK");
    assert_eq!(m.get("PID-5.2").unwrap(), "DONALD");
    // `EVN|A01|20050110045502+0700||||| ` : the trailing space is dropped, the fields kept.
    let evn = m.segment("EVN").unwrap();
    assert_eq!(evn.raw(), "EVN|A01|20050110045502+0700|||||");
    assert_eq!(evn.field_count(), 7);
    // A space inside a value stays.
    assert_eq!(m.get("DG1-3.2").unwrap(), "OSTEOARTHROS NOS-L/LEG ");
    // `#` is data in a message that declares no truncation character.
    assert_eq!(m.get("GT1-16").unwrap(), "#Cartoon Ducks Inc");
}

#[test]
fn msh12_with_components_gives_the_version_in_its_first() {
    let Some(dir) = fixtures_dir() else { return };
    let bytes = read(&dir, "pipehat/sample-v2.3.1-oru-r01-1.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    let m = &parsed.message;
    assert_eq!(m.get_raw("MSH-12"), Some("2.3.1^AUS&&ISO^AS4700.2&&L"));
    assert_eq!(m.version(), "2.3.1");
    assert_eq!(m.get("MSH-12.2.1").unwrap(), "AUS");
    assert_eq!(m.get("MSH-12.2.3").unwrap(), "ISO");
    assert_eq!(m.get("MSH-12.3.3").unwrap(), "L");
    assert_eq!(m.get("MSH-17").unwrap(), "AUS");
    assert_eq!(m.get("PID-11(2).1").unwrap(), "2 Test Street");
    assert_eq!(m.get("PID-11(2).4").unwrap(), "ACT");
}

#[test]
fn acks_in_the_fixtures_are_read() {
    let Some(dir) = fixtures_dir() else { return };
    // `ACK^`: an empty trigger is fine.
    let bytes = read(&dir, "pipehat/sample-v2.3.1-ack-1.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get_raw("MSH-9"), Some("ACK^"));
    assert_eq!(parsed.message.get_raw("MSH-3"), Some("^^"));
    assert_eq!(parsed.message.get("MSH-4").unwrap(), "DOE");
    let ack = parsed.message.acknowledgment().unwrap();
    assert_eq!(ack.code, AckCode::AE);
    assert_eq!(ack.control_id, "00000001");
    assert_eq!(ack.text, "Patient id was not found, must be of type 'MR'");
    assert_eq!(parsed.message.get("ERR-1.3").unwrap(), "3");
    // MSH-9 `ACK` alone.
    let bytes = read(&dir, "cdc-trusted-intermediary/001_Natus_ACK.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    let ack = parsed.message.acknowledgment().unwrap();
    assert_eq!(ack.code, AckCode::AA);
    // Upstream's MSA-2 lacks the first character of its MSH-10; kept as sent.
    assert_eq!(ack.control_id, "0A173B79-D7AC-444F-99E7-C96B4A68B188");
    assert_eq!(parsed.message.processing_id(), "D");
}

#[test]
fn the_query_response_has_three_patients() {
    let Some(dir) = fixtures_dir() else { return };
    let bytes = read(&dir, "pipehat/sample-v2.5.1-rsp-k11-2.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    let m = &parsed.message;
    let patients: Vec<(String, String, String)> = m
        .segments_named("PID")
        .map(|pid| {
            (
                pid.field(1).value().into_owned(),
                pid.field(3).value().into_owned(),
                pid.field(5).value().into_owned(),
            )
        })
        .collect();
    assert_eq!(
        patients,
        [
            ("1".into(), "25".into(), "FLOYD".into()),
            ("2".into(), "85".into(), "HENRY".into()),
            ("3".into(), "26".into(), "KENNEDY".into()),
        ]
    );
    assert_eq!(m.get("PID(3)-5.3").unwrap(), "FITZGERALD");
    assert_eq!(m.get("NK1(2)-2.2").unwrap(), "MARY");
    assert_eq!(m.segments_named("NK1").count(), 3);
    assert_eq!(m.acknowledgment().unwrap().control_id, "19970522GA40");
    assert_eq!(m.get("MSH-21.1").unwrap(), "Z31");
}

#[test]
fn the_cdc_batch_file_splits_into_its_message_without_trailers() {
    let Some(dir) = fixtures_dir() else { return };
    let bytes = read(
        &dir,
        "cdc-trusted-intermediary/005_AL_ORU_R01_NBS_Simplified_0_initial_message.hl7",
    );
    let mut split = split_messages(&bytes);
    let fhs = split.file_header().expect("FHS");
    assert_eq!(fhs.id(), "FHS");
    assert_eq!(fhs.field(2), "^~\\&");
    assert_eq!(fhs.field(7), "202106221314-0400");
    assert_eq!(split.batch_header().expect("BHS").field(5), "0.0.0.0.1");
    let messages: Vec<&[u8]> = split.by_ref().collect();
    assert_eq!(messages.len(), 1);
    assert!(split.batch_trailer().is_none() && split.file_trailer().is_none());
    let parsed = parse_bytes(messages[0]).unwrap();
    let m = &parsed.message;
    assert_eq!(m.segments().len(), 12);
    assert_eq!(m.character_set(), "UNICODE UTF-8");
    assert_eq!(m.charset(), Charset::Utf8);
    assert_eq!(m.control_id(), "858625");
    assert_eq!(m.sending_facility(), "Any facility USA");
    assert_eq!(m.get("MSH-4.2").unwrap(), "00D1063590");
    assert_eq!(m.segments_named("OBR").count(), 5);
    assert_eq!(m.get("PID-5.1").unwrap(), "Walker");
    assert_eq!(m.get("PID-3.4.2").unwrap(), "00D1063590");
    // The whole file given to the parser is refused with a pointer to split_messages.
    let error = parse_bytes(&bytes).unwrap_err();
    assert_eq!(error, ParseError::DoesNotStartWithMsh { batch: true });
    assert!(error.to_string().contains("one by one"));
}

#[test]
fn a_file_trailer_without_a_file_header_is_split_off() {
    let Some(dir) = fixtures_dir() else { return };
    // pipehat's sample-v2.3-oru-r01-3 ends with `FTS|1|END OF FILE` and has no FHS.
    let bytes = read(&dir, "pipehat/sample-v2.3-oru-r01-3.hl7");
    let error = parse_bytes(&bytes).unwrap_err();
    assert_eq!(
        error,
        ParseError::UnexpectedHeader {
            segment: 127,
            id: "FTS".into()
        }
    );
    let mut split = split_messages(&bytes);
    assert!(split.file_header().is_none());
    let message = split.next().unwrap();
    // SOURCES.md counts 127 segments: 126 of the message and the FTS.
    assert_eq!(parse_bytes(message).unwrap().message.segments().len(), 126);
    assert_eq!(split.next(), None);
    let trailer = split.file_trailer().expect("FTS");
    assert_eq!(trailer.field(1), "1");
    assert_eq!(trailer.field(2), "END OF FILE");
}

#[test]
fn the_empty_file_and_the_file_without_msh9_are_rejected_clearly() {
    let Some(dir) = fixtures_dir() else { return };
    let empty = read(&dir, "cdc-trusted-intermediary/empty.hl7");
    let error = parse_bytes(&empty).unwrap_err();
    assert_eq!(error, ParseError::Empty);
    assert_eq!(error.to_string(), "empty input");
    assert_eq!(split_messages(&empty).count(), 0);

    let no_type = read(
        &dir,
        "cdc-trusted-intermediary/msh_present_but_missing_msh-9.hl7",
    );
    let error = parse_bytes(&no_type).unwrap_err();
    assert_eq!(error, ParseError::MessageTypeMissing);
    assert_eq!(error.to_string(), "MSH-9 message type is missing");
}

#[test]
fn other_fixture_values_are_where_hl7_puts_them() {
    let Some(dir) = fixtures_dir() else { return };
    // Leading zero kept, `>50` reference range is data.
    let bytes = read(
        &dir,
        "cdc-trusted-intermediary/004_CA_ORU_R01_leading_zeroes.hl7",
    );
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get("OBX-5").unwrap(), "05.100");
    assert_eq!(parsed.message.get("OBX-7").unwrap(), ">50");
    // `10\S\9/L` is the unit 10^9/L.
    let bytes = read(&dir, "pipehat/sample-v2.3-oru-r01-2.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get("OBX(1)-6").unwrap(), "10^9/L");
    assert_eq!(
        parsed.message.get("OBX(1)-3.2").unwrap(),
        "White Blood Count (WBC)"
    );
    // Two merges in one A40.
    let bytes = read(&dir, "fhir-converter/ADT-A40-02.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.segments_named("MRG").count(), 2);
    // The HAPI register: four NK1, the third empty; `""` is the HL7 null.
    let bytes = read(&dir, "pipehat/sample-v2.4-oru-r01-1.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    let nk1: Vec<_> = parsed.message.segments_named("NK1").collect();
    assert_eq!(nk1.len(), 4);
    assert_eq!(nk1[2].raw(), "NK1|3");
    assert_eq!(nk1[2].field(2).value(), "");
    assert!(nk1[0].field(4).component(6).is_null());
    assert_eq!(parsed.message.get("PID-3(2).1").unwrap(), "371-66-9256");
    assert_eq!(parsed.message.get("PID-3(2).5").unwrap(), "SS");
    // MDM: 29 OBX of type TX; MSH-18 ASCII.
    let bytes = read(&dir, "fhir-converter/MDM-T02-03.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.segments_named("OBX").count(), 29);
    assert_eq!(parsed.message.charset(), Charset::Ascii);
    assert_eq!(parsed.message.character_set(), "ASCII");
    // Simulated Hospital: NHS number in the second repetition of PID-3.
    let bytes = read(&dir, "simhospital/hl7.message.4.hl7");
    let parsed = parse_bytes(&bytes).unwrap();
    assert_eq!(parsed.message.get("PID-3(2).4").unwrap(), "NHSNBR");
    assert_eq!(parsed.message.get_raw("OBX(2)-6"), Some("\"\""));
    assert!(parsed.message.segment("OBX").is_some());
    assert!(parsed
        .message
        .segments_named("OBX")
        .nth(1)
        .unwrap()
        .field(6)
        .is_null());
}
