//! HL7 v2 messages into the store: parse (rapport-hl7), recognise a resend, map to FHIR
//! (`rapport_hl7::map`), apply the bundle with the importer's semantics, record the message and
//! its outcome, and build the acknowledgement. A batch of messages is one durable transaction
//! (grouped commit: one fsync for many messages); every acknowledgement is built inside it but
//! may only be sent once [`receive`] has returned, that is after the commit (hard case B08:
//! "AA only after the message and its effects are durably committed").

use rapport_hl7::map::{MapError, MapOptions, Mapped, PatientIdentity};
use rapport_hl7::{AckCode, AckError, ErrorCode, Message};
use rapport_store::{Durability, Hl7Outcome, NewHl7Message, Store, StoreError, WriteTx};
use sha2::{Digest, Sha256};

use crate::{apply, Payload, Unit};

/// One message as received.
#[derive(Debug, Clone)]
pub struct Hl7Input {
    pub raw: Vec<u8>,
    /// Where it came from (`mllp 127.0.0.1:51234`, a file name): shown on the Interfaces page.
    pub feed: String,
}

/// What became of one message, and the acknowledgement to send for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Receipt {
    /// The application acknowledgement (AA, AE, AR; segments ended by CR; MLLP framing is the
    /// listener's).
    pub ack: Vec<u8>,
    /// What to send back: in original mode the application acknowledgement; in enhanced mode
    /// (MSH-15/16 valued) the application acknowledgement if MSH-16 asks for it, else the accept
    /// acknowledgement (CA: committed to safe storage). Always one message (see `to_send`).
    pub send: Vec<Vec<u8>>,
    pub code: AckCode,
    /// The recorded message (`None` for a resend that was recognised, or when nothing could be
    /// recorded).
    pub message_id: Option<i64>,
    /// A resend of a message already stored (hard case B45): acknowledged again, not applied.
    pub duplicate: bool,
    /// Why it was not accepted, or a note such as a reused control id (no patient data).
    pub detail: Option<String>,
}

/// Receive `inputs` in one transaction, durably committed before this returns. If the commit
/// fails nothing was stored and every message is answered AE 207 (application internal error),
/// never AA: the sender keeps its copy and retries (hard case B08).
pub fn receive(
    store: &dyn Store,
    inputs: &[Hl7Input],
    now_ms: i64,
    options: &MapOptions,
) -> Vec<Hl7Receipt> {
    receive_with(store, inputs, now_ms, options, Durability::Immediate)
}

/// [`receive`] with a commit of the given durability: with [`Durability::Deferred`] the
/// receipts may only be sent after a [`Store::sync_committed`] (see [`group_writer`]).
fn receive_with(
    store: &dyn Store,
    inputs: &[Hl7Input],
    now_ms: i64,
    options: &MapOptions,
    durability: Durability,
) -> Vec<Hl7Receipt> {
    let mut receipts: Vec<Hl7Receipt> = Vec::with_capacity(inputs.len());
    let result = store.write(durability, &mut |tx| {
        receipts.clear();
        for input in inputs {
            receipts.push(receive_one(tx, store, input, now_ms, options)?);
        }
        Ok(())
    });
    match result {
        Ok(()) => receipts,
        Err(_) => inputs
            .iter()
            .map(|input| internal_error(input, now_ms))
            .collect(),
    }
}

/// The source that every resource written from a message names (shown on the 360 page, and how
/// `/patients/{id}/messages` finds what a message became): the feed, the message and, since
/// control ids get reused (B45), the start of its content hash.
pub fn source_name(feed: &str, message_type: &str, control_id: &str, sha256: &[u8; 32]) -> String {
    format!(
        "{feed} {message_type} {control_id} #{}",
        &hex::encode(sha256)[..8]
    )
}

/// The content hash that recognises a resend: SHA-256 of the message with its segment
/// terminators made canonical (CR, LF and CRLF all one CR; senders use either), without a byte
/// order mark, blank lines, trailing spaces or trailing terminators, so that the same message
/// sent by a client that drops the last CR, or read from a file with LF line ends, is the same
/// message (hard case B45).
pub fn content_hash(raw: &[u8]) -> [u8; 32] {
    let raw = raw.strip_prefix(b"\xef\xbb\xbf".as_slice()).unwrap_or(raw);
    let mut hasher = Sha256::new();
    let has_cr = raw.contains(&b'\r');
    let segments = raw
        .split(|&b| b == b'\r' || (!has_cr && b == b'\n'))
        .map(|seg| seg.strip_prefix(b"\n".as_slice()).unwrap_or(seg))
        .map(|seg| {
            let end = seg
                .iter()
                .rposition(|b| !b" \t".contains(b))
                .map_or(0, |i| i + 1);
            &seg[..end]
        })
        .filter(|seg| !seg.is_empty());
    for seg in segments {
        hasher.update(seg);
        hasher.update(b"\r");
    }
    hasher.finalize().into()
}

