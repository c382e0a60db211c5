//! ADT (HL7 v2 chapter 3, "Patient Administration") → Patient, Encounter, RelatedPerson,
//! Practitioner, CareTeam, AllergyIntolerance, Condition and Coverage, after the v2-to-FHIR
//! guide's segment maps (PID[Patient], PD1[Patient], PV1[Encounter], NK1[RelatedPerson],
//! AL1[AllergyIntolerance], DG1[Condition], IN1[Coverage]) and message maps (ADT_A01 …).
//!
//! The trigger decides the Encounter's status (chapter 3.3): A01/A04 in-progress, A05 planned,
//! A03 finished (end from PV1-45, else EVN-2, else MSH-7), A11 cancelled, A13 in-progress with
//! no end, A02 in-progress at the new location. A28/A31 (person information) write no
//! Encounter. A40 and its relatives are merges ([`merge`]).

use serde_json::{json, Value};

use super::codes;
use super::datatypes::{
    clean, comp, derived_value, first, fixed_coding, hd_system, location_display, Cwe, Ident,
    Person,
};
use super::{Ctx, MapError, Mapped, PatientIdentity, PatientRef, Seg};
use crate::ErrorCode;

const V3_PARTICIPATION: &str = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
const V2_PROVIDER_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0443";

/// ADT^A01 … A31 (not the merges).
pub(crate) fn map(ctx: &mut Ctx<'_, '_>, trigger: &str) -> Result<Mapped, MapError> {
    let patient = ctx.require_patient()?;
    let person_only = matches!(trigger, "A28" | "A31");
    let mut team = Vec::new();
    if let Some(pcp) = primary_care_provider(ctx) {
        team.push(("PP", "Primary Care Provider", pcp));
    }
    let mut encounter = None;
    if !person_only {
        if let Some(pv1) = ctx.first("PV1") {
            let (full_url, participants) = encounter_from_pv1(ctx, pv1, trigger, &patient)?;
            encounter = Some(full_url);
            team.extend(participants);
        }
    }
    for nk1 in ctx.all("NK1") {
        related_person_from_nk1(ctx, nk1, &patient);
    }
    for al1 in ctx.all("AL1") {
        allergy_from_al1(ctx, al1, &patient);
    }
    for dg1 in ctx.all("DG1") {
        condition_from_dg1(ctx, dg1, &patient, encounter.as_deref());
    }
    for in1 in ctx.all("IN1") {
        coverage_from_in1(ctx, in1, &patient);
    }
    care_team(ctx, &patient, team);
    ctx.finish()
}

/// The identity of a PID: the first PID-3 identifier of type MR, else the first (the
/// interface's rule), with every PID-3 identifier as FHIR Identifiers.
fn pid_identifiers(ctx: &mut Ctx<'_, '_>, pid: Seg<'_>) -> (Option<Ident>, Vec<Value>) {
    let default_system = ctx.options.default_identifier_system.clone();
    let at = pid.at(3);
    let mut found: Vec<(Ident, String, Value)> = Vec::new();
    for rep in pid.field(3).repetitions() {
        if let Some((ident, json)) = ctx.cx_identifier(&rep, &default_system, &at) {
            let id_type = comp(&rep, 5).to_ascii_uppercase();
            found.push((ident, id_type, json));
        }
    }
    let identity = found
        .iter()
        .find(|(_, t, _)| t == "MR")
        .or_else(|| found.first())
        .map(|(i, _, _)| i.clone());
    (identity, found.into_iter().map(|(_, _, j)| j).collect())
}

/// PID (and PD1) → the bundle's Patient, a conditional update on its PID-3 identity. Sets
/// `ctx.patient`; no PID or no PID-3 leaves it `None` (the callers that need a patient say
/// so with error 101).
pub(crate) fn patient_from_pid(ctx: &mut Ctx<'_, '_>) -> Result<(), MapError> {
    if ctx.patient.is_some() {
        return Ok(());
    }
    let Some(pid) = ctx.first("PID") else {
        return Ok(());
    };
    ctx.patient = patient_from_segment(ctx, pid)?;
    Ok(())
}

