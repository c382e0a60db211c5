//! Building acknowledgments for received messages and reading received ones (chapter 2.9;
//! hard cases B03, B08, B10).

use rapport_hl7::{ack, AckCode, AckError, ErrorCode, ParseError};

use crate::support::{cr, parse_ok};

const B08_INBOUND: [&str; 2] = [
    r"MSH|^~\&|ADT|HOSP01|PRM|FAC01|20230401120000||ADT^A01^ADT_A01|CTRL0018|P|2.5|||AL|NE",
    "PID|1||000123^^^HOSP01^MR||TEST^PATIENT||19700101|M",
];

#[test]
fn b08_an_internal_error_is_answered_with_ae_and_err_207() {
    // B08: with the store down, `MSA|AE|CTRL0018` plus `ERR|||207^Application internal error^HL70357|E`.
    let input = cr(&B08_INBOUND);
    let parsed = parse_ok(&input);
    let error = AckError::new(ErrorCode::ApplicationInternalError);
    let reply = ack(
        &parsed.message,
        AckCode::AE,
        Some(&error),
        "20230401120001",
        "PRM0001",
    );
    assert_eq!(
        reply,
        "MSH|^~\\&|PRM|FAC01|ADT|HOSP01|20230401120001||ACK^A01^ACK|PRM0001|P|2.5\r\
         MSA|AE|CTRL0018\r\
         ERR|||207^Application internal error^HL70357|E\r"
    );
}

#[test]
fn b08_a_business_rejection_points_err2_at_the_field() {
    // B08: AR or AE with ERR-2 pointing at the field, for example `PID^1^3`.
    let input = cr(&B08_INBOUND);
    let parsed = parse_ok(&input);
    let error = AckError::new(ErrorCode::UnknownKeyIdentifier)
        .at("PID", 1, 3)
        .with_text("Patient identifier not known");
    let reply = ack(
        &parsed.message,
        AckCode::AR,
        Some(&error),
        "20230401120001",
        "PRM0002",
    );
    let reparsed = parse_ok(&reply);
    let m = &reparsed.message;
    assert_eq!(m.get_raw("ERR-2"), Some("PID^1^3"));
    assert_eq!(
        m.get_raw("ERR-3"),
        Some("204^Unknown key identifier^HL70357")
    );
    assert_eq!(m.get("ERR-4").unwrap(), "E");
    assert_eq!(m.get("ERR-8").unwrap(), "Patient identifier not known");
    let ack = m.acknowledgment().unwrap();
    assert_eq!(ack.code, AckCode::AR);
    assert_eq!(ack.control_id, "CTRL0018");
    // A component goes in ERL-5, after an empty field repetition.
    let mut at_component = error.clone();
    at_component.component = Some(4);
    let reply = rapport_hl7::ack(&parsed.message, AckCode::AE, Some(&at_component), "1", "2");
    assert_eq!(
        parse_ok(&reply).message.get_raw("ERR-2"),
        Some("PID^1^3^^4")
    );
}

#[test]
fn b08_commit_acks_from_downstream_are_valid_acceptances() {
    // B08: an inbound `CA` counts as commit-accept; CE and CR are read too.
    for (code, accept) in [
        ("CA", true),
        ("CE", false),
        ("CR", false),
        ("AA", true),
        ("AE", false),
        ("AR", false),
    ] {
        let input = cr(&[
            r"MSH|^~\&|DOWN|FAC02|PRM|FAC01|20230401120005||ACK|ACK0002|P|2.5",
            &format!("MSA|{code}|CTRL0019"),
        ]);
        let parsed = parse_ok(&input);
        assert_eq!(parsed.message.message_type(), "ACK");
        let ack = parsed.message.acknowledgment().unwrap();
        assert_eq!(ack.code.as_str(), code);
        assert_eq!(ack.code.is_accept(), accept, "{code}");
        assert_eq!(ack.code.is_commit(), code.starts_with('C'));
        assert_eq!(ack.control_id, "CTRL0019");
    }
}