/// The key of a stored message in provenance: who sent it, its control id, and its content.
pub fn message_key(app: &str, facility: &str, control_id: &str, sha256: &[u8; 32]) -> String {
    format!(
        "{app}|{facility}|{control_id}|{}",
        &hex::encode(sha256)[..16]
    )
}

fn receive_one(
    tx: &mut dyn WriteTx,
    store: &dyn Store,
    input: &Hl7Input,
    now_ms: i64,
    options: &MapOptions,
) -> Result<Hl7Receipt, StoreError> {
    let sha256 = content_hash(&input.raw);
    let parsed = match rapport_hl7::parse_bytes(&input.raw) {
        Ok(p) => p,
        Err(e) => {
            // Not parseable: recorded for review, rejected (AR) with the parser's reason, which
            // names positions only; the same bytes again update that record.
            let detail = e.to_string();
            let crude = crude_control_id(&input.raw);
            let again = tx
                .hl7_by_control_id("", "", &crude)?
                .into_iter()
                .find(|(_, h, _)| *h == sha256)
                .map(|(id, _, _)| id);
            let outcome = Hl7Outcome {
                status: "rejected".into(),
                ack_code: "AR".into(),
                detail: Some(detail.clone()),
                patient_key: None,
                processed_at_ms: now_ms,
            };
            let id = match again {
                Some(id) => {
                    tx.set_hl7_outcome(id, &outcome)?;
                    id
                }
                None => tx.insert_hl7_message(&NewHl7Message {
                    feed: input.feed.clone(),
                    sending_application: String::new(),
                    sending_facility: String::new(),
                    control_id: crude,
                    message_type: String::new(),
                    content_sha256: sha256,
                    raw: input.raw.clone(),
                    received_at_ms: now_ms,
                    outcome,
                })?,
            };
            let ack = reject_unparsed(&input.raw, &detail, now_ms, id).into_bytes();
            return Ok(Hl7Receipt {
                send: vec![ack.clone()],
                ack,
                code: AckCode::AR,
                message_id: Some(id),
                duplicate: false,
                detail: Some(detail),
            });
        }
    };
    let msg = &parsed.message;
    let (app, facility, control_id) = (
        msg.sending_application().into_owned(),
        msg.sending_facility().into_owned(),
        msg.control_id().into_owned(),
    );
    let mut notes: Vec<String> = Vec::new();
    let earlier = tx.hl7_by_control_id(&app, &facility, &control_id)?;
    if let Some((id, _, _)) = earlier
        .iter()
        .find(|(_, h, status)| *h == sha256 && (status == "applied" || status == "ignored"))
    {
        // The same message again (a lost ACK, a restart): acknowledged, not applied twice.
        let ack = ack_text(msg, AckCode::AA, None, now_ms, *id).into_bytes();
        return Ok(Hl7Receipt {
            send: to_send(msg, AckCode::AA, &ack, now_ms, *id),
            ack,
            code: AckCode::AA,
            message_id: None,
            duplicate: true,
            detail: Some("a resend of a message already stored".into()),
        });
    }
    // Sent again after an AE: processed again (a mapping may have been fixed since), and its
    // record updated rather than repeated.
    let retried = earlier
        .iter()
        .find(|(_, h, _)| *h == sha256)
        .map(|(id, _, _)| *id);
    if earlier.iter().any(|(_, h, _)| *h != sha256) {
        // B45: a sender reusing MSH-10 for different content; processed, and flagged.
        notes.push("control id reused with different content".into());
    }
    let key = message_key(&app, &facility, &control_id, &sha256);
    let message_type = format!("{}^{}", msg.message_type(), msg.trigger());
    // The source every written resource names: the feed, the message and (control ids are
    // reused, B45) its content.
    let feed = feed_name(&app, &facility, &input.feed);
    let name = source_name(&feed, &message_type, &control_id, &sha256);
    let (code, error, status, patient_key) =
        process(tx, store, msg, &key, &name, now_ms, options, &mut notes)?;
    let detail = (!notes.is_empty()).then(|| notes.join("; "));
    let outcome = Hl7Outcome {
        status: status.into(),
        ack_code: code_sent(msg, code).as_str().into(),
        detail: detail.clone(),
        patient_key,
        processed_at_ms: now_ms,
    };
    let id = match retried {
        Some(id) => {
            tx.set_hl7_outcome(id, &outcome)?;
            id
        }
        None => tx.insert_hl7_message(&NewHl7Message {
            feed,
            sending_application: app,
            sending_facility: facility,
            control_id,
            message_type,
            content_sha256: sha256,
            raw: input.raw.clone(),
            received_at_ms: now_ms,
            outcome,
        })?,
    };
    let ack = ack_text(msg, code, error.as_ref(), now_ms, id).into_bytes();
    Ok(Hl7Receipt {
        send: to_send(msg, code, &ack, now_ms, id),
        ack,
        code,
        message_id: Some(id),
        duplicate: false,
        detail,
    })
}