/// One PID segment as a Patient entry.
pub(crate) fn patient_from_segment(
    ctx: &mut Ctx<'_, '_>,
    pid: Seg<'_>,
) -> Result<Option<PatientRef>, MapError> {
    let (identity, identifiers) = pid_identifiers(ctx, pid);
    let Some(identity) = identity else {
        return Ok(None);
    };
    let mut patient = json!({
        "resourceType": "Patient",
        "identifier": identifiers,
        "active": true,
    });
    let names: Vec<Value> = pid
        .field(5)
        .repetitions()
        .filter_map(|rep| ctx.human_name(&rep, &pid.at(5)))
        .collect();
    let mut telecom: Vec<Value> = pid
        .field(13)
        .repetitions()
        .filter_map(|rep| ctx.contact_point(&rep, &pid.at(13)))
        .collect();
    for rep in pid.field(14).repetitions() {
        if let Some(mut cp) = ctx.contact_point(&rep, &pid.at(14)) {
            if cp.get("use").is_none_or(Value::is_null) {
                cp["use"] = json!("work");
            }
            telecom.push(cp);
        }
    }
    let addresses: Vec<Value> = pid
        .field(11)
        .repetitions()
        .filter_map(|rep| ctx.address(&rep, &pid.at(11)))
        .collect();
    patient["name"] = json!(names);
    patient["telecom"] = json!(telecom);
    patient["gender"] = json!(codes::gender(&first(&pid.field(8))));
    patient["birthDate"] = json!(ctx.date(&first(&pid.field(7)), &pid.at(7)));
    deceased(ctx, pid, &mut patient);
    patient["address"] = json!(addresses);
    patient["maritalStatus"] = marital_status(pid);
    multiple_birth(pid, &mut patient);
    let language = Cwe::from_rep(&pid.field(15).repetition(1)).concept();
    if let Some(language) = language {
        patient["communication"] = json!([{ "language": language }]);
    }
    if let Some(gp) = general_practitioner(ctx) {
        patient["generalPractitioner"] = json!([gp]);
    }
    // Matched on every PID-3 identifier, not only the first: a message listing an identifier the
    // patient is known by and another (a merged number, a new MRN) updates that patient instead
    // of creating a second one (comma = any of them, search.html#combining); if the
    // identifiers name two stored patients, the importer refuses the update (412, AE) rather
    // than guess.
    let ident = Ident::new(identity.system.clone(), identity.value.clone());
    let all: Vec<String> = patient["identifier"]
        .as_array()
        .map(|ids| {
            ids.iter()
                .filter_map(|i| {
                    Some(Ident::new(i["system"].as_str()?, i["value"].as_str()?).token())
                })
                .collect()
        })
        .unwrap_or_default();
    let full_url = if all.len() > 1 {
        ctx.bundle
            .put_query(patient, &format!("identifier={}", all.join(",")))
    } else {
        ctx.bundle.put(patient, &ident)
    };
    Ok(Some(PatientRef {
        full_url,
        identity: PatientIdentity {
            system: identity.system,
            value: identity.value,
        },
    }))
}

/// PID-29 death date/time, else PID-30 death indicator.
fn deceased(ctx: &mut Ctx<'_, '_>, pid: Seg<'_>, patient: &mut Value) {
    if let Some(when) = ctx.date_time(&first(&pid.field(29)), &pid.at(29)) {
        patient["deceasedDateTime"] = json!(when);
        return;
    }
    match first(&pid.field(30)).to_ascii_uppercase().as_str() {
        "Y" => patient["deceasedBoolean"] = json!(true),
        "N" => patient["deceasedBoolean"] = json!(false),
        _ => {}
    }
}

/// PID-25 birth order, else PID-24 multiple birth indicator.
fn multiple_birth(pid: Seg<'_>, patient: &mut Value) {
    if let Ok(order) = first(&pid.field(25)).parse::<u32>() {
        patient["multipleBirthInteger"] = json!(order);
        return;
    }
    match first(&pid.field(24)).to_ascii_uppercase().as_str() {
        "Y" => patient["multipleBirthBoolean"] = json!(true),
        "N" => patient["multipleBirthBoolean"] = json!(false),
        _ => {}
    }
}

/// PID-16 (table 0002) → maritalStatus, the v3 code beside the sender's own.
fn marital_status(pid: Seg<'_>) -> Value {
    let cwe = Cwe::from_rep(&pid.field(16).repetition(1));
    if cwe.is_empty() {
        return Value::Null;
    }
    match codes::marital_status(&cwe.code) {
        Some((system, code)) => json!({
            "coding": [fixed_coding(system, code, "")],
            "text": cwe.display(),
        }),
        None => cwe.concept().unwrap_or(Value::Null),
    }
}

