//! HL7 v2 messages into the store (rapport_ingest::hl7): acknowledgements, resends, merges, and
//! a store that fails. Each test cites the hard case it holds to (shared/hard-cases.md).

use rapport_fhir::query::{Clause, Query};
use rapport_hl7::map::MapOptions;
use rapport_hl7::AckCode;
use rapport_ingest::hl7::{receive, Hl7Input, Hl7Receipt};
use rapport_store::Store;

use crate::helpers::{store, NOW};

fn input(text: &str) -> Hl7Input {
    Hl7Input {
        raw: text.replace('\n', "\r").into_bytes(),
        feed: "test feed".into(),
    }
}

fn one(store: &dyn Store, text: &str) -> Hl7Receipt {
    receive(store, &[input(text)], NOW, &MapOptions::default())
        .pop()
        .unwrap()
}

fn ack_segments(r: &Hl7Receipt) -> Vec<String> {
    String::from_utf8(r.ack.clone())
        .unwrap()
        .split('\r')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn patients(store: &dyn Store, system: &str, value: &str) -> Vec<String> {
    store
        .search_ids(
            &Query {
                resource_type: "Patient".into(),
                clauses: vec![Clause::Token {
                    param: "identifier",
                    system: Some(system.into()),
                    code: value.into(),
                }],
            },
            10,
        )
        .unwrap()
}

const ORU_1: &str = "MSH|^~\\&|LAB|LAB01|PRM|FAC01|20230701100000||ORU^R01^ORU_R01|CTRL0100|P|2.5.1
PID|1||000123^^^LAB01^MR||TEST^PATIENT||19700101|M
OBR|1||ACC000200|GLU^Glucose^L|||20230701093000
OBX|1|NM|2345-7^Glucose^LN||101|mg/dL|||||F
";

const ORU_3: &str = "MSH|^~\\&|LAB|LAB01|PRM|FAC01|20230701100500||ORU^R01^ORU_R01|CTRL0100|P|2.5.1
PID|1||000124^^^LAB01^MR||TEST^OTHER||19800101|F
OBR|1||ACC000201|GLU^Glucose^L|||20230701094000
OBX|1|NM|2345-7^Glucose^LN||88|mg/dL|||||F
";

#[test]
fn b45_a_resend_is_acknowledged_again_and_a_reused_control_id_is_applied_and_flagged() {
    let db = store();
    let s = db.store.as_ref();
    let first = one(s, ORU_1);
    assert_eq!(first.code, AckCode::AA, "{:?}", first.detail);
    assert!(ack_segments(&first).contains(&"MSA|AA|CTRL0100".to_owned()));
    let counts = s.counts_by_type().unwrap();
    assert_eq!(counts.get("Observation"), Some(&1), "{counts:?}");
    // 2: byte-identical: AA echoing CTRL0100, no second Observation.
    let second = one(s, ORU_1);
    assert_eq!(second.code, AckCode::AA);
    assert!(second.duplicate);
    assert!(ack_segments(&second).contains(&"MSA|AA|CTRL0100".to_owned()));
    assert_eq!(s.counts_by_type().unwrap(), counts);
    // 3: the same control id for another patient and result: processed, stored, flagged.
    let third = one(s, ORU_3);
    assert_eq!(third.code, AckCode::AA);
    assert!(!third.duplicate);
    assert!(
        third
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("control id reused with different content")),
        "{:?}",
        third.detail
    );
    assert_eq!(s.counts_by_type().unwrap().get("Observation"), Some(&2));
    let recorded = s.hl7_messages(None, None, 10).unwrap();
    assert_eq!(recorded.len(), 2, "the resend is not recorded twice");
}

#[test]
fn b08_with_the_store_down_there_is_no_aa_but_ae_207() {
    let db = store();
    // A store whose writes fail: the raw store is dropped behind a closed stand-in.
    let closed = rapport_store::testing::closed();
    let r = receive(
        closed.as_ref(),
        &[input(ORU_1)],
        NOW,
        &MapOptions::default(),
    );
    assert_eq!(r[0].code, AckCode::AE);
    let segs = ack_segments(&r[0]);
    assert!(segs.contains(&"MSA|AE|CTRL0100".to_owned()), "{segs:?}");
    assert!(
        segs.iter()
            .any(|s| s.starts_with("ERR|") && s.contains("207^Application internal error^HL70357")),
        "{segs:?}"
    );
    drop(db);
}