/// What a message's outcome is: the acknowledgement code and error, the status recorded and the
/// patient it is about.
type Processed = (AckCode, Option<AckError>, &'static str, Option<String>);

/// Map `msg` and store what it says in the open transaction (nothing, if it is refused).
#[allow(clippy::too_many_arguments)]
fn process(
    tx: &mut dyn WriteTx,
    store: &dyn Store,
    msg: &Message<'_>,
    key: &str,
    name: &str,
    now_ms: i64,
    options: &MapOptions,
    notes: &mut Vec<String>,
) -> Result<Processed, StoreError> {
    // PID-3 identifiers without an assigning authority are the sender's own numbers: their
    // system names the sending facility (MSH-4), so that the same number from two facilities
    // is two patients (hard case B39).
    let facility = msg.sending_facility();
    let per_sender;
    let options = if facility.is_empty() {
        options
    } else {
        let encoded: String = facility
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        per_sender = MapOptions {
            default_identifier_system: format!("urn:rapport:hl7v2:facility:{encoded}:mrn"),
            ..options.clone()
        };
        &per_sender
    };
    Ok(match rapport_hl7::map::to_fhir(msg, key, options) {
        Err(e) => {
            notes.insert(0, e.message.clone());
            (AckCode::AE, Some(ack_error(&e)), "error", None)
        }
        Ok(Mapped::Nothing { .. }) => (AckCode::AA, None, "ignored", None),
        Ok(Mapped::Merge {
            survivor,
            loser,
            bundle,
            warnings,
        }) => {
            notes.extend(warnings);
            match merge(tx, store, name, bundle, &survivor, &loser, now_ms)? {
                Ok((patient, note)) => {
                    notes.extend(note);
                    (AckCode::AA, None, "applied", patient)
                }
                Err((error, why)) => {
                    notes.insert(0, why);
                    (AckCode::AE, Some(error), "error", None)
                }
            }
        }
        Ok(Mapped::Bundle {
            bundle, warnings, ..
        }) => {
            notes.extend(warnings);
            match apply_bundle(tx, name, bundle, now_ms)? {
                Err(why) => {
                    notes.insert(0, why);
                    (
                        AckCode::AE,
                        Some(
                            AckError::new(ErrorCode::ApplicationInternalError)
                                .with_text("the message could not be stored"),
                        ),
                        "error",
                        None,
                    )
                }
                Ok(report) => (AckCode::AA, None, "applied", patient_written(&report)),
            }
        }
    })
}

/// Map and apply a recorded message again (after a mapping was fixed: the Interfaces page's
/// re-process action), recording its new outcome. A message already applied is left as it is.
pub fn reprocess(
    store: &dyn Store,
    message_id: i64,
    now_ms: i64,
    options: &MapOptions,
) -> Result<Option<Hl7Outcome>, StoreError> {
    let Some(stored) = store.hl7_message(message_id)? else {
        return Ok(None);
    };
    let m = stored.message;
    if m.outcome.status == "applied" || m.outcome.status == "ignored" {
        return Ok(Some(m.outcome));
    }
    let mut outcome = None;
    store.write(Durability::Immediate, &mut |tx| {
        let mut notes = Vec::new();
        let o = match rapport_hl7::parse_bytes(&m.raw) {
            Err(e) => Hl7Outcome {
                status: "rejected".into(),
                ack_code: "AR".into(),
                detail: Some(e.to_string()),
                patient_key: None,
                processed_at_ms: now_ms,
            },
            Ok(parsed) => {
                let key = message_key(
                    &m.sending_application,
                    &m.sending_facility,
                    &m.control_id,
                    &m.content_sha256,
                );
                let name = source_name(&m.feed, &m.message_type, &m.control_id, &m.content_sha256);
                let (code, _, status, patient_key) = process(
                    tx,
                    store,
                    &parsed.message,
                    &key,
                    &name,
                    now_ms,
                    options,
                    &mut notes,
                )?;
                Hl7Outcome {
                    status: status.into(),
                    ack_code: code.as_str().into(),
                    detail: (!notes.is_empty()).then(|| notes.join("; ")),
                    patient_key,
                    processed_at_ms: now_ms,
                }
            }
        };
        tx.set_hl7_outcome(message_id, &o)?;
        outcome = Some(o);
        Ok(())
    })?;
    Ok(outcome)
}

/// The stored Patient ids with `identity` (system and value).
fn patients_with(
    tx: &mut dyn WriteTx,
    identity: &PatientIdentity,
) -> Result<Vec<String>, StoreError> {
    tx.find_ids(&rapport_fhir::query::Query {
        resource_type: "Patient".into(),
        clauses: vec![rapport_fhir::query::Clause::Token {
            param: "identifier",
            system: Some(identity.system.clone()),
            code: identity.value.clone(),
        }],
    })
}

/// Apply `bundle` (what the message says of the survivor) in the open transaction.
/// The Patient an applied bundle wrote, if any.
fn patient_written(report: &crate::UnitReport) -> Option<String> {
    report
        .outcomes
        .iter()
        .find(|o| o.key.resource_type == "Patient")
        .map(|o| o.key.id.clone())
}

fn apply_bundle(
    tx: &mut dyn WriteTx,
    name: &str,
    bundle: serde_json::Value,
    now_ms: i64,
) -> Result<Result<crate::UnitReport, String>, StoreError> {
    let unit = Unit {
        name: name.to_owned(),
        kind: "hl7v2",
        payload: Payload::Value(bundle),
    };
    let prepared = apply::prepare(&unit);
    let report = apply::apply_in_tx(tx, &unit, prepared, now_ms, false, None)?;
    Ok(match report.errors.first() {
        Some(e) => Err(format!(
            "not stored: {}{}",
            e.entry.map(|i| format!("entry {i}: ")).unwrap_or_default(),
            e.message
        )),
        None => Ok(report),
    })
}

type MergeResult = Result<(Option<String>, Option<String>), (AckError, String)>;

/// ADT^A40 (v2 chapter 3.3.40, "merge patient - patient identifier list"): the loser's data
/// moves to the survivor. Every resource in the loser's compartment gets a new version that
/// refers to the survivor; the loser is kept, inactive, with `link.type = replaced-by`
/// (patient.html#links), and its identifiers move to the survivor (as `use: old`), so that later
/// messages and searches by the old identifier find the survivor (hard case B10). History is kept:
/// these are new versions. A merge into itself, or one that would undo an earlier merge, is
/// refused (AE, ERR 205 at MRG-1) and changes nothing.
fn merge(
    tx: &mut dyn WriteTx,
    store: &dyn Store,
    name: &str,
    bundle: serde_json::Value,
    survivor: &PatientIdentity,
    loser: &PatientIdentity,
    now_ms: i64,
) -> Result<MergeResult, StoreError> {
    let refuse = |why: &str| {
        Ok(Err((
            AckError::new(ErrorCode::DuplicateKeyIdentifier)
                .at("MRG", 1, 1)
                .with_text(why),
            why.to_owned(),
        )))
    };
    if survivor == loser {
        return refuse("a patient cannot be merged into itself");
    }
    let losers = patients_with(tx, loser)?;
    let survivors_before = patients_with(tx, survivor)?;
    // Both identifiers on one patient: a merge already done. A replay names the survivor by its
    // own identifier and the loser by the one merged into it (now `use: old`); the same pair
    // reversed would undo it and make a cycle in the merge graph (B10, 3): refused.
    if let [only] = losers.as_slice() {
        if survivors_before.as_slice() == [only.clone()] {
            let stored = store.read(&rapport_store::ResourceKey::new("Patient", only.clone()))?;
            let v: serde_json::Value = stored
                .and_then(|p| serde_json::from_str(&p.content).ok())
                .unwrap_or_default();
            let is_old = |who: &PatientIdentity| {
                v["identifier"].as_array().is_some_and(|ids| {
                    ids.iter().any(|i| {
                        i["system"] == who.system.as_str()
                            && i["value"] == who.value.as_str()
                            && i["use"] == "old"
                    })
                })
            };
            if is_old(survivor) {
                return refuse("the surviving patient was merged into the other one before");
            }
            return Ok(Ok((
                Some(only.clone()),
                Some("a merge already applied".into()),
            )));
        }
    }
    // A survivor that was itself merged away: the merge would make a cycle (B10, 3).
    for id in &survivors_before {
        if let Some(p) = store.read(&rapport_store::ResourceKey::new("Patient", id.clone()))? {
            let v: serde_json::Value = serde_json::from_str(&p.content).unwrap_or_default();
            if v["link"]
                .as_array()
                .is_some_and(|links| links.iter().any(|l| l["type"] == "replaced-by"))
            {
                return refuse("the surviving patient was merged into another patient before");
            }
        }
    }
    // The merge is remembered on the survivor even when the merged patient is not known here:
    // its identifier joins the survivor's (`use: old`), so that a later message under it finds
    // the survivor and the same pair reversed is refused (B10).
    let mut bundle = bundle;
    if losers.is_empty() {
        if let Some(entries) = bundle["entry"].as_array_mut() {
            for e in entries
                .iter_mut()
                .filter(|e| e["resource"]["resourceType"] == "Patient")
            {
                let ids = &mut e["resource"]["identifier"];
                if !ids.is_array() {
                    *ids = serde_json::json!([]);
                }
                if let Some(ids) = ids.as_array_mut() {
                    ids.push(serde_json::json!({"use": "old", "system": loser.system, "value": loser.value}));
                }
            }
        }
    }
    let report = match apply_bundle(tx, name, bundle, now_ms)? {
        Ok(r) => r,
        Err(why) => {
            return Ok(Err((
                AckError::new(ErrorCode::ApplicationInternalError).with_text("not stored"),
                why,
            )))
        }
    };
    let survivor_id = patient_written(&report).or_else(|| survivors_before.first().cloned());
    let Some(survivor_id) = survivor_id else {
        return refuse("the surviving patient is not known");
    };
    let Some(loser_id) = losers.into_iter().find(|id| *id != survivor_id) else {
        // Nothing stored under the old identifier: no data to move (the survivor carries the
        // old identifier already, added to the bundle below).
        return Ok(Ok((
            Some(survivor_id),
            Some("the merged patient was not known: its identifier now names the survivor".into()),
        )));
    };
    let record = store.patient_record(&loser_id)?;
    let from = format!("Patient/{loser_id}");
    let to = format!("Patient/{survivor_id}");
    let mut entries = Vec::new();
    let mut moved_identifiers = Vec::new();
    for r in record {
        let Some(mut v) = editable(&r.content) else {
            continue;
        };
        if r.key.resource_type == "Patient" && r.key.id == loser_id {
            if let Some(ids) = v.get_mut("identifier").and_then(|i| i.as_array_mut()) {
                moved_identifiers.append(ids);
            }
            if let Some(o) = v.as_object_mut() {
                o.remove("identifier");
                o.insert("active".into(), serde_json::json!(false));
                o.insert(
                    "link".into(),
                    serde_json::json!([{"other": {"reference": to}, "type": "replaced-by"}]),
                );
            }
        } else {
            rewrite_reference(&mut v, &from, &to);
        }
        entries.push(serde_json::json!({
            "resource": v,
            "request": {"method": "PUT", "url": format!("{}/{}", r.key.resource_type, r.key.id)}
        }));
    }
    let moved = serde_json::Value::Array(moved_identifiers);
    if let Some(entry) = survivor_update(store, &survivor_id, moved, Some(&from))? {
        entries.push(entry);
    }
    let moves =
        serde_json::json!({"resourceType": "Bundle", "type": "transaction", "entry": entries});
    match apply_bundle(tx, &format!("{name} (merge)"), moves, now_ms)? {
        Ok(_) => Ok(Ok((Some(survivor_id), None))),
        Err(why) => Ok(Err((
            AckError::new(ErrorCode::ApplicationInternalError).with_text("merge not stored"),
            why,
        ))),
    }
}

/// The survivor of a merge with the merged patient's identifiers added (`use: old`) and, when
/// its record is known, a `replaces` link to it: a PUT entry.
fn survivor_update(
    store: &dyn Store,
    survivor_id: &str,
    moved_identifiers: serde_json::Value,
    replaces: Option<&str>,
) -> Result<Option<serde_json::Value>, StoreError> {
    let Some(p) = store.read(&rapport_store::ResourceKey::new("Patient", survivor_id))? else {
        return Ok(None);
    };
    let mut v = editable(&p.content).unwrap_or_default();
    if let Some(o) = v.as_object_mut() {
        let ids = o
            .entry("identifier")
            .or_insert_with(|| serde_json::json!([]));
        if let (Some(ids), Some(moved)) = (ids.as_array_mut(), moved_identifiers.as_array()) {
            for id in moved {
                if !ids
                    .iter()
                    .any(|i| i["system"] == id["system"] && i["value"] == id["value"])
                {
                    let mut id = id.clone();
                    id["use"] = serde_json::json!("old");
                    ids.push(id);
                }
            }
        }
        if let Some(from) = replaces {
            let links = o.entry("link").or_insert_with(|| serde_json::json!([]));
            if let Some(links) = links.as_array_mut() {
                links.push(serde_json::json!({"other": {"reference": from}, "type": "replaces"}));
            }
        }
    }
    Ok(Some(serde_json::json!({
        "resource": v,
        "request": {"method": "PUT", "url": format!("Patient/{survivor_id}")}
    })))
}

/// A stored resource's content to write again: the store sets `meta.versionId` and
/// `meta.lastUpdated` itself. `None` when the content is not JSON.
fn editable(content: &str) -> Option<serde_json::Value> {
    let mut v: serde_json::Value = serde_json::from_str(content).ok()?;
    if let Some(meta) = v.get_mut("meta").and_then(|m| m.as_object_mut()) {
        meta.remove("versionId");
        meta.remove("lastUpdated");
    }
    Some(v)
}

/// Every `reference` equal to `from` becomes `to`.
fn rewrite_reference(value: &mut serde_json::Value, from: &str, to: &str) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if k == "reference" && v.as_str() == Some(from) {
                    *v = serde_json::Value::String(to.to_owned());
                } else {
                    rewrite_reference(v, from, to);
                }
            }
        }
        serde_json::Value::Array(items) => {
            for i in items {
                rewrite_reference(i, from, to);
            }
        }
        _ => {}
    }
}