/// PD1-4 (patient primary care provider, XCN) as a Person.
fn pd1_provider(ctx: &Ctx<'_, '_>) -> Option<Person> {
    let pd1 = ctx.first("PD1")?;
    let person = Person::from_xcn(&pd1.field(4).repetition(1));
    (!person.id.is_empty() || person.has_name()).then_some(person)
}

/// Patient.generalPractitioner from PD1-4: a conditional reference to the Practitioner entry
/// (the importer resolves it in the bundle or the store), display-only without an id.
fn general_practitioner(ctx: &mut Ctx<'_, '_>) -> Option<Value> {
    let person = pd1_provider(ctx)?;
    let reference = ctx.practitioner(&person)?;
    if person.id.is_empty() {
        return Some(reference);
    }
    let system = person
        .system
        .clone()
        .unwrap_or_else(|| ctx.local_system("staff"));
    let ident = Ident::new(system, person.id.clone());
    Some(json!({
        "reference": ident.conditional_reference("Practitioner"),
        "display": person.display(),
    }))
}

/// The PD1-4 provider's bundle reference, for the CareTeam.
fn primary_care_provider(ctx: &mut Ctx<'_, '_>) -> Option<Value> {
    let person = pd1_provider(ctx)?;
    ctx.practitioner(&person)
}

/// PV1 → Encounter (v2-to-fhir PV1[Encounter]): a conditional update on PV1-19 (visit
/// number), class from PV1-2, location PV1-3, participants PV1-7/8/9/17, period PV1-44/45,
/// status from the trigger. Returns its full URL and the practitioners with their
/// table 0443 roles, for the CareTeam.
fn encounter_from_pv1(
    ctx: &mut Ctx<'_, '_>,
    pv1: Seg<'_>,
    trigger: &str,
    patient: &PatientRef,
) -> Result<(String, Vec<TeamMember>), MapError> {
    let visit = visit_identifier(ctx, pv1);
    let (class_system, class_code, class_display) = codes::encounter_class(&first(&pv1.field(2)));
    let start = ctx.date_time(&first(&pv1.field(44)), &pv1.at(44));
    let mut end = ctx.date_time(&first(&pv1.field(45)), &pv1.at(45));
    let status = match trigger {
        "A05" => "planned",
        "A03" => {
            if end.is_none() {
                end = discharge_time(ctx);
            }
            "finished"
        }
        "A11" => "cancelled",
        "A13" => {
            end = None;
            "in-progress"
        }
        "A08" if end.is_some() => "finished",
        _ => "in-progress",
    };
    let (participants, team) = encounter_participants(ctx, pv1);
    let mut locations = Vec::new();
    let current = location_display(&pv1.field(3).repetition(1));
    if !current.is_empty() {
        locations.push(json!({ "location": { "display": current }, "status": "active" }));
    }
    if trigger == "A02" {
        let prior = location_display(&pv1.field(6).repetition(1));
        if !prior.is_empty() {
            locations.push(json!({ "location": { "display": prior }, "status": "completed" }));
        }
    }
    let reason = ctx
        .first("PV2")
        .and_then(|pv2| Cwe::from_rep(&pv2.field(3).repetition(1)).concept());
    let service = Cwe::from_rep(&pv1.field(10).repetition(1));
    let disposition = Cwe::from_rep(&pv1.field(36).repetition(1));
    let encounter = json!({
        "resourceType": "Encounter",
        "identifier": [visit.as_ref().map(Ident::json)],
        "status": status,
        "class": fixed_coding(class_system, class_code, class_display),
        "serviceType": table_concept(&service, "0069"),
        "subject": patient.reference(),
        "participant": participants,
        "period": { "start": start, "end": end },
        "reasonCode": [reason],
        "hospitalization": { "dischargeDisposition": table_concept(&disposition, "0112") },
        "location": locations,
    });
    let full_url = match &visit {
        Some(visit) => ctx.bundle.put(encounter, visit),
        None => {
            ctx.warn(format!(
                "{}: no visit number; the encounter cannot be matched by later messages",
                pv1.at(19)
            ));
            ctx.bundle.post("encounter", encounter)
        }
    };
    Ok((full_url, team))
}