#[test]
fn an_unknown_acknowledgment_code_or_missing_msa_is_an_error() {
    let input = cr(&[r"MSH|^~\&|D|F|P|F|1||ACK|A1|P|2.5", "MSA|OK|C1"]);
    let error = parse_ok(&input).message.acknowledgment().unwrap_err();
    assert_eq!(
        error.to_string(),
        "segment 2 (MSA), field 1: acknowledgment code is not one of AA, AE, AR, CA, CE, CR"
    );
    let input = cr(&[r"MSH|^~\&|D|F|P|F|1||ACK|A1|P|2.5"]);
    assert_eq!(
        parse_ok(&input).message.acknowledgment().unwrap_err(),
        ParseError::MissingSegment { id: "MSA" }
    );
}

#[test]
fn b10_a_self_merge_is_refused_with_err_205_at_mrg_1() {
    // B10 (1): `ERR||MRG^1^1|205|E` (with the table text in ERR-3).
    let input = cr(&[
        r"MSH|^~\&|PAS|HOSP01|PRM|FAC01|20230501090000||ADT^A40^ADT_A39|CTRL0021|P|2.5",
        "EVN||20230501090000",
        "PID|||000123^^^HOSP01^MR||TEST^PATIENT^A||19700101|M",
        "MRG|000123^^^HOSP01^MR",
    ]);
    let parsed = parse_ok(&input);
    let error = AckError::new(ErrorCode::DuplicateKeyIdentifier).at("MRG", 1, 1);
    let reply = ack(
        &parsed.message,
        AckCode::AR,
        Some(&error),
        "20230501090001",
        "R1",
    );
    assert!(reply.contains("\rMSA|AR|CTRL0021\r"));
    assert!(
        reply.ends_with("\rERR||MRG^1^1|205^Duplicate key identifier^HL70357|E\r"),
        "{reply:?}"
    );
    assert!(reply.contains("|ACK^A40^ACK|R1|P|2.5\r"));
}

#[test]
fn before_v25_the_error_goes_in_err1_and_the_text_in_msa3() {
    let input = cr(&[
        r"MSH|^~\&|LAB|L1|PRM|F1|20230101||ORU^R01|C9|T|2.3.1",
        "PID|1||123",
    ]);
    let parsed = parse_ok(&input);
    let error = AckError::new(ErrorCode::RequiredFieldMissing)
        .at("PID", 1, 5)
        .with_text("Name | missing");
    let reply = ack(&parsed.message, AckCode::AE, Some(&error), "20230101", "A9");
    assert_eq!(
        reply,
        "MSH|^~\\&|PRM|F1|LAB|L1|20230101||ACK^R01^ACK|A9|T|2.3.1\r\
         MSA|AE|C9|Name \\F\\ missing\r\
         ERR|PID^1^5^101&Required field missing&HL70357\r"
    );
    let reparsed = parse_ok(&reply);
    assert_eq!(
        reparsed.message.acknowledgment().unwrap().text,
        "Name | missing"
    );
    assert_eq!(reparsed.message.get("ERR-1.4.1").unwrap(), "101");
}

#[test]
fn the_ack_copies_composite_msh_fields_and_the_character_set() {
    let input = cr(&[
        r"MSH|^~\&|SND^1.2.3^ISO|SF^4.5^ISO|RCV^6.7^ISO|RF|20240101||ORU^R01^ORU_R01|C1|P^T|2.3.1^AUS&&ISO|||AL|NE||8859/1",
        "PID|1",
    ]);
    let parsed = parse_ok(&input);
    let reply = ack(&parsed.message, AckCode::CA, None, "20240101", "X|1");
    assert_eq!(
        reply,
        "MSH|^~\\&|RCV^6.7^ISO|RF|SND^1.2.3^ISO|SF^4.5^ISO|20240101||ACK^R01^ACK|X\\F\\1|P^T|2.3.1^AUS&&ISO||||||8859/1\r\
         MSA|CA|C1\r"
    );
    let reparsed = parse_ok(&reply);
    assert_eq!(reparsed.message.control_id(), "X|1");
    assert_eq!(reparsed.message.character_set(), "8859/1");
    // An ACK with an empty trigger (`ACK^`) is answered with plain `ACK`.
    let input = cr(&[r"MSH|^~\&|A|B|C|D|1||ACK^|C2|P|2.5", "MSA|AA|C1"]);
    let reply = ack(&parse_ok(&input).message, AckCode::AA, None, "1", "C3");
    assert!(reply.contains("||ACK|C3|P|2.5\r"), "{reply:?}");
}
