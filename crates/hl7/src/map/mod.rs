//! HL7 v2 messages to FHIR R4, following the HL7 v2-to-FHIR mapping guide
//! (<https://build.fhir.org/ig/HL7/v2-to-fhir/>) where it defines a mapping.
//!
//! [`to_fhir`] turns one parsed message into what the importer needs:
//! - [`Mapped::Bundle`]: one FHIR R4 `transaction` Bundle (http.html#transaction) whose entries
//!   are conditional updates (`PUT Type?identifier=system|value`) on stable business
//!   identifiers, so that a resent message changes nothing and a corrected one makes a new
//!   version of the same resources; plus one Provenance naming the stored raw message.
//! - [`Mapped::Merge`]: ADT^A40 and its relatives (A34, A35, A36, A39): the store merges.
//! - [`Mapped::Nothing`]: acknowledgments and queries.
//!
//! One module per message family (`adt`, `oru`, `siu`, `pharmacy`, `mdm`, `vxu`), the v2
//! datatypes in `datatypes`, the code tables in `codes`, the bundle and its deterministic
//! `urn:uuid` full URLs in `bundle`. Pure: no I/O, no clock (every time comes from the message).
//!
//! Errors and warnings name segments, fields and reasons, never values: message content is
//! patient data and ends up in ACKs and logs.

mod adt;
mod bundle;
mod codes;
mod datatypes;
mod mdm;
mod oru;
mod pharmacy;
mod siu;
mod vxu;

use std::collections::HashMap;
use std::fmt;

use serde_json::{json, Value};

use crate::{ErrorCode, Message, Segment};

use bundle::BundleBuilder;

/// How [`to_fhir`] fills in what a message leaves unsaid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapOptions {
    /// Offset used for HL7 timestamps without one, in minutes east of UTC (default 0).
    pub default_offset_minutes: i32,
    /// Identifier system for PID-3 identifiers without an assigning authority (default
    /// `urn:rapport:hl7v2:mrn`). Hard case B39 wants this per sender: the caller sets it from
    /// MSH-4 when it knows the sender's identifier domain.
    pub default_identifier_system: String,
}

impl Default for MapOptions {
    fn default() -> Self {
        MapOptions {
            default_offset_minutes: 0,
            default_identifier_system: "urn:rapport:hl7v2:mrn".to_owned(),
        }
    }
}

/// What a message means for the store.
#[derive(Debug, Clone, PartialEq)]
pub enum Mapped {
    /// Everything the message says, as one FHIR R4 `transaction` Bundle for the importer.
    Bundle {
        /// The Bundle (`resourceType: Bundle`, `type: transaction`).
        bundle: Value,
        /// The patient the message is about (PID-3), when it has one.
        patient: Option<PatientIdentity>,
        /// What was left out and why (positions, never values).
        warnings: Vec<String>,
    },
    /// ADT^A40 (and A34/A35/A36/A39): merge `loser` into `survivor` (the store does it).
    Merge {
        /// PID-3: the patient that remains.
        survivor: PatientIdentity,
        /// MRG-1: the patient merged away.
        loser: PatientIdentity,
        /// The survivor's PID update and the Provenance.
        bundle: Value,
        /// What was left out and why.
        warnings: Vec<String>,
    },
    /// Nothing to store (an ACK, a query): acknowledged AA.
    Nothing {
        /// Why, for the log.
        reason: String,
    },
}

/// A patient as its identifier: PID-3, the first identifier of type MR, else the first.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PatientIdentity {
    /// Identifier.system (from the assigning authority, CX-4).
    pub system: String,
    /// Identifier.value (CX-1).
    pub value: String,
}

/// A message that parses but cannot be mapped; becomes an ERR segment of an AE acknowledgment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MapError {
    /// The segment id (`PID`).
    pub segment: String,
    /// 1-based occurrence of that segment in the message.
    pub sequence: usize,
    /// The field, when the problem is in one.
    pub field: Option<usize>,
    /// The component, when the problem is in one.
    pub component: Option<usize>,
    /// Table 0357.
    pub code: ErrorCode,
    /// Why, without any patient data.
    pub message: String,
}

impl MapError {
    pub(crate) fn new(
        segment: &str,
        sequence: usize,
        field: Option<usize>,
        code: ErrorCode,
        message: impl Into<String>,
    ) -> Self {
        MapError {
            segment: segment.to_owned(),
            sequence,
            field,
            component: None,
            code,
            message: message.into(),
        }
    }