/// A CWE from a v2 table (`0069`): its code in that table's code system when the sender gave
/// no system.
fn table_concept(cwe: &Cwe, table: &str) -> Value {
    if cwe.is_empty() {
        return Value::Null;
    }
    let mut cwe = cwe.clone();
    if cwe.system.is_empty() {
        cwe.system = format!("HL7{table}");
    }
    cwe.concept().unwrap_or(Value::Null)
}

/// PV1-19 visit number: system from its assigning authority, else
/// `urn:rapport:hl7v2:<facility>:visit`.
pub(crate) fn visit_identifier(ctx: &Ctx<'_, '_>, pv1: Seg<'_>) -> Option<Ident> {
    let rep = pv1.field(19).repetition(1);
    let value = comp(&rep, 1);
    if value.is_empty() {
        return None;
    }
    let system = hd_system(&rep.component(4)).unwrap_or_else(|| ctx.local_system("visit"));
    Some(Ident::new(system, value))
}

/// The end of a discharged visit without PV1-45: EVN-2 (recorded date/time), else MSH-7.
fn discharge_time(ctx: &mut Ctx<'_, '_>) -> Option<String> {
    if let Some(evn) = ctx.first("EVN") {
        if let Some(when) = ctx.date_time(&first(&evn.field(2)), &evn.at(2)) {
            return Some(when);
        }
    }
    let msh = ctx.segs[0];
    ctx.date_time(&first(&msh.field(7)), &msh.at(7))
}

type TeamMember = (&'static str, &'static str, Value);

/// PV1-7 attending, 8 referring, 9 consulting, 17 admitting → Encounter.participant (v3
/// ParticipationType ATND, REF, CON, ADM) and CareTeam members (table 0443 AT, RP, CP, AD).
fn encounter_participants(ctx: &mut Ctx<'_, '_>, pv1: Seg<'_>) -> (Vec<Value>, Vec<TeamMember>) {
    const ROLES: [(usize, &str, &str, &str, &str); 4] = [
        (7, "ATND", "attender", "AT", "Attending"),
        (8, "REF", "referrer", "RP", "Referring Provider"),
        (9, "CON", "consultant", "CP", "Consulting Provider"),
        (17, "ADM", "admitter", "AD", "Admitting"),
    ];
    let mut participants = Vec::new();
    let mut team = Vec::new();
    for (field, code, display, role, role_display) in ROLES {
        for rep in pv1.field(field).repetitions() {
            let Some(reference) = ctx.xcn_practitioner(&rep) else {
                continue;
            };
            participants.push(json!({
                "type": [{ "coding": [fixed_coding(V3_PARTICIPATION, code, display)] }],
                "individual": reference,
            }));
            team.push((role, role_display, reference));
        }
    }
    (participants, team)
}

/// One CareTeam per patient and sending facility, listing the practitioners of the message
/// with their roles; its identifier makes later messages update it rather than add one.
fn care_team(ctx: &mut Ctx<'_, '_>, patient: &PatientRef, members: Vec<TeamMember>) {
    let mut participants: Vec<Value> = Vec::new();
    for (role, display, member) in members {
        let participant = json!({
            "role": [{ "coding": [fixed_coding(V2_PROVIDER_ROLE, role, display)] }],
            "member": member,
        });
        if !participants.contains(&participant) {
            participants.push(participant);
        }
    }
    if participants.is_empty() {
        return;
    }
    let ident = Ident::new(
        ctx.local_system("care-team"),
        derived_value(&[&patient.identity.system, &patient.identity.value]),
    );
    let team = json!({
        "resourceType": "CareTeam",
        "identifier": [ident.json()],
        "status": "active",
        "name": "Care team from HL7 v2 feed",
        "subject": patient.reference(),
        "participant": participants,
    });
    ctx.bundle.put(team, &ident);
}