#[test]
fn unparseable_input_is_rejected_ar_and_kept_for_review() {
    let db = store();
    let s = db.store.as_ref();
    let r = one(
        s,
        "MSH|^~\\&|LAB|LAB01|PRM|FAC01|20230701100000\nPID|1||000123^^^LAB01^MR\n",
    );
    assert_eq!(r.code, AckCode::AR, "{:?}", r.detail);
    assert!(
        r.detail.as_deref().unwrap_or("").contains("MSH-9"),
        "{:?}",
        r.detail
    );
    let kept = s.hl7_messages(Some("rejected"), None, 10).unwrap();
    assert_eq!(kept.len(), 1);
}

#[test]
fn b10_merges_move_the_data_refuse_self_merges_and_cycles_and_replays_are_harmless() {
    let db = store();
    let s = db.store.as_ref();
    let adt = |pid3: &str, ctrl: &str| {
        format!("MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501080000||ADT^A04^ADT_A01|{ctrl}|P|2.5\nEVN||20230501080000\nPID|||{pid3}^^^HOSP01^MR||TEST^PATIENT^B||19700101|M\nPV1|1|O|CLINIC||||||||||||||||V{ctrl}^^^HOSP01^VN\n")
    };
    assert_eq!(one(s, &adt("000200", "CTRL0201")).code, AckCode::AA);
    assert_eq!(one(s, &adt("000201", "CTRL0202")).code, AckCode::AA);
    let system = |s: &dyn Store, v: &str| -> String {
        let ids = patients(s, "urn:rapport:hl7v2:authority:HOSP01", v);
        assert_eq!(ids.len(), 1, "one patient with {v}: {ids:?}");
        ids[0].clone()
    };
    let (survivor, loser) = (system(s, "000200"), system(s, "000201"));
    // 1: self-merge: AE, ERR at MRG-1 with 205, nothing changes.
    let r = one(s, "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501090000||ADT^A40^ADT_A39|CTRL0021|P|2.5\nEVN||20230501090000\nPID|||000200^^^HOSP01^MR||TEST^PATIENT^A||19700101|M\nMRG|000200^^^HOSP01^MR\n");
    assert_ne!(r.code, AckCode::AA);
    let segs = ack_segments(&r);
    assert!(
        segs.iter()
            .any(|s| s.starts_with("ERR|") && s.contains("MRG^1^1") && s.contains("205")),
        "{segs:?}"
    );
    // 2: 000201 merged into 000200.
    let merge = "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501091000||ADT^A40^ADT_A39|CTRL0022|P|2.5\nEVN||20230501091000\nPID|||000200^^^HOSP01^MR||TEST^PATIENT^B||19700101|M\nMRG|000201^^^HOSP01^MR\n";
    let r = one(s, merge);
    assert_eq!(r.code, AckCode::AA, "{:?}", r.detail);
    let old = s
        .read(&rapport_store::ResourceKey::new("Patient", loser.clone()))
        .unwrap()
        .unwrap();
    let old: serde_json::Value = serde_json::from_str(&old.content).unwrap();
    assert_eq!(old["active"], false);
    assert_eq!(old["link"][0]["type"], "replaced-by");
    assert_eq!(
        old["link"][0]["other"]["reference"],
        format!("Patient/{survivor}")
    );
    // The loser's encounter is now the survivor's; searches by the old identifier find the survivor.
    assert_eq!(
        s.patient_record(&loser).unwrap().len(),
        1,
        "only the Patient itself stays"
    );
    assert!(
        s.patient_record(&survivor)
            .unwrap()
            .iter()
            .filter(|r| r.key.resource_type == "Encounter")
            .count()
            >= 2
    );
    assert_eq!(
        patients(s, "urn:rapport:hl7v2:authority:HOSP01", "000201"),
        vec![survivor.clone()]
    );
    // History is not lost: the old Patient has its earlier version.
    assert!(
        s.history(&rapport_store::ResourceKey::new("Patient", loser.clone()))
            .unwrap()
            .len()
            >= 2
    );
    // Replaying message 2: AA, no further effect.
    let counts = s.counts_by_type().unwrap();
    let replay = one(s, &merge.replace("CTRL0022", "CTRL0022R"));
    assert_eq!(replay.code, AckCode::AA, "{:?}", replay.detail);
    assert_eq!(s.counts_by_type().unwrap(), counts);
    // 3: the same pair reversed would make a cycle: refused.
    let r = one(s, "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501091005||ADT^A40^ADT_A39|CTRL0023|P|2.5\nEVN||20230501091005\nPID|||000201^^^HOSP01^MR||TEST^PATIENT^B||19700101|M\nMRG|000200^^^HOSP01^MR\n");
    assert_ne!(r.code, AckCode::AA, "{:?}", r.detail);
    // 4: a later update listing both identifiers goes to the survivor, no "multiple patients".
    let r = one(s, "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230502080000||ADT^A08^ADT_A01|CTRL0024|P|2.5\nPID|||000200^^^HOSP01^MR~000201^^^HOSP01^MR||TEST^PATIENT^B||19700101|M|||1 TEST ROAD^^TESTTOWN\nPV1|1|O\n");
    assert_eq!(r.code, AckCode::AA, "{:?}", r.detail);
    assert_eq!(
        patients(s, "urn:rapport:hl7v2:authority:HOSP01", "000200"),
        vec![survivor.clone()]
    );
    let p = s
        .read(&rapport_store::ResourceKey::new(
            "Patient",
            survivor.clone(),
        ))
        .unwrap()
        .unwrap();
    assert!(p.content.contains("TESTTOWN"));
}