/// What goes back for a message recorded with application acknowledgement `code` (`ack`): see
/// [`Hl7Receipt::send`]. Exactly one acknowledgement per message, because MLLP answers every
/// frame and senders wait for that answer (MLLP release 2, and python-hl7's `mllp_send` reads
/// one reply per message). In enhanced mode (HL7 v2 chapter 2, "enhanced acknowledgment mode")
/// that is the application acknowledgement when MSH-16 asks for it in this case (AL always, ER
/// on error, SU on success), and otherwise the accept acknowledgement CA: the message is
/// committed to safe storage, whatever its application outcome. (A store failure never gets
/// here: it is answered AE, or CE in enhanced mode, by [`internal_error`].)
fn to_send(msg: &Message<'_>, code: AckCode, ack: &[u8], now_ms: i64, id: i64) -> Vec<Vec<u8>> {
    match code_sent(msg, code) {
        AckCode::CA if code != AckCode::CA => {
            vec![ack_text(msg, AckCode::CA, None, now_ms, id).into_bytes()]
        }
        _ => vec![ack.to_vec()],
    }
}

/// The acknowledgement code [`to_send`] sends for application outcome `code`.
fn code_sent(msg: &Message<'_>, code: AckCode) -> AckCode {
    let (accept, application) = (msg.accept_ack_type(), msg.application_ack_type());
    if accept.is_empty() && application.is_empty() {
        return code;
    }
    let success = code == AckCode::AA;
    let application_wanted = match application.as_ref() {
        "NE" => false,
        "ER" => !success,
        "SU" => success,
        // Empty in enhanced mode (only MSH-15 valued): the commit is what was asked about.
        "" => false,
        _ => true,
    };
    if application_wanted {
        code
    } else {
        AckCode::CA
    }
}