/// NK1 → RelatedPerson (v2-to-fhir NK1[RelatedPerson]): 2 name, 3 relationship (table 0063,
/// to v3 RoleCode), 4 address, 5/6 phones, 7 contact role (table 0131), 8/9 period, 15 sex,
/// 16 birth date. Identified by patient + name + relationship.
fn related_person_from_nk1(ctx: &mut Ctx<'_, '_>, nk1: Seg<'_>, patient: &PatientRef) {
    let names: Vec<Value> = nk1
        .field(2)
        .repetitions()
        .filter_map(|rep| ctx.human_name(&rep, &nk1.at(2)))
        .collect();
    let organisation = first(&nk1.field(13));
    let relationship = Cwe::from_rep(&nk1.field(3).repetition(1));
    let role = Cwe::from_rep(&nk1.field(7).repetition(1));
    let name_key = clean(&nk1.field(2).repetition(1).text());
    if name_key.is_empty() && organisation.is_empty() && relationship.is_empty() {
        ctx.warn(format!(
            "{}: next of kin without name or relationship, left out",
            nk1.at(2)
        ));
        return;
    }
    let mut relationships = Vec::new();
    if !relationship.is_empty() {
        let mut codings = Vec::new();
        if let Some((system, code, display)) = codes::relationship(&relationship.code) {
            codings.push(fixed_coding(system, code, display));
        }
        let mut original = relationship.clone();
        if original.system.is_empty() {
            original.system = "HL70063".to_owned();
        }
        if let Some(c) = original.coding() {
            codings.push(c);
        }
        relationships.push(json!({ "coding": codings, "text": relationship.display() }));
    }
    if let Some(display) = codes::contact_role(&role.code) {
        relationships.push(json!({
            "coding": [fixed_coding(
                "http://terminology.hl7.org/CodeSystem/v2-0131", &role.code.to_ascii_uppercase(), display)],
        }));
    }
    let mut telecom: Vec<Value> = Vec::new();
    for field in [5, 6] {
        for rep in nk1.field(field).repetitions() {
            if let Some(cp) = ctx.contact_point(&rep, &nk1.at(field)) {
                telecom.push(cp);
            }
        }
    }
    let addresses: Vec<Value> = nk1
        .field(4)
        .repetitions()
        .filter_map(|rep| ctx.address(&rep, &nk1.at(4)))
        .collect();
    let ident = Ident::new(
        ctx.local_system("related-person"),
        derived_value(&[
            &patient.identity.system,
            &patient.identity.value,
            &name_key,
            &organisation,
            &relationship.code,
        ]),
    );
    let names = if names.is_empty() {
        json!([{ "text": organisation }])
    } else {
        json!(names)
    };
    let period = ctx.period(&first(&nk1.field(8)), &first(&nk1.field(9)), &nk1.at(8));
    let birth_date = ctx.date(&first(&nk1.field(16)), &nk1.at(16));
    let person = json!({
        "resourceType": "RelatedPerson",
        "identifier": [ident.json()],
        "active": true,
        "patient": patient.reference(),
        "relationship": relationships,
        "name": names,
        "telecom": telecom,
        "gender": codes::gender(&first(&nk1.field(15))),
        "birthDate": birth_date,
        "address": addresses,
        "period": period,
    });
    ctx.bundle.put(person, &ident);
}

/// AL1 → AllergyIntolerance (v2-to-fhir AL1[AllergyIntolerance]): 2 allergen type (table
/// 0127) → category/type, 3 allergen → code, 4 severity (table 0128) → criticality and
/// reaction severity, 5 reaction → manifestation, 6 identification date → onset.
fn allergy_from_al1(ctx: &mut Ctx<'_, '_>, al1: Seg<'_>, patient: &PatientRef) {
    let allergen = Cwe::from_rep(&al1.field(3).repetition(1));
    let Some(code) = allergen.concept() else {
        ctx.warn(format!("{}: allergy without allergen, left out", al1.at(3)));
        return;
    };
    let (category, kind) = codes::allergy_category(&first(&al1.field(2)));
    let (severity, criticality) = codes::allergy_severity(&first(&al1.field(4)));
    let manifestations: Vec<Value> = al1
        .field(5)
        .repetitions()
        .map(|rep| clean(&rep.value()))
        .filter(|s| !s.is_empty())
        .map(|text| json!({ "text": text }))
        .collect();
    let reaction = if manifestations.is_empty() {
        Value::Null
    } else {
        json!([{ "manifestation": manifestations, "severity": severity }])
    };
    let ident = Ident::new(
        ctx.local_system("allergy"),
        derived_value(&[
            &patient.identity.system,
            &patient.identity.value,
            &allergen.system,
            &allergen.code,
            &allergen.text,
        ]),
    );
    let onset = ctx.date_time(&first(&al1.field(6)), &al1.at(6));
    let allergy = json!({
        "resourceType": "AllergyIntolerance",
        "identifier": [ident.json()],
        "clinicalStatus": { "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/allergyintolerance-clinical", "active", "Active")] },
        "type": kind,
        "category": [category],
        "criticality": criticality,
        "code": code,
        "patient": patient.reference(),
        "onsetDateTime": onset,
        "reaction": reaction,
    });
    ctx.bundle.put(allergy, &ident);
}