    /// The ERR-2 style location, `PID^1^3`.
    pub fn location(&self) -> String {
        let mut out = format!("{}^{}", self.segment, self.sequence);
        if let Some(field) = self.field {
            out.push_str(&format!("^{field}"));
            if let Some(component) = self.component {
                out.push_str(&format!("^1^{component}"));
            }
        }
        out
    }
}

impl fmt::Display for MapError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {}): {}",
            self.location(),
            self.code.code(),
            self.code.text(),
            self.message
        )
    }
}

impl std::error::Error for MapError {}

/// Maps one message. `message_key` is the id of the stored raw message; it seeds the
/// `urn:uuid` full URLs and is what the Provenance points at.
pub fn to_fhir(
    message: &Message<'_>,
    message_key: &str,
    options: &MapOptions,
) -> Result<Mapped, MapError> {
    let kind = message.message_type().trim().to_ascii_uppercase();
    let trigger = message.trigger().trim().to_ascii_uppercase();
    let unsupported_trigger = || {
        Err(MapError::new(
            "MSH",
            1,
            Some(9),
            ErrorCode::UnsupportedEventCode,
            format!("trigger event {trigger} of {kind} is not mapped"),
        ))
    };
    let mut ctx = Ctx::new(message, message_key, options);
    match kind.as_str() {
        "ACK" | "MCF" => Ok(Mapped::Nothing {
            reason: format!("{kind} is an acknowledgment"),
        }),
        "QRY" | "QBP" | "RSP" | "RTB" | "RDY" | "VXQ" | "VXR" | "QCN" | "QSB" | "ADR" | "RQI"
        | "RPI" => Ok(Mapped::Nothing {
            reason: format!("{kind} is a query or a query response"),
        }),
        "ADT" => match trigger.as_str() {
            "A01" | "A02" | "A03" | "A04" | "A05" | "A06" | "A07" | "A08" | "A11" | "A12"
            | "A13" | "A28" | "A31" => adt::map(&mut ctx, &trigger),
            "A34" | "A35" | "A36" | "A39" | "A40" => adt::merge(&mut ctx, &trigger),
            _ => unsupported_trigger(),
        },
        "ORU" => match trigger.as_str() {
            "R01" | "R30" | "R31" | "R32" => oru::map(&mut ctx),
            _ => unsupported_trigger(),
        },
        "SIU" => match trigger.as_str() {
            "S12" | "S13" | "S14" | "S15" | "S17" | "S26" => siu::map(&mut ctx, &trigger),
            _ => unsupported_trigger(),
        },
        "RDE" | "RDS" | "ORM" | "OMP" => pharmacy::map(&mut ctx, &kind),
        "MDM" => match trigger.as_str() {
            "T01" | "T02" | "T03" | "T04" | "T05" | "T06" | "T08" | "T09" | "T10" | "T11" => {
                mdm::map(&mut ctx, &trigger)
            }
            _ => unsupported_trigger(),
        },
        "VXU" => vxu::map(&mut ctx),
        _ => Err(MapError::new(
            "MSH",
            1,
            Some(9),
            ErrorCode::UnsupportedMessageType,
            format!("message type {kind} is not mapped"),
        )),
    }
}

/// A segment with its occurrence number among the segments of the same id.
#[derive(Clone, Copy)]
pub(crate) struct Seg<'m> {
    pub(crate) segment: Segment<'m>,
    pub(crate) seq: usize,
}

impl<'m> Seg<'m> {
    pub(crate) fn id(&self) -> &'m str {
        self.segment.id()
    }

    pub(crate) fn field(&self, n: usize) -> crate::Field<'m> {
        self.segment.field(n)
    }

    /// `OBX^3^5`: the position of field `n`, for warnings and errors.
    pub(crate) fn at(&self, n: usize) -> String {
        format!("{}^{}^{}", self.id(), self.seq, n)
    }

    pub(crate) fn error(&self, field: usize, code: ErrorCode, message: &str) -> MapError {
        MapError::new(self.id(), self.seq, Some(field), code, message)
    }
}

/// The patient of the message as it stands in the bundle.
#[derive(Clone)]
pub(crate) struct PatientRef {
    pub(crate) full_url: String,
    pub(crate) identity: PatientIdentity,
}