/// What a feed is called on the Interfaces page: the sending application and facility (MSH-3,
/// MSH-4) and how the message came (`mllp 10.0.0.5`, a file name).
fn feed_name(app: &str, facility: &str, via: &str) -> String {
    match (app.trim(), facility.trim()) {
        ("", "") => via.to_owned(),
        (a, "") | ("", a) => format!("{a} ({via})"),
        (a, f) => format!("{a}^{f} ({via})"),
    }
}

fn ack_error(e: &MapError) -> AckError {
    let mut a = AckError::new(e.code).with_text(&e.message);
    a.segment = Some(e.segment.clone());
    a.sequence = Some(e.sequence);
    a.field = e.field;
    a.component = e.component;
    a
}

/// HL7 DTM of `now_ms` in UTC (v2 chapter 2A, DTM).
fn hl7_time(now_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(now_ms)
        .unwrap_or_default()
        .format("%Y%m%d%H%M%S+0000")
        .to_string()
}

fn ack_text(
    msg: &Message<'_>,
    code: AckCode,
    error: Option<&AckError>,
    now_ms: i64,
    id: i64,
) -> String {
    rapport_hl7::ack(msg, code, error, &hl7_time(now_ms), &format!("RAPPORT{id}"))
}

/// MSH-10 read naively from a message the parser refused (for the AR's MSA-2 and the review
/// page): the tenth `|`-separated field of the first line starting with MSH.
fn crude_control_id(raw: &[u8]) -> String {
    let text = String::from_utf8_lossy(raw);
    text.split(['\r', '\n'])
        .find_map(|line| line.trim_start_matches('\u{feff}').strip_prefix("MSH"))
        .and_then(|rest| {
            let sep = rest.chars().next()?;
            rest.split(sep).nth(9).map(str::to_owned)
        })
        .unwrap_or_default()
}