/// DG1 → Condition (v2-to-fhir DG1[Condition]): 3 diagnosis code (system from CWE-3, else
/// DG1-2), 4 description, 5 diagnosis date → recordedDate, 6 type → verification status.
fn condition_from_dg1(
    ctx: &mut Ctx<'_, '_>,
    dg1: Seg<'_>,
    patient: &PatientRef,
    encounter: Option<&str>,
) {
    let mut diagnosis = Cwe::from_rep(&dg1.field(3).repetition(1));
    if diagnosis.system.is_empty() {
        diagnosis.system = first(&dg1.field(2));
    }
    let description = first(&dg1.field(4));
    if diagnosis.text.is_empty() {
        diagnosis.text = description.clone();
    }
    let Some(code) = diagnosis.concept() else {
        ctx.warn(format!("{}: diagnosis without code, left out", dg1.at(3)));
        return;
    };
    let verification = codes::diagnosis_verification(&first(&dg1.field(6))).map(|v| {
        json!({ "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/condition-ver-status", v, "")] })
    });
    let ident = Ident::new(
        ctx.local_system("condition"),
        derived_value(&[
            &patient.identity.system,
            &patient.identity.value,
            &diagnosis.system,
            &diagnosis.code,
            &diagnosis.text,
        ]),
    );
    let recorded = ctx.date_time(&first(&dg1.field(5)), &dg1.at(5));
    let condition = json!({
        "resourceType": "Condition",
        "identifier": [ident.json()],
        "clinicalStatus": { "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/condition-clinical", "active", "Active")] },
        "verificationStatus": verification,
        "category": [{ "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/condition-category",
            "encounter-diagnosis", "Encounter Diagnosis")] }],
        "code": code,
        "subject": patient.reference(),
        "encounter": encounter.map(|e| json!({ "reference": e })),
        "recordedDate": recorded,
    });
    ctx.bundle.put(condition, &ident);
}

/// IN1 → Coverage (v2-to-fhir IN1[Coverage]): 2 plan → class, 3/4 company → payor, 8/9
/// group, 12/13 period, 15 plan type, 17 insured's relationship, 36 policy number →
/// subscriberId. Identified by patient + plan + policy number.
fn coverage_from_in1(ctx: &mut Ctx<'_, '_>, in1: Seg<'_>, patient: &PatientRef) {
    let plan = Cwe::from_rep(&in1.field(2).repetition(1));
    let policy = first(&in1.field(36));
    let company_id = first(&in1.field(3));
    let company = first(&in1.field(4));
    if plan.is_empty() && policy.is_empty() && company.is_empty() && company_id.is_empty() {
        ctx.warn(format!(
            "{}: insurance without plan or policy, left out",
            in1.at(2)
        ));
        return;
    }
    let ident = Ident::new(
        ctx.local_system("coverage"),
        derived_value(&[
            &patient.identity.system,
            &patient.identity.value,
            &plan.code,
            &policy,
            &company_id,
        ]),
    );
    let payor = if company.is_empty() && company_id.is_empty() {
        json!({ "display": "unknown payor" })
    } else {
        json!({
            "identifier": if company_id.is_empty() { Value::Null } else { json!({ "value": company_id }) },
            "display": company,
        })
    };
    let class_type = |code: &str| {
        json!({ "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/coverage-class", code, "")] })
    };
    let mut classes = Vec::new();
    if !plan.code.is_empty() {
        classes.push(json!({ "type": class_type("plan"), "value": plan.code, "name": plan.text }));
    }
    let group = first(&in1.field(8));
    if !group.is_empty() {
        classes.push(
            json!({ "type": class_type("group"), "value": group, "name": first(&in1.field(9)) }),
        );
    }
    let plan_type = Cwe::from_rep(&in1.field(15).repetition(1));
    let relationship = match first(&in1.field(17)).to_ascii_uppercase().as_str() {
        "SEL" => Some("self"),
        "SPO" | "DOM" => Some("spouse"),
        "CHD" | "NCH" | "SCH" | "FCH" => Some("child"),
        "PAR" | "MTH" | "FTH" => Some("parent"),
        "" => None,
        _ => Some("other"),
    };
    let period = ctx.period(&first(&in1.field(12)), &first(&in1.field(13)), &in1.at(12));
    let coverage = json!({
        "resourceType": "Coverage",
        "identifier": [ident.json()],
        "status": "active",
        "type": plan_type.concept(),
        "subscriberId": policy,
        "beneficiary": patient.reference(),
        "relationship": relationship.map(|r| json!({ "coding": [fixed_coding(
            "http://terminology.hl7.org/CodeSystem/subscriber-relationship", r, "")] })),
        "period": period,
        "payor": [payor],
        "class": classes,
    });
    ctx.bundle.put(coverage, &ident);
}