impl PatientRef {
    pub(crate) fn reference(&self) -> Value {
        json!({ "reference": self.full_url })
    }
}

/// Everything one mapping needs: the message, its segments with occurrence numbers, the
/// options, the bundle being built and the warnings.
pub(crate) struct Ctx<'c, 'm> {
    pub(crate) msg: &'c Message<'m>,
    pub(crate) segs: Vec<Seg<'c>>,
    pub(crate) options: &'c MapOptions,
    /// MSH-4.1 (else MSH-3.1), percent-encoded: the namespace of the local identifier systems.
    pub(crate) facility: String,
    pub(crate) bundle: BundleBuilder,
    pub(crate) warnings: Vec<String>,
    pub(crate) patient: Option<PatientRef>,
}

impl<'c, 'm> Ctx<'c, 'm> {
    fn new(msg: &'c Message<'m>, key: &str, options: &'c MapOptions) -> Self {
        let mut counts: HashMap<&str, usize> = HashMap::new();
        let segs = msg
            .segments()
            .map(|segment| {
                let n = counts.entry(segment.id()).or_default();
                *n += 1;
                Seg { segment, seq: *n }
            })
            .collect();
        let facility = [msg.sending_facility(), msg.sending_application()]
            .into_iter()
            .map(|s| s.trim().to_owned())
            .find(|s| !s.is_empty())
            .unwrap_or_else(|| "unknown".to_owned());
        Ctx {
            msg,
            segs,
            options,
            facility: datatypes::encode_urn_part(&facility),
            bundle: BundleBuilder::new(key),
            warnings: Vec::new(),
            patient: None,
        }
    }

    /// The first segment with this id.
    pub(crate) fn first(&self, id: &str) -> Option<Seg<'c>> {
        self.segs.iter().copied().find(|s| s.id() == id)
    }

    /// Every segment with this id.
    pub(crate) fn all(&self, id: &str) -> Vec<Seg<'c>> {
        self.segs.iter().copied().filter(|s| s.id() == id).collect()
    }

    /// A local identifier system, `urn:rapport:hl7v2:<sending facility>:<kind>`.
    pub(crate) fn local_system(&self, kind: &str) -> String {
        format!("urn:rapport:hl7v2:{}:{kind}", self.facility)
    }

    pub(crate) fn warn(&mut self, warning: impl Into<String>) {
        self.warnings.push(warning.into());
    }

    /// The PID segment, required: 101 at PID^1^3 when it or its identifier is missing.
    pub(crate) fn require_patient(&mut self) -> Result<PatientRef, MapError> {
        adt::patient_from_pid(self)?;
        self.patient.clone().ok_or_else(|| {
            MapError::new(
                "PID",
                1,
                Some(3),
                ErrorCode::RequiredFieldMissing,
                "the message needs a patient identifier (PID-3)",
            )
        })
    }

    /// The bundle with its Provenance, as [`Mapped::Bundle`].
    pub(crate) fn finish(&mut self) -> Result<Mapped, MapError> {
        let patient = self.patient.as_ref().map(|p| p.identity.clone());
        let bundle = self.finish_bundle()?;
        Ok(Mapped::Bundle {
            bundle: bundle.0,
            patient,
            warnings: bundle.1,
        })
    }

    pub(crate) fn finish_bundle(&mut self) -> Result<(Value, Vec<String>), MapError> {
        let msh = self.segs[0];
        let recorded = self.required_instant(msh, 7)?;
        let who = match (
            self.msg.sending_application().trim(),
            self.msg.sending_facility().trim(),
        ) {
            ("", "") => "unknown sender".to_owned(),
            (app, "") => app.to_owned(),
            ("", facility) => facility.to_owned(),
            (app, facility) => format!("{app} ({facility})"),
        };
        let trigger = self.msg.trigger().trim().to_owned();
        let display = format!(
            "HL7 v2 {}^{} {}",
            self.msg.message_type().trim(),
            trigger,
            self.msg.control_id().trim()
        );
        let builder = std::mem::replace(&mut self.bundle, BundleBuilder::new(""));
        let bundle = builder.finish(bundle::ProvenanceInfo {
            recorded,
            trigger,
            who,
            display,
        });
        Ok((bundle, std::mem::take(&mut self.warnings)))
    }
}