/// An AR for input the parser refused: standard delimiters, our own header, the reason.
fn reject_unparsed(raw: &[u8], reason: &str, now_ms: i64, id: i64) -> String {
    let control = crude_control_id(raw).replace(['|', '^', '~', '\\', '&', '\r', '\n'], "");
    let reason = reason.replace(['|', '^', '~', '\\', '&', '\r', '\n'], " ");
    format!(
        "MSH|^~\\&|RAPPORT|RAPPORT|||{}||ACK|RAPPORT{id}|P|2.5\rMSA|AR|{control}\rERR|||100^Segment sequence error^HL70357|E||||{reason}\r",
        hl7_time(now_ms)
    )
}

/// Nothing could be recorded (the store failed): AE 207 so that the sender retries.
fn internal_error(input: &Hl7Input, now_ms: i64) -> Hl7Receipt {
    let error = AckError::new(ErrorCode::ApplicationInternalError)
        .with_text("the message could not be stored; send it again");
    let ack = match rapport_hl7::parse_bytes(&input.raw) {
        Ok(p) => {
            let enhanced = !p.message.accept_ack_type().is_empty()
                || !p.message.application_ack_type().is_empty();
            rapport_hl7::ack(
                &p.message,
                // Enhanced mode: a commit error, so the sender keeps the message and retries.
                if enhanced { AckCode::CE } else { AckCode::AE },
                Some(&error),
                &hl7_time(now_ms),
                "RAPPORT0",
            )
        }
        Err(_) => format!(
            "MSH|^~\\&|RAPPORT|RAPPORT|||{}||ACK|RAPPORT0|P|2.5\rMSA|AE|{}\rERR|||207^Application internal error^HL70357|E\r",
            hl7_time(now_ms),
            crude_control_id(&input.raw).replace(['|', '^', '~', '\\', '&'], "")
        ),
    };
    let ack = ack.into_bytes();
    Hl7Receipt {
        send: vec![ack.clone()],
        ack,
        code: AckCode::AE,
        message_id: None,
        duplicate: false,
        detail: Some("the store could not record the message".into()),
    }
}