/// The patient an MRG-1 names (MR first, else the first identifier; system from CX-4).
fn mrg_identity(ctx: &mut Ctx<'_, '_>, mrg: Seg<'_>) -> Option<Ident> {
    let default_system = ctx.options.default_identifier_system.clone();
    let mut found = Vec::new();
    for field in [1, 4] {
        for rep in mrg.field(field).repetitions() {
            if let Some((ident, _)) = ctx.cx_identifier(&rep, &default_system, &mrg.at(field)) {
                found.push((ident, comp(&rep, 5).to_ascii_uppercase()));
            }
        }
        if !found.is_empty() {
            break;
        }
    }
    found
        .iter()
        .find(|(_, t)| t == "MR")
        .or_else(|| found.first())
        .map(|(i, _)| i.clone())
}

/// ADT^A40 (merge patient, chapter 3.3.40) and A34/A35/A36/A39: the survivor is PID-3, the
/// loser MRG-1. A self-merge (hard case B10) is an error 205 at MRG^1^1. A message with more
/// than one PID/MRG pair is mapped on its first pair, with a warning for the others.
pub(crate) fn merge(ctx: &mut Ctx<'_, '_>, _trigger: &str) -> Result<Mapped, MapError> {
    let survivor = ctx.require_patient()?;
    let Some(mrg) = ctx.first("MRG") else {
        return Err(MapError::new(
            "MRG",
            1,
            Some(1),
            ErrorCode::RequiredFieldMissing,
            "a merge needs an MRG segment",
        ));
    };
    let Some(loser) = mrg_identity(ctx, mrg) else {
        return Err(mrg.error(
            1,
            ErrorCode::RequiredFieldMissing,
            "MRG-1 (prior patient identifier) is required",
        ));
    };
    let pid = ctx.first("PID").expect("require_patient found it");
    let (_, survivor_identifiers) = pid_identifiers(ctx, pid);
    let is_self = survivor_identifiers.iter().any(|i| {
        i.get("system").and_then(Value::as_str) == Some(loser.system.as_str())
            && i.get("value").and_then(Value::as_str) == Some(loser.value.as_str())
    });
    if is_self {
        return Err(mrg.error(
            1,
            ErrorCode::DuplicateKeyIdentifier,
            "MRG-1 names the surviving patient of PID-3: a patient cannot be merged into itself",
        ));
    }
    // Several merges in one message (A40 allows repeating PID/MRG groups): refused whole rather
    // than applied in part, since an AA would tell the sender that every merge was done.
    let pairs = ctx.all("MRG").len();
    if pairs > 1 {
        return Err(MapError::new(
            "MRG",
            2,
            Some(1),
            ErrorCode::ApplicationInternalError,
            format!(
                "{pairs} PID/MRG pairs in one message are not applied: send one merge per message"
            ),
        ));
    }
    let survivor = survivor.identity;
    let (bundle, warnings) = ctx.finish_bundle()?;
    Ok(Mapped::Merge {
        survivor,
        loser: PatientIdentity {
            system: loser.system,
            value: loser.value,
        },
        bundle,
        warnings,
    })
}