#[test]
fn enhanced_mode_sends_the_accept_and_application_acknowledgements_msh_15_and_16_ask_for() {
    let db = store();
    let s = db.store.as_ref();
    let adt = |ctrl: &str, accept: &str, application: &str| {
        format!("MSH|^~\\&|ADT|HOSP01|PRM|FAC01|20230401120000||ADT^A04^ADT_A01|{ctrl}|P|2.5|||{accept}|{application}\nPID|1||000777^^^HOSP01^MR||TEST^PATIENT||19700101|M\nPV1|1|O\n")
    };
    let codes = |r: &Hl7Receipt| -> Vec<String> {
        r.send
            .iter()
            .map(|m| {
                let text = String::from_utf8_lossy(m).into_owned();
                text.split('\r')
                    .find_map(|seg| seg.strip_prefix("MSA|"))
                    .map(|rest| rest.split('|').next().unwrap_or("").to_owned())
                    .unwrap_or_default()
            })
            .collect()
    };
    // Original mode (MSH-15/16 empty): the application acknowledgement.
    assert_eq!(codes(&one(s, &adt("E1", "", ""))), ["AA"]);
    // Enhanced mode: the application acknowledgement when MSH-16 asks for it, else the accept
    // acknowledgement (committed): always exactly one answer, as MLLP needs.
    assert_eq!(codes(&one(s, &adt("E2", "AL", "NE"))), ["CA"]);
    assert_eq!(codes(&one(s, &adt("E3", "NE", "AL"))), ["AA"]);
    assert_eq!(codes(&one(s, &adt("E4", "AL", "AL"))), ["AA"]);
    assert_eq!(codes(&one(s, &adt("E5", "AL", "ER"))), ["CA"]);
    assert_eq!(codes(&one(s, &adt("E8", "NE", "NE"))), ["CA"]);
    assert_eq!(codes(&one(s, &adt("E9", "AL", ""))), ["CA"]);
    // An unmapped message asking for errors: AE with its reason.
    let unmapped = "MSH|^~\\&|ADT|HOSP01|PRM|FAC01|20230401120000||ADT^A47^ADT_A30|E6|P|2.5|||AL|ER\nPID|1||000777^^^HOSP01^MR||TEST^PATIENT\n";
    assert_eq!(codes(&one(s, unmapped)), ["AE"]);
    // The store down: a commit error, so that the sender retries.
    let closed = rapport_store::testing::closed();
    let r = receive(
        closed.as_ref(),
        &[input(&adt("E7", "AL", "NE"))],
        NOW,
        &MapOptions::default(),
    );
    assert_eq!(codes(&r[0]), ["CE"]);
}