/// A message waiting for the group writer, and where its receipt goes.
pub type Queued = (Hl7Input, Box<dyn FnOnce(Hl7Receipt) + Send>);

/// The most messages committed together.
pub const GROUP_MAX_MESSAGES: usize = 256;

/// Commit queued messages in groups until every sender is gone: take what is waiting (at least
/// one, at most `group_max`, capped at [`GROUP_MAX_MESSAGES`]), [`receive`] it in one
/// transaction, then hand each receipt back once the group is on disk. Commits are pipelined:
/// a group is committed without waiting for the disk, and a second thread makes the groups
/// committed so far durable with one sync (`Store::sync_committed`) and only then releases
/// their receipts, while the next group is being applied. Under load one fsync covers many
/// messages; alone, a message waits for nobody. If the sync fails, the group's messages are
/// answered AE 207 instead (they may be stored: the sender's resend is recognised).
/// `group_max` 1 commits each message alone, durably, in turn (for comparison:
/// `rapport bench mllp --no-group`).
pub fn group_writer(
    store: &dyn Store,
    options: &MapOptions,
    queue: std::sync::mpsc::Receiver<Queued>,
    now_ms: &(dyn Fn() -> i64 + Sync),
    group_max: usize,
) {
    type Done = (
        Vec<Hl7Input>,
        Vec<Box<dyn FnOnce(Hl7Receipt) + Send>>,
        Vec<Hl7Receipt>,
    );
    let group_max = group_max.clamp(1, GROUP_MAX_MESSAGES);
    if group_max == 1 {
        while let Ok((input, reply)) = queue.recv() {
            let receipt = receive(store, std::slice::from_ref(&input), now_ms(), options);
            if let Some(r) = receipt.into_iter().next() {
                reply(r);
            }
        }
        return;
    }
    std::thread::scope(|scope| {
        let (committed, to_sync) = std::sync::mpsc::channel::<Done>();
        let sync_now = now_ms;
        std::thread::Builder::new()
            .name("hl7-sync".into())
            .spawn_scoped(scope, move || {
                while let Ok(first) = to_sync.recv() {
                    let mut groups = vec![first];
                    groups.extend(to_sync.try_iter());
                    let synced = store.sync_committed().is_ok();
                    for (inputs, replies, receipts) in groups {
                        for ((input, reply), receipt) in inputs.iter().zip(replies).zip(receipts) {
                            reply(if synced {
                                receipt
                            } else {
                                internal_error(input, sync_now())
                            });
                        }
                    }
                }
            })
            .expect("a thread can be started");
        while let Ok(first) = queue.recv() {
            let mut group = vec![first];
            while group.len() < group_max {
                match queue.try_recv() {
                    Ok(next) => group.push(next),
                    Err(_) => break,
                }
            }
            let (inputs, replies): (Vec<Hl7Input>, Vec<_>) = group.into_iter().unzip();
            let receipts = receive_with(store, &inputs, now_ms(), options, Durability::Deferred);
            if committed.send((inputs, replies, receipts)).is_err() {
                break;
            }
        }
    });
}