#[test]
fn b39_the_same_mrn_without_an_authority_from_two_facilities_is_two_patients() {
    let db = store();
    let s = db.store.as_ref();
    let adt = |facility: &str, ctrl: &str| {
        format!("MSH|^~\\&|ADT|{facility}|PRM|FAC01|20230401120000||ADT^A04^ADT_A01|{ctrl}|P|2.5\nPID|1||123456||TEST^PATIENT||19700101|M\nPV1|1|O\n")
    };
    assert_eq!(one(s, &adt("NORTH CLINIC", "F1")).code, AckCode::AA);
    assert_eq!(one(s, &adt("SOUTH", "F2")).code, AckCode::AA);
    assert_eq!(
        patients(s, "urn:rapport:hl7v2:facility:NORTH%20CLINIC:mrn", "123456").len(),
        1
    );
    assert_eq!(
        patients(s, "urn:rapport:hl7v2:facility:SOUTH:mrn", "123456").len(),
        1
    );
    assert_eq!(s.counts_by_type().unwrap().get("Patient"), Some(&2));
}

#[test]
fn a_message_naming_a_known_patient_by_one_of_several_identifiers_updates_that_patient() {
    let db = store();
    let s = db.store.as_ref();
    let adt = |pid3: &str, ctrl: &str| {
        format!("MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501080000||ADT^A08^ADT_A01|{ctrl}|P|2.5\nPID|||{pid3}||TEST^PATIENT^C||19700101|M\nPV1|1|O\n")
    };
    assert_eq!(one(s, &adt("000123^^^HOSP01^MR", "M1")).code, AckCode::AA);
    let r = one(s, &adt("000999^^^HOSP01^MR~000123^^^HOSP01^MR", "M2"));
    assert_eq!(r.code, AckCode::AA, "{:?}", r.detail);
    assert_eq!(
        s.counts_by_type().unwrap().get("Patient"),
        Some(&1),
        "no second patient"
    );
    let system = "urn:rapport:hl7v2:authority:HOSP01";
    assert_eq!(patients(s, system, "000999"), patients(s, system, "000123"));
}

#[test]
fn b45_the_same_message_with_other_line_ends_or_without_its_last_terminator_is_a_resend() {
    let db = store();
    let s = db.store.as_ref();
    let cr = ORU_1.replace('\n', "\r");
    let first = receive(
        s,
        &[Hl7Input {
            raw: cr.clone().into_bytes(),
            feed: "a".into(),
        }],
        NOW,
        &MapOptions::default(),
    );
    assert_eq!(first[0].code, AckCode::AA);
    let counts = s.counts_by_type().unwrap();
    for variant in [
        cr.trim_end_matches('\r').to_owned(),
        ORU_1.to_owned(),
        cr.replace('\r', "\r\n"),
        format!("\u{feff}{cr}\r\r"),
    ] {
        let r = receive(
            s,
            &[Hl7Input {
                raw: variant.into_bytes(),
                feed: "b".into(),
            }],
            NOW,
            &MapOptions::default(),
        );
        assert!(r[0].duplicate, "{:?}", r[0].detail);
    }
    assert_eq!(s.counts_by_type().unwrap(), counts);
}

#[test]
fn b10_a_merge_of_an_unknown_patient_is_remembered_so_the_reverse_is_refused() {
    let db = store();
    let s = db.store.as_ref();
    let merge = |pid: &str, mrg: &str, ctrl: &str| {
        format!("MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230501091000||ADT^A40^ADT_A39|{ctrl}|P|2.5\nEVN||20230501091000\nPID|||{pid}^^^HOSP01^MR||TEST^PATIENT^B||19700101|M\nMRG|{mrg}^^^HOSP01^MR\n")
    };
    assert_eq!(one(s, &merge("000200", "000201", "U2")).code, AckCode::AA);
    let r = one(s, &merge("000201", "000200", "U3"));
    assert_ne!(
        r.code,
        AckCode::AA,
        "the reverse would make a cycle: {:?}",
        r.detail
    );
    let update = "MSH|^~\\&|PAS|HOSP01|PRM|FAC01|20230502080000||ADT^A08^ADT_A01|U4|P|2.5\nPID|||000200^^^HOSP01^MR~000201^^^HOSP01^MR||TEST^PATIENT^B||19700101|M\nPV1|1|O\n";
    assert_eq!(one(s, update).code, AckCode::AA);
    let system = "urn:rapport:hl7v2:authority:HOSP01";
    assert_eq!(patients(s, system, "000200").len(), 1);
    assert_eq!(patients(s, system, "000201"), patients(s, system, "000200"));
    assert_eq!(s.counts_by_type().unwrap().get("Patient"), Some(&1));
}