/// What an HL7 v2 file import did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Hl7FileReport {
    pub messages: usize,
    pub applied: usize,
    pub duplicates: usize,
    /// One per message not accepted, naming the file and the message's position in it.
    pub errors: Vec<crate::ImportError>,
}

/// Import a file of HL7 v2 messages (one or several, batch envelopes allowed) with the feed's
/// semantics: each message recorded, mapped and applied once, in commits of a few hundred.
pub fn import_file(
    store: &dyn Store,
    name: &str,
    bytes: &[u8],
    now_ms: i64,
    options: &MapOptions,
) -> Hl7FileReport {
    let mut report = Hl7FileReport::default();
    if bytes.iter().all(u8::is_ascii_whitespace) {
        report.errors.push(crate::ImportError {
            file: name.to_owned(),
            entry: None,
            message: "the file is empty: no HL7 message in it".into(),
            retryable: false,
            conflict: false,
            forbidden: false,
        });
        return report;
    }
    let messages: Vec<&[u8]> = rapport_hl7::split_messages(bytes).collect();
    for (chunk_index, chunk) in messages.chunks(GROUP_MAX_MESSAGES).enumerate() {
        let inputs: Vec<Hl7Input> = chunk
            .iter()
            .map(|m| Hl7Input {
                raw: m.to_vec(),
                feed: name.to_owned(),
            })
            .collect();
        for (i, receipt) in receive(store, &inputs, now_ms, options)
            .into_iter()
            .enumerate()
        {
            report.messages += 1;
            if receipt.duplicate {
                report.duplicates += 1;
            } else if receipt.code == AckCode::AA {
                report.applied += 1;
            }
            if receipt.code != AckCode::AA {
                report.errors.push(crate::ImportError {
                    file: name.to_owned(),
                    entry: None,
                    message: format!(
                        "HL7 message {}: {} ({})",
                        chunk_index * GROUP_MAX_MESSAGES + i + 1,
                        receipt.detail.as_deref().unwrap_or("not accepted"),
                        receipt.code.as_str()
                    ),
                    retryable: false,
                    conflict: false,
                    forbidden: false,
                });
            }
        }
    }
    report
}
