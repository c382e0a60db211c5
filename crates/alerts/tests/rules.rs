//! Every alert rule at the edges of its window, with FHIR R4 data built here and `now` moved
//! an hour or a day either side of each boundary ("time travel"). The care team's time zone is
//! UTC (`utc_offset_minutes = 0`, the default), so the days in the `why` texts are UTC days.

use rapport_alerts::{evaluate, Alert, Config, PatientData, Severity};
use serde_json::{json, Value};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

/// An RFC 3339 instant in ms since the epoch.
fn ms(s: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(s)
        .unwrap_or_else(|e| panic!("{s}: {e}"))
        .timestamp_millis()
}

/// An instant as FHIR writes it: `2026-06-05T10:00:00Z`.
fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// The fixed "now" of these tests: Friday 4 Dec 2026, 10:00 UTC.
fn now() -> i64 {
    ms("2026-12-04T10:00:00Z")
}

fn patient(birth_date: &str) -> Value {
    json!({
        "resourceType": "Patient",
        "id": "p1",
        "name": [{"family": "Example", "given": ["Pat"]}],
        "gender": "female",
        "birthDate": birth_date,
    })
}

/// A 46 year old (no age-based immunization gaps) with `resources`.
fn data(resources: Vec<Value>) -> PatientData {
    let mut all = vec![patient("1980-03-01")];
    all.extend(resources);
    PatientData::new("p1", all)
}

/// The alerts of `rule` for `resources` at `at`, with the default parameters.
fn alerts(resources: &[Value], at: i64, rule: &str) -> Vec<Alert> {
    alerts_with(&Config::default(), resources, at, rule)
}

fn alerts_with(config: &Config, resources: &[Value], at: i64, rule: &str) -> Vec<Alert> {
    evaluate(&data(resources.to_vec()), config, at)
        .into_iter()
        .filter(|a| a.rule == rule)
        .collect()
}

/// The one alert of `rule` at `at`.
#[track_caller]
fn only(resources: &[Value], at: i64, rule: &str) -> Alert {
    let mut found = alerts(resources, at, rule);
    assert_eq!(
        found.len(),
        1,
        "one {rule} alert expected at {}, got {found:#?}",
        iso(at)
    );
    found.remove(0)
}

/// No alert of `rule` at `at`.
#[track_caller]
fn no(resources: &[Value], at: i64, rule: &str) {
    let found = alerts(resources, at, rule);
    assert!(
        found.is_empty(),
        "no {rule} alert expected at {}, got {found:#?}",
        iso(at)
    );
}

fn causes(found: &[Alert]) -> Vec<&str> {
    found.iter().map(|a| a.cause.as_str()).collect()
}

// ---------------------------------------------------------------------------------------------
// missed-appointment

const MISSED: &str = "missed-appointment";

fn service(code: &str, text: &str) -> Value {
    json!([{
        "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/service-type",
            "code": code,
        }],
        "text": text,
    }])
}

fn appointment(id: &str, status: &str, start: &str, end: &str, service_type: Value) -> Value {
    json!({
        "resourceType": "Appointment",
        "id": id,
        "status": status,
        "serviceType": service_type,
        "start": start,
        "end": end,
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": "accepted"},
            {"actor": {"reference": "Practitioner/dr1"}, "status": "accepted"},
        ],
    })
}

fn gp_appointment(id: &str, status: &str, start: &str, end: &str) -> Value {
    appointment(id, status, start, end, service("124", "General practice"))
}

/// Booked 3 Dec 2026 09:00–09:30: with 4 h grace it is missed from 13:30.
fn booked_yesterday() -> Value {
    gp_appointment(
        "a1",
        "booked",
        "2026-12-03T09:00:00Z",
        "2026-12-03T09:30:00Z",
    )
}

#[test]
fn missed_noshow_within_lookback() {
    let noshow = gp_appointment(
        "a1",
        "noshow",
        "2026-11-20T14:00:00Z",
        "2026-11-20T14:15:00Z",
    );
    let a = only(&[noshow], now(), MISSED);
    assert_eq!(a.rule, "missed-appointment");
    assert_eq!(a.cause, "Appointment/a1");
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.title, "Missed appointment");
    assert_eq!(
        a.why,
        "General practice on 20 Nov 2026 14:00: did not attend; not rebooked"
    );
    assert_eq!(a.due_ms, None);
    assert_eq!(a.focus.as_deref(), Some("Appointment/a1"));
}

#[test]
fn missed_noshow_reported_at_once_without_grace() {
    // A no-show is a fact, not an inference: no grace period.
    let noshow = gp_appointment(
        "a1",
        "noshow",
        "2026-12-04T09:00:00Z",
        "2026-12-04T09:30:00Z",
    );
    let a = only(&[noshow], now(), MISSED);
    assert_eq!(
        a.why,
        "General practice on 4 Dec 2026 09:00: did not attend; not rebooked"
    );
}

#[test]
fn missed_noshow_older_than_lookback_is_history() {
    // Lookback 30 days: the appointment started exactly 30 days before `now`.
    let noshow = gp_appointment(
        "a1",
        "noshow",
        "2026-11-04T10:00:00Z",
        "2026-11-04T10:30:00Z",
    );
    let r = [noshow];
    only(&r, now() - HOUR, MISSED);
    only(&r, now(), MISSED);
    no(&r, now() + HOUR, MISSED);
    no(&r, now() + DAY, MISSED);
}

#[test]
fn missed_booked_after_grace_with_no_encounter() {
    let r = [booked_yesterday()];
    // Before the appointment and during it: nothing.
    no(&r, ms("2026-12-03T08:00:00Z"), MISSED);
    no(&r, ms("2026-12-03T09:15:00Z"), MISSED);
    // End 09:30 + 4 h grace = 13:30.
    no(&r, ms("2026-12-03T12:30:00Z"), MISSED);
    no(&r, ms("2026-12-03T13:29:59Z"), MISSED);
    let on = only(&r, ms("2026-12-03T13:30:00Z"), MISSED);
    assert_eq!(on.cause, "Appointment/a1");
    assert_eq!(on.severity, Severity::High);
    assert_eq!(
        on.why,
        "General practice on 3 Dec 2026 09:00: no encounter recorded; not rebooked"
    );
    assert_eq!(on.due_ms, None);
    let later = only(&r, now(), MISSED);
    assert_eq!(later, on);
}

#[test]
fn missed_booked_without_end_counts_from_start() {
    let mut a = booked_yesterday();
    a.as_object_mut().unwrap().remove("end");
    let r = [a];
    no(&r, ms("2026-12-03T12:59:00Z"), MISSED);
    only(&r, ms("2026-12-03T13:00:00Z"), MISSED);
}

#[test]
fn missed_booked_older_than_lookback_is_history() {
    let r = [booked_yesterday()];
    only(&r, ms("2026-12-03T09:00:00Z") + 30 * DAY, MISSED);
    no(&r, ms("2026-12-03T09:00:00Z") + 30 * DAY + HOUR, MISSED);
}

#[test]
fn missed_booked_with_an_encounter_for_it_is_not_missed() {
    // Encounter.appointment names it (no period, so only the reference can match).
    let encounter = json!({
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "appointment": [{"reference": "Appointment/a1"}],
    });
    no(&[booked_yesterday(), encounter.clone()], now(), MISSED);
    // An absolute reference names it too.
    let mut absolute = encounter.clone();
    absolute["appointment"] = json!([{"reference": "https://ehr.example.org/fhir/Appointment/a1"}]);
    no(&[booked_yesterday(), absolute], now(), MISSED);
    // An encounter for another appointment does not.
    let mut other = encounter.clone();
    other["appointment"] = json!([{"reference": "Appointment/a9"}]);
    only(&[booked_yesterday(), other], now(), MISSED);
    // Nor one entered in error.
    let mut wrong = encounter;
    wrong["status"] = json!("entered-in-error");
    only(&[booked_yesterday(), wrong], now(), MISSED);
}

#[test]
fn missed_booked_with_an_encounter_that_day_is_not_missed() {
    let encounter = json!({
        "resourceType": "Encounter",
        "id": "e1",
        "status": "finished",
        "class": {"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "AMB"},
        "subject": {"reference": "Patient/p1"},
        "period": {"start": "2026-12-03T09:05:00Z", "end": "2026-12-03T09:25:00Z"},
    });
    no(&[booked_yesterday(), encounter.clone()], now(), MISSED);
    let mut next_day = encounter;
    next_day["period"] = json!({"start": "2026-12-04T09:05:00Z"});
    only(&[booked_yesterday(), next_day], now(), MISSED);
}

#[test]
fn missed_cleared_when_the_same_service_is_rebooked() {
    let noshow = gp_appointment(
        "a1",
        "noshow",
        "2026-11-20T14:00:00Z",
        "2026-11-20T14:15:00Z",
    );
    let rebooked = gp_appointment(
        "a2",
        "booked",
        "2026-12-10T09:00:00Z",
        "2026-12-10T09:15:00Z",
    );
    no(&[noshow.clone(), rebooked.clone()], now(), MISSED);
    no(&[booked_yesterday(), rebooked.clone()], now(), MISSED);

    // Another service is not a rebooking.
    let physio = appointment(
        "a3",
        "booked",
        "2026-12-10T09:00:00Z",
        "2026-12-10T09:30:00Z",
        service("165", "Physiotherapy"),
    );
    assert_eq!(
        causes(&alerts(&[noshow.clone(), physio], now(), MISSED)),
        ["Appointment/a1"]
    );
    // Nor a cancelled one, nor an earlier one.
    let mut cancelled = rebooked.clone();
    cancelled["status"] = json!("cancelled");
    only(&[noshow.clone(), cancelled], now(), MISSED);
    let earlier = gp_appointment(
        "a0",
        "fulfilled",
        "2026-11-01T09:00:00Z",
        "2026-11-01T09:15:00Z",
    );
    only(&[noshow.clone(), earlier], now(), MISSED);
    // A proposed (not yet booked) one counts: the patient is being rebooked.
    let mut proposed = rebooked;
    proposed["status"] = json!("proposed");
    no(&[noshow, proposed], now(), MISSED);
}

#[test]
fn missed_other_statuses_are_not_missed() {
    for status in [
        "cancelled",
        "fulfilled",
        "arrived",
        "checked-in",
        "pending",
        "proposed",
    ] {
        let a = gp_appointment("a1", status, "2026-12-03T09:00:00Z", "2026-12-03T09:30:00Z");
        no(&[a], now(), MISSED);
    }
}

// ---------------------------------------------------------------------------------------------
// unconfirmed-appointment

const UNCONFIRMED: &str = "unconfirmed-appointment";

fn review(status: &str, start: &str, patient_status: &str) -> Value {
    json!({
        "resourceType": "Appointment",
        "id": "u1",
        "status": status,
        "serviceType": [{"text": "Diabetes review"}],
        "start": start,
        "end": "2026-12-05T09:50:00Z",
        "participant": [
            {"actor": {"reference": "Patient/p1"}, "status": patient_status},
            {"actor": {"reference": "Practitioner/dr1"}, "status": "accepted"},
        ],
    })
}

#[test]
fn unconfirmed_pending_tomorrow() {
    let r = [review("pending", "2026-12-05T09:30:00Z", "needs-action")];
    let a = only(&r, now(), UNCONFIRMED);
    assert_eq!(a.rule, "unconfirmed-appointment");
    assert_eq!(a.cause, "Appointment/u1");
    assert_eq!(a.severity, Severity::Normal);
    assert_eq!(a.title, "Appointment to confirm");
    assert_eq!(
        a.why,
        "Diabetes review tomorrow, 5 Dec 2026 09:30: not confirmed (pending)"
    );
    assert_eq!(a.due_ms, Some(ms("2026-12-05T09:30:00Z")));
    assert_eq!(a.focus.as_deref(), Some("Appointment/u1"));

    let proposed = [review("proposed", "2026-12-05T09:30:00Z", "needs-action")];
    assert_eq!(
        only(&proposed, now(), UNCONFIRMED).why,
        "Diabetes review tomorrow, 5 Dec 2026 09:30: not confirmed (proposed)"
    );
}

#[test]
fn unconfirmed_only_the_day_before() {
    let r = [review("pending", "2026-12-05T09:30:00Z", "needs-action")];
    // 3 Dec: the day after tomorrow.
    no(&r, ms("2026-12-03T10:00:00Z"), UNCONFIRMED);
    no(&r, ms("2026-12-03T23:59:59Z"), UNCONFIRMED);
    // All of 4 Dec: tomorrow.
    only(&r, ms("2026-12-04T00:00:00Z"), UNCONFIRMED);
    only(&r, ms("2026-12-04T23:59:59Z"), UNCONFIRMED);
    // 5 Dec: today, before and after it starts.
    no(&r, ms("2026-12-05T00:00:00Z"), UNCONFIRMED);
    no(&r, ms("2026-12-05T09:00:00Z"), UNCONFIRMED);
}

#[test]
fn unconfirmed_booked_but_the_patient_has_not_accepted() {
    for patient_status in ["needs-action", "tentative"] {
        let r = [review("booked", "2026-12-05T09:30:00Z", patient_status)];
        let a = only(&r, now(), UNCONFIRMED);
        assert_eq!(
            a.why,
            "Diabetes review tomorrow, 5 Dec 2026 09:30: not confirmed (the patient has not accepted)"
        );
        assert_eq!(a.severity, Severity::Normal);
    }
}

#[test]
fn unconfirmed_booked_and_accepted_is_confirmed() {
    no(
        &[review("booked", "2026-12-05T09:30:00Z", "accepted")],
        now(),
        UNCONFIRMED,
    );
    // A practitioner who has not accepted is not the patient.
    let mut a = review("booked", "2026-12-05T09:30:00Z", "accepted");
    a["participant"][1]["status"] = json!("needs-action");
    no(&[a], now(), UNCONFIRMED);
    // Nor are other statuses tomorrow.
    for status in ["cancelled", "arrived", "fulfilled", "noshow"] {
        no(
            &[review(status, "2026-12-05T09:30:00Z", "needs-action")],
            now(),
            UNCONFIRMED,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// refill-due

const REFILL: &str = "refill-due";

fn metformin() -> Value {
    json!({
        "coding": [{
            "system": "http://www.nlm.nih.gov/research/umls/rxnorm",
            "code": "861007",
            "display": "metformin hydrochloride 500 MG Oral Tablet",
        }],
        "text": "Metformin 500 mg",
    })
}

/// Active, 60 tablets for 60 days, valid from 1 Nov 2026.
fn prescription() -> Value {
    json!({
        "resourceType": "MedicationRequest",
        "id": "mr1",
        "status": "active",
        "intent": "order",
        "medicationCodeableConcept": metformin(),
        "subject": {"reference": "Patient/p1"},
        "authoredOn": "2026-10-30",
        "dosageInstruction": [{"text": "1 tablet once daily"}],
        "dispenseRequest": {
            "validityPeriod": {"start": "2026-11-01", "end": "2027-11-01"},
            "numberOfRepeatsAllowed": 5,
            "quantity": {"value": 60, "unit": "tablets"},
            "expectedSupplyDuration": {
                "value": 60,
                "unit": "days",
                "system": "http://unitsofmeasure.org",
                "code": "d",
            },
        },
    })
}

fn dispense(id: &str, handed_over: &str, quantity: i64, days_supply: Option<i64>) -> Value {
    let mut d = json!({
        "resourceType": "MedicationDispense",
        "id": id,
        "status": "completed",
        "medicationCodeableConcept": metformin(),
        "subject": {"reference": "Patient/p1"},
        "authorizingPrescription": [{"reference": "MedicationRequest/mr1"}],
        "quantity": {"value": quantity, "unit": "tablets"},
        "whenHandedOver": handed_over,
    });
    if let Some(days) = days_supply {
        d["daysSupply"] = json!({
            "value": days,
            "unit": "days",
            "system": "http://unitsofmeasure.org",
            "code": "d",
        });
    }
    d
}

/// 30 tablets for 30 days handed over 2 Nov 2026 10:00: runs out 2 Dec 2026 10:00.
fn dispensed_2_nov() -> Value {
    dispense("md1", "2026-11-02T10:00:00Z", 30, Some(30))
}

const RUNOUT: &str = "2026-12-02T10:00:00Z";

#[test]
fn refill_window_from_the_last_dispense() {
    let r = [prescription(), dispensed_2_nov()];
    let runout = ms(RUNOUT);
    // 8 days before run-out, and an hour short of 7 days: nothing yet.
    no(&r, runout - 8 * DAY, REFILL);
    no(&r, runout - 7 * DAY - HOUR, REFILL);
    // 7 days before: due.
    let due = only(&r, runout - 7 * DAY, REFILL);
    assert_eq!(due.rule, "refill-due");
    assert_eq!(due.cause, "MedicationRequest/mr1@2026-12-02");
    assert_eq!(due.severity, Severity::Normal);
    assert_eq!(due.title, "Refill due");
    assert_eq!(
        due.why,
        "Metformin 500 mg: 30 tablets dispensed on 2 Nov 2026, runs out 2 Dec 2026"
    );
    assert_eq!(due.due_ms, Some(runout));
    assert_eq!(due.focus.as_deref(), Some("MedicationRequest/mr1"));
    // An hour before run-out: still only due.
    assert_eq!(only(&r, runout - HOUR, REFILL), due);
    // On and after run-out: escalated, same cause (the same alert).
    for at in [runout, runout + HOUR, now()] {
        let out = only(&r, at, REFILL);
        assert_eq!(out.cause, "MedicationRequest/mr1@2026-12-02");
        assert_eq!(out.severity, Severity::High);
        assert_eq!(out.title, "Medication ran out");
        assert_eq!(
            out.why,
            "Metformin 500 mg: 30 tablets dispensed on 2 Nov 2026, ran out 2 Dec 2026"
        );
        assert_eq!(out.due_ms, Some(runout));
    }
}

#[test]
fn refill_run_out_longer_ago_than_stale_days_is_taken_as_stopped() {
    let r = [prescription(), dispensed_2_nov()];
    let runout = ms(RUNOUT);
    assert_eq!(only(&r, runout + 59 * DAY, REFILL).severity, Severity::High);
    assert_eq!(only(&r, runout + 60 * DAY, REFILL).severity, Severity::High);
    no(&r, runout + 60 * DAY + HOUR, REFILL);
    no(&r, runout + 61 * DAY, REFILL);
}

#[test]
fn refill_a_newer_dispense_moves_the_run_out_and_the_cause() {
    let newer = dispense("md2", "2026-12-01T10:00:00Z", 30, Some(30));
    let r = [prescription(), dispensed_2_nov(), newer];
    // Now (4 Dec) the old supply would have run out; the new one lasts to 31 Dec.
    no(&r, now(), REFILL);
    no(&r, ms("2026-12-24T09:00:00Z"), REFILL);
    let a = only(&r, ms("2026-12-24T10:00:00Z"), REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2026-12-31");
    assert_eq!(a.severity, Severity::Normal);
    assert_eq!(
        a.why,
        "Metformin 500 mg: 30 tablets dispensed on 1 Dec 2026, runs out 31 Dec 2026"
    );
    // The order of the resources does not matter: the latest hand-over wins.
    let reversed = [
        prescription(),
        dispense("md2", "2026-12-01T10:00:00Z", 30, Some(30)),
        dispensed_2_nov(),
    ];
    assert_eq!(only(&reversed, ms("2026-12-24T10:00:00Z"), REFILL), a);
}

#[test]
fn refill_cleared_by_stopping_the_medication() {
    for status in [
        "stopped",
        "completed",
        "cancelled",
        "on-hold",
        "entered-in-error",
    ] {
        let mut stopped = prescription();
        stopped["status"] = json!(status);
        no(&[stopped, dispensed_2_nov()], now(), REFILL);
    }
    let mut proposal = prescription();
    proposal["intent"] = json!("proposal");
    no(&[proposal, dispensed_2_nov()], now(), REFILL);
}

#[test]
fn refill_ignores_dispenses_not_handed_over() {
    let mut wrong = dispense("md2", "2026-12-01T10:00:00Z", 30, Some(30));
    wrong["status"] = json!("entered-in-error");
    let a = only(&[prescription(), dispensed_2_nov(), wrong], now(), REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2026-12-02");
}

#[test]
fn refill_with_no_dispense_counts_from_the_validity_period() {
    // Valid from 1 Nov 2026 for 60 days: runs out 31 Dec 2026 00:00.
    let r = [prescription()];
    let runout = ms("2026-12-31T00:00:00Z");
    no(&r, now(), REFILL);
    no(&r, runout - 8 * DAY, REFILL);
    let a = only(&r, runout - 7 * DAY, REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2026-12-31");
    assert_eq!(a.severity, Severity::Normal);
    assert_eq!(
        a.why,
        "Metformin 500 mg: prescribed on 1 Nov 2026 for 60 days, no dispense recorded, runs out 31 Dec 2026"
    );
    assert_eq!(a.due_ms, Some(runout));
    let out = only(&r, runout + DAY, REFILL);
    assert_eq!(out.severity, Severity::High);
    assert_eq!(
        out.why,
        "Metformin 500 mg: prescribed on 1 Nov 2026 for 60 days, no dispense recorded, ran out 31 Dec 2026"
    );

    // Without a validity period, from authoredOn (30 Oct 2026 + 60 days = 29 Dec 2026).
    let mut authored = prescription();
    authored["dispenseRequest"]
        .as_object_mut()
        .unwrap()
        .remove("validityPeriod");
    let a = only(&[authored], ms("2026-12-22T00:00:00Z"), REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2026-12-29");
    assert_eq!(
        a.why,
        "Metformin 500 mg: prescribed on 30 Oct 2026 for 60 days, no dispense recorded, runs out 29 Dec 2026"
    );

    // With no expected supply duration either, nothing can be said.
    let mut unknown = prescription();
    unknown["dispenseRequest"]
        .as_object_mut()
        .unwrap()
        .remove("expectedSupplyDuration");
    no(&[unknown], ms("2026-12-31T00:00:00Z"), REFILL);
}

#[test]
fn refill_scales_the_expected_supply_by_the_quantity_dispensed() {
    // No daysSupply: 30 of the prescribed 60 tablets for 60 days last 30 days.
    let half = dispense("md1", "2026-11-02T10:00:00Z", 30, None);
    let r = [prescription(), half];
    let runout = ms(RUNOUT);
    no(&r, runout - 7 * DAY - HOUR, REFILL);
    let a = only(&r, runout - 7 * DAY, REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2026-12-02");
    assert_eq!(
        a.why,
        "Metformin 500 mg: 30 tablets dispensed on 2 Nov 2026, runs out 2 Dec 2026"
    );
    assert_eq!(a.due_ms, Some(runout));

    // The full 60 tablets last the full 60 days: 1 Jan 2027.
    let full = dispense("md1", "2026-11-02T10:00:00Z", 60, None);
    let a = only(&[prescription(), full], ms("2026-12-25T10:00:00Z"), REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2027-01-01");
    assert_eq!(
        a.why,
        "Metformin 500 mg: 60 tablets dispensed on 2 Nov 2026, runs out 1 Jan 2027"
    );
}

#[test]
fn refill_links_a_dispense_by_medication_code_when_it_names_no_prescription() {
    let mut unlinked = dispensed_2_nov();
    unlinked
        .as_object_mut()
        .unwrap()
        .remove("authorizingPrescription");
    let a = only(&[prescription(), unlinked], now(), REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2026-12-02");

    // A dispense of another medication is not this one's: the validity period applies.
    let mut other = dispensed_2_nov();
    other
        .as_object_mut()
        .unwrap()
        .remove("authorizingPrescription");
    other["medicationCodeableConcept"] = json!({
        "coding": [{"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "197361"}],
        "text": "Amlodipine 5 mg",
    });
    no(&[prescription(), other.clone()], now(), REFILL);
    let a = only(&[prescription(), other], ms("2026-12-24T00:00:00Z"), REFILL);
    assert_eq!(a.cause, "MedicationRequest/mr1@2026-12-31");

    // A dispense for another prescription is not this one's either.
    let mut elsewhere = dispensed_2_nov();
    elsewhere["authorizingPrescription"] = json!([{"reference": "MedicationRequest/mr9"}]);
    no(&[prescription(), elsewhere], now(), REFILL);
}

// ---------------------------------------------------------------------------------------------
// discharge-follow-up

const DISCHARGE: &str = "discharge-follow-up";

fn encounter(id: &str, class: &str, status: &str, start: &str, end: Option<&str>) -> Value {
    let mut e = json!({
        "resourceType": "Encounter",
        "id": id,
        "status": status,
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": class,
        },
        "subject": {"reference": "Patient/p1"},
        "period": {"start": start},
    });
    if let Some(end) = end {
        e["period"]["end"] = json!(end);
    }
    e
}

/// Admitted 30 Nov, discharged today (4 Dec 2026) at 09:00.
fn admission() -> Value {
    let mut e = encounter(
        "e1",
        "IMP",
        "finished",
        "2026-11-30T08:00:00Z",
        Some("2026-12-04T09:00:00Z"),
    );
    e["type"] = json!([{"text": "Pneumonia admission"}]);
    e
}

const DISCHARGED: &str = "2026-12-04T09:00:00Z";

#[test]
fn discharge_today_is_due_in_two_days() {
    let r = [admission()];
    let discharged = ms(DISCHARGED);
    // Before the discharge: still an inpatient.
    no(&r, discharged - HOUR, DISCHARGE);
    let a = only(&r, discharged, DISCHARGE);
    assert_eq!(a, only(&r, now(), DISCHARGE));
    assert_eq!(a.rule, "discharge-follow-up");
    assert_eq!(a.cause, "Encounter/e1");
    assert_eq!(a.severity, Severity::Normal);
    assert_eq!(a.title, "Discharge follow-up");
    assert_eq!(
        a.why,
        "Discharged 4 Dec 2026 (Pneumonia admission); no contact since; follow-up due by 6 Dec 2026"
    );
    assert_eq!(a.due_ms, Some(discharged + 2 * DAY));
    assert_eq!(a.focus.as_deref(), Some("Encounter/e1"));
}

#[test]
fn discharge_escalated_once_the_follow_up_is_overdue() {
    let r = [admission()];
    let due = ms(DISCHARGED) + 2 * DAY;
    assert_eq!(only(&r, due - HOUR, DISCHARGE).severity, Severity::Normal);
    let a = only(&r, due, DISCHARGE);
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.cause, "Encounter/e1");
    assert_eq!(a.due_ms, Some(due));
    assert_eq!(only(&r, due + DAY, DISCHARGE).severity, Severity::High);
}

#[test]
fn discharge_older_than_lookback_is_history() {
    let r = [admission()];
    let discharged = ms(DISCHARGED);
    assert_eq!(
        only(&r, discharged + 30 * DAY, DISCHARGE).severity,
        Severity::High
    );
    no(&r, discharged + 30 * DAY + HOUR, DISCHARGE);
    no(&r, discharged + 31 * DAY, DISCHARGE);
}

#[test]
fn discharge_cleared_by_a_later_encounter() {
    let visit = encounter(
        "e2",
        "AMB",
        "finished",
        "2026-12-05T10:00:00Z",
        Some("2026-12-05T10:20:00Z"),
    );
    let at = ms("2026-12-06T10:00:00Z");
    no(&[admission(), visit.clone()], at, DISCHARGE);
    // A telephone contact (VR) counts too, even still in progress.
    let call = encounter("e3", "VR", "in-progress", "2026-12-05T10:00:00Z", None);
    no(&[admission(), call], at, DISCHARGE);
    // A planned or cancelled one does not.
    for status in ["planned", "cancelled", "entered-in-error"] {
        let mut v = visit.clone();
        v["status"] = json!(status);
        only(&[admission(), v], at, DISCHARGE);
    }
    // Nor one before the discharge.
    let before = encounter(
        "e4",
        "AMB",
        "finished",
        "2026-11-29T10:00:00Z",
        Some("2026-11-29T10:20:00Z"),
    );
    only(&[admission(), before], at, DISCHARGE);
}

#[test]
fn discharge_cleared_by_a_communication_sent_after_it() {
    let call = |sent: &str, status: &str| {
        json!({
            "resourceType": "Communication",
            "id": "c1",
            "status": status,
            "subject": {"reference": "Patient/p1"},
            "sent": sent,
            "payload": [{"contentString": "Called after discharge; recovering well."}],
        })
    };
    let at = ms("2026-12-06T10:00:00Z");
    no(
        &[admission(), call("2026-12-05T11:00:00Z", "completed")],
        at,
        DISCHARGE,
    );
    // On the minute of discharge counts as after it.
    no(&[admission(), call(DISCHARGED, "completed")], at, DISCHARGE);
    // Before the discharge, or not done: still to follow up.
    only(
        &[admission(), call("2026-12-04T08:59:00Z", "completed")],
        at,
        DISCHARGE,
    );
    only(
        &[admission(), call("2026-12-05T11:00:00Z", "not-done")],
        at,
        DISCHARGE,
    );
}

#[test]
fn discharge_only_inpatient_finished_encounters() {
    let visit = encounter(
        "e2",
        "AMB",
        "finished",
        "2026-12-04T08:00:00Z",
        Some("2026-12-04T08:20:00Z"),
    );
    no(&[visit], now(), DISCHARGE);
    let mut in_progress = admission();
    in_progress["status"] = json!("in-progress");
    no(&[in_progress], now(), DISCHARGE);
    // Emergency is an inpatient class by default; the stay falls back to "inpatient stay".
    let emergency = encounter(
        "e5",
        "EMER",
        "finished",
        "2026-12-03T22:00:00Z",
        Some("2026-12-04T03:00:00Z"),
    );
    let a = only(&[emergency], now(), DISCHARGE);
    assert_eq!(
        a.why,
        "Discharged 4 Dec 2026 (inpatient stay); no contact since; follow-up due by 6 Dec 2026"
    );
}

// ---------------------------------------------------------------------------------------------
// abnormal-result

const ABNORMAL: &str = "abnormal-result";

fn interpretation(code: &str) -> Value {
    json!([{
        "coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation",
            "code": code,
        }],
    }])
}

/// Serum potassium taken 3 Dec 08:00, issued 3 Dec 12:00, range 3.5–5.1 mmol/L.
fn potassium(value: f64, flag: Option<&str>) -> Value {
    let mut o = json!({
        "resourceType": "Observation",
        "id": "o1",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "laboratory",
        }]}],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "2823-3",
                        "display": "Potassium [Moles/volume] in Serum or Plasma"}],
            "text": "Potassium",
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-12-03T08:00:00Z",
        "issued": "2026-12-03T12:00:00Z",
        "valueQuantity": {
            "value": value,
            "unit": "mmol/L",
            "system": "http://unitsofmeasure.org",
            "code": "mmol/L",
        },
        "referenceRange": [{
            "low": {"value": 3.5, "unit": "mmol/L"},
            "high": {"value": 5.1, "unit": "mmol/L"},
        }],
    });
    if let Some(flag) = flag {
        o["interpretation"] = interpretation(flag);
    }
    o
}

#[test]
fn abnormal_flagged_high() {
    let a = only(&[potassium(5.8, Some("H"))], now(), ABNORMAL);
    assert_eq!(a.rule, "abnormal-result");
    assert_eq!(a.cause, "Observation/o1");
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.title, "Abnormal result");
    assert_eq!(a.why, "Potassium 5.8 mmol/L (flagged H) on 3 Dec 2026");
    assert_eq!(a.due_ms, None);
    assert_eq!(a.focus.as_deref(), Some("Observation/o1"));
}

#[test]
fn abnormal_flagged_critical() {
    for flag in ["HH", "LL", "AA"] {
        let a = only(&[potassium(6.9, Some(flag))], now(), ABNORMAL);
        assert_eq!(a.severity, Severity::Critical);
        assert_eq!(a.title, "Critical result");
        assert_eq!(
            a.why,
            format!("Potassium 6.9 mmol/L (flagged {flag}) on 3 Dec 2026")
        );
    }
}

#[test]
fn abnormal_outside_the_reference_range_without_interpretation() {
    let a = only(&[potassium(5.8, None)], now(), ABNORMAL);
    assert_eq!(a.severity, Severity::High);
    assert_eq!(a.title, "Abnormal result");
    assert_eq!(
        a.why,
        "Potassium 5.8 mmol/L (above the range 3.5–5.1) on 3 Dec 2026"
    );
    let low = only(&[potassium(3.1, None)], now(), ABNORMAL);
    assert_eq!(
        low.why,
        "Potassium 3.1 mmol/L (below the range 3.5–5.1) on 3 Dec 2026"
    );
    // On the limits is within the range.
    no(&[potassium(5.1, None)], now(), ABNORMAL);
    no(&[potassium(3.5, None)], now(), ABNORMAL);
    no(&[potassium(4.2, None)], now(), ABNORMAL);
    // Flagged normal and within range: nothing.
    no(&[potassium(4.2, Some("N"))], now(), ABNORMAL);
}

#[test]
fn abnormal_blood_pressure_components() {
    let bp = json!({
        "resourceType": "Observation",
        "id": "bp1",
        "status": "final",
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/observation-category",
            "code": "vital-signs",
        }]}],
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "85354-9"}],
            "text": "Blood pressure",
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": "2026-12-02T09:15:00Z",
        "component": [
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8480-6"}],
                         "text": "Systolic"},
                "valueQuantity": {"value": 172, "unit": "mmHg",
                                  "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
                "interpretation": interpretation("H"),
            },
            {
                "code": {"coding": [{"system": "http://loinc.org", "code": "8462-4"}],
                         "text": "Diastolic"},
                "valueQuantity": {"value": 95, "unit": "mmHg",
                                  "system": "http://unitsofmeasure.org", "code": "mm[Hg]"},
                "referenceRange": [{"high": {"value": 90, "unit": "mmHg"}}],
            },
        ],
    });
    let a = only(std::slice::from_ref(&bp), now(), ABNORMAL);
    assert_eq!(a.cause, "Observation/bp1");
    assert_eq!(a.severity, Severity::High);
    assert_eq!(
        a.why,
        "Systolic 172 mmHg (flagged H); Diastolic 95 mmHg (above the range …–90) on 2 Dec 2026"
    );

    // Both components normal: nothing.
    let mut normal = bp.clone();
    normal["component"][0]["valueQuantity"]["value"] = json!(118);
    normal["component"][0]
        .as_object_mut()
        .unwrap()
        .remove("interpretation");
    normal["component"][1]["valueQuantity"]["value"] = json!(76);
    no(&[normal.clone()], now(), ABNORMAL);

    // A critical flag on one component makes the whole result critical.
    let mut crisis = normal;
    crisis["component"][0]["valueQuantity"]["value"] = json!(210);
    crisis["component"][0]["interpretation"] = interpretation("HH");
    let c = only(&[crisis], now(), ABNORMAL);
    assert_eq!(c.severity, Severity::Critical);
    assert_eq!(c.why, "Systolic 210 mmHg (flagged HH) on 2 Dec 2026");
}

#[test]
fn abnormal_only_within_the_window() {
    // Issued 3 Dec 12:00; the window is 14 days.
    let r = [potassium(5.8, Some("H"))];
    let issued = ms("2026-12-03T12:00:00Z");
    only(&r, issued + 13 * DAY, ABNORMAL);
    only(&r, issued + 14 * DAY, ABNORMAL);
    no(&r, issued + 14 * DAY + HOUR, ABNORMAL);
    no(&r, issued + 15 * DAY, ABNORMAL);

    // Without `issued`, the effective time counts (taken 3 Dec 08:00).
    let mut taken = potassium(5.8, Some("H"));
    taken.as_object_mut().unwrap().remove("issued");
    let taken_at = ms("2026-12-03T08:00:00Z");
    only(&[taken.clone()], taken_at + 14 * DAY, ABNORMAL);
    no(&[taken], taken_at + 14 * DAY + HOUR, ABNORMAL);
}

#[test]
fn abnormal_entered_in_error_or_cancelled_is_not_a_result() {
    for status in ["entered-in-error", "cancelled"] {
        let mut o = potassium(6.9, Some("HH"));
        o["status"] = json!(status);
        no(&[o], now(), ABNORMAL);
    }
    // Preliminary and amended results do count.
    for status in ["preliminary", "amended", "corrected"] {
        let mut o = potassium(5.8, Some("H"));
        o["status"] = json!(status);
        only(&[o], now(), ABNORMAL);
    }
}

// ---------------------------------------------------------------------------------------------
// overdue-task

const OVERDUE: &str = "overdue-task";

fn task(status: &str, due: &str, priority: &str) -> Value {
    json!({
        "resourceType": "Task",
        "id": "t1",
        "status": status,
        "intent": "order",
        "priority": priority,
        "description": "Call patient about results",
        "for": {"reference": "Patient/p1"},
        "authoredOn": "2026-11-20T09:00:00Z",
        "restriction": {"period": {"end": due}},
    })
}

#[test]
fn overdue_task_due_yesterday() {
    let a = only(
        &[task("requested", "2026-12-03", "routine")],
        now(),
        OVERDUE,
    );
    assert_eq!(a.rule, "overdue-task");
    assert_eq!(a.cause, "Task/t1");
    assert_eq!(a.severity, Severity::Normal);
    assert_eq!(a.title, "Overdue task");
    // Due on 3 Dec: overdue once 3 Dec is over.
    assert_eq!(
        a.why,
        "Call patient about results: due 3 Dec 2026, still requested"
    );
    assert_eq!(a.due_ms, Some(ms("2026-12-04T00:00:00Z")));
    assert_eq!(a.focus.as_deref(), Some("Task/t1"));
}

#[test]
fn overdue_task_boundaries() {
    // Due on 3 Dec: all of 3 Dec is in time, from midnight it is overdue.
    let r = [task("in-progress", "2026-12-03", "routine")];
    no(&r, ms("2026-12-03T10:00:00Z"), OVERDUE);
    no(&r, ms("2026-12-03T23:00:00Z"), OVERDUE);
    let a = only(&r, ms("2026-12-04T00:00:00Z"), OVERDUE);
    assert_eq!(
        a.why,
        "Call patient about results: due 3 Dec 2026, still in-progress"
    );
    // Due tomorrow: not yet.
    no(
        &[task("requested", "2026-12-05", "routine")],
        now(),
        OVERDUE,
    );
    // Due at a time: overdue from that time.
    let timed = [task("requested", "2026-12-04T09:00:00Z", "routine")];
    no(&timed, ms("2026-12-04T08:00:00Z"), OVERDUE);
    let a = only(&timed, ms("2026-12-04T09:00:01Z"), OVERDUE);
    assert_eq!(
        a.why,
        "Call patient about results: due 4 Dec 2026, still requested"
    );
}

#[test]
fn overdue_task_done_is_not_overdue() {
    for status in [
        "completed",
        "cancelled",
        "failed",
        "rejected",
        "entered-in-error",
        "draft",
    ] {
        no(&[task(status, "2026-12-03", "routine")], now(), OVERDUE);
    }
}

#[test]
fn overdue_task_urgent_is_high() {
    for priority in ["urgent", "asap", "stat"] {
        let a = only(&[task("requested", "2026-12-03", priority)], now(), OVERDUE);
        assert_eq!(a.severity, Severity::High);
    }
}

#[test]
fn overdue_task_from_the_execution_period() {
    let mut t = task("accepted", "2026-12-03", "routine");
    t.as_object_mut().unwrap().remove("restriction");
    t["executionPeriod"] = json!({"start": "2026-11-20", "end": "2026-12-02"});
    let a = only(&[t], now(), OVERDUE);
    assert_eq!(
        a.why,
        "Call patient about results: due 2 Dec 2026, still accepted"
    );
    assert_eq!(a.due_ms, Some(ms("2026-12-03T00:00:00Z")));
    // No due date at all: never overdue.
    let mut undated = task("requested", "2026-12-03", "routine");
    undated.as_object_mut().unwrap().remove("restriction");
    no(&[undated], now(), OVERDUE);
}

fn care_plan(status: &str) -> Value {
    json!({
        "resourceType": "CarePlan",
        "id": "cp1",
        "status": status,
        "intent": "plan",
        "title": "Diabetes care plan",
        "subject": {"reference": "Patient/p1"},
        "activity": [
            {"detail": {
                "status": "not-started",
                "code": {"text": "Retinal screening"},
                "scheduledPeriod": {"start": "2026-11-01", "end": "2026-11-30"},
            }},
            {"detail": {
                "status": "completed",
                "code": {"text": "Foot examination"},
                "scheduledPeriod": {"start": "2026-11-01", "end": "2026-11-15"},
            }},
            {"detail": {
                "status": "scheduled",
                "code": {"text": "Dietitian referral"},
                "scheduledPeriod": {"start": "2026-11-01", "end": "2026-12-20"},
            }},
        ],
    })
}

#[test]
fn overdue_care_plan_activity() {
    let a = only(&[care_plan("active")], now(), OVERDUE);
    assert_eq!(a.cause, "CarePlan/cp1#activity0");
    assert_eq!(a.severity, Severity::Normal);
    assert_eq!(a.title, "Overdue care plan activity");
    assert_eq!(
        a.why,
        "Retinal screening (Diabetes care plan): planned by 30 Nov 2026, not-started"
    );
    assert_eq!(a.due_ms, Some(ms("2026-12-01T00:00:00Z")));
    assert_eq!(a.focus.as_deref(), Some("CarePlan/cp1"));

    // On 30 Nov itself it is not yet overdue.
    no(&[care_plan("active")], ms("2026-11-30T23:00:00Z"), OVERDUE);
    // The scheduled activity becomes overdue after 20 Dec, as activity2.
    let later = alerts(&[care_plan("active")], ms("2026-12-21T00:00:00Z"), OVERDUE);
    assert_eq!(
        causes(&later),
        ["CarePlan/cp1#activity0", "CarePlan/cp1#activity2"]
    );
    assert_eq!(
        later[1].why,
        "Dietitian referral (Diabetes care plan): planned by 20 Dec 2026, scheduled"
    );
    // A plan no longer active has nothing overdue.
    for status in ["completed", "revoked", "on-hold", "draft"] {
        no(&[care_plan(status)], now(), OVERDUE);
    }
}

// ---------------------------------------------------------------------------------------------
// care-gap

const GAP: &str = "care-gap";

fn condition(id: &str, code: Value, clinical: &str) -> Value {
    json!({
        "resourceType": "Condition",
        "id": id,
        "clinicalStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-clinical",
            "code": clinical,
        }]},
        "verificationStatus": {"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/condition-ver-status",
            "code": "confirmed",
        }]},
        "code": code,
        "subject": {"reference": "Patient/p1"},
        "onsetDateTime": "2019-05-01",
    })
}

fn diabetes() -> Value {
    condition(
        "c1",
        json!({
            "coding": [{"system": "http://snomed.info/sct", "code": "44054006",
                        "display": "Diabetes mellitus type 2"}],
            "text": "Type 2 diabetes",
        }),
        "active",
    )
}

fn hba1c(taken: i64) -> Value {
    json!({
        "resourceType": "Observation",
        "id": "hba1c",
        "status": "final",
        "code": {
            "coding": [{"system": "http://loinc.org", "code": "4548-4"}],
            "text": "HbA1c",
        },
        "subject": {"reference": "Patient/p1"},
        "effectiveDateTime": iso(taken),
        "valueQuantity": {"value": 7.1, "unit": "%"},
    })
}

#[test]
fn care_gap_diabetes_hba1c_window() {
    // Within 183 days: 182 days ago, and exactly 183 days ago.
    no(&[diabetes(), hba1c(now() - 182 * DAY)], now(), GAP);
    no(&[diabetes(), hba1c(now() - 183 * DAY)], now(), GAP);
    // 184 days ago (3 Jun 2026 10:00): a gap, due since 3 Dec.
    let last = now() - 184 * DAY;
    let a = only(&[diabetes(), hba1c(last)], now(), GAP);
    assert_eq!(a.rule, "care-gap");
    assert_eq!(a.cause, "gap:diabetes-hba1c");
    assert_eq!(a.severity, Severity::Low);
    assert_eq!(a.title, "Diabetes: no HbA1c in 6 months");
    assert_eq!(a.why, "Type 2 diabetes; last 3 Jun 2026");
    assert_eq!(a.due_ms, Some(last + 183 * DAY));
    assert_eq!(a.due_ms, Some(ms("2026-12-03T10:00:00Z")));
    assert_eq!(a.focus.as_deref(), Some("Condition/c1"));

    // Time travel with the HbA1c of 5 Jun 2026 10:00: a gap from 5 Dec 10:00 plus a moment.
    let r = [diabetes(), hba1c(ms("2026-06-05T10:00:00Z"))];
    no(&r, ms("2026-12-05T10:00:00Z"), GAP);
    only(&r, ms("2026-12-05T11:00:00Z"), GAP);
}

#[test]
fn care_gap_diabetes_with_no_hba1c_ever() {
    let a = only(&[diabetes()], now(), GAP);
    assert_eq!(a.cause, "gap:diabetes-hba1c");
    assert_eq!(a.why, "Type 2 diabetes; none recorded");
    assert_eq!(a.due_ms, None);
    // An HbA1c entered in error does not count.
    let mut wrong = hba1c(now() - DAY);
    wrong["status"] = json!("entered-in-error");
    assert_eq!(
        only(&[diabetes(), wrong], now(), GAP).why,
        "Type 2 diabetes; none recorded"
    );
}

#[test]
fn care_gap_icd10_prefix() {
    let icd = |system: &str, code: &str| {
        condition(
            "c2",
            json!({"coding": [{"system": system, "code": code}]}),
            "active",
        )
    };
    let a = only(
        &[icd("http://hl7.org/fhir/sid/icd-10", "E11.9")],
        now(),
        GAP,
    );
    assert_eq!(a.cause, "gap:diabetes-hba1c");
    assert_eq!(a.why, "E11.9; none recorded");
    assert_eq!(a.focus.as_deref(), Some("Condition/c2"));
    only(
        &[icd("http://hl7.org/fhir/sid/icd-10-cm", "E10.65")],
        now(),
        GAP,
    );
    // Another category or another code system: no gap.
    no(
        &[icd("http://hl7.org/fhir/sid/icd-10", "E78.5")],
        now(),
        GAP,
    );
    no(&[icd("http://snomed.info/sct", "E11.9")], now(), GAP);
    // The HbA1c closes it as for SNOMED.
    no(
        &[
            icd("http://hl7.org/fhir/sid/icd-10", "E11.9"),
            hba1c(now() - 30 * DAY),
        ],
        now(),
        GAP,
    );
}

#[test]
fn care_gap_inactive_conditions_have_no_gap() {
    for clinical in ["resolved", "inactive", "remission"] {
        let mut c = diabetes();
        c["clinicalStatus"]["coding"][0]["code"] = json!(clinical);
        no(&[c], now(), GAP);
    }
    for clinical in ["recurrence", "relapse"] {
        let mut c = diabetes();
        c["clinicalStatus"]["coding"][0]["code"] = json!(clinical);
        only(&[c], now(), GAP);
    }
    let mut refuted = diabetes();
    refuted["verificationStatus"]["coding"][0]["code"] = json!("refuted");
    no(&[refuted], now(), GAP);
    let mut abated = diabetes();
    abated["abatementDateTime"] = json!("2025-01-01");
    no(&[abated], now(), GAP);
}

#[test]
fn care_gap_hypertension_blood_pressure() {
    let hypertension = condition(
        "c3",
        json!({"coding": [{"system": "http://snomed.info/sct", "code": "38341003",
                           "display": "Hypertensive disorder"}]}),
        "active",
    );
    let a = only(std::slice::from_ref(&hypertension), now(), GAP);
    assert_eq!(a.cause, "gap:hypertension-bp");
    assert_eq!(a.title, "Hypertension: no blood pressure in 12 months");
    assert_eq!(a.why, "Hypertensive disorder; none recorded");
    let bp = |taken: i64| {
        json!({
            "resourceType": "Observation",
            "id": "bp",
            "status": "final",
            "code": {"coding": [{"system": "http://loinc.org", "code": "85354-9"}]},
            "effectiveDateTime": iso(taken),
        })
    };
    no(&[hypertension.clone(), bp(now() - 365 * DAY)], now(), GAP);
    let a = only(&[hypertension, bp(now() - 366 * DAY)], now(), GAP);
    assert_eq!(a.why, "Hypertensive disorder; last 3 Dec 2025");
}

fn flu_shot(given: i64) -> Value {
    json!({
        "resourceType": "Immunization",
        "id": "imm1",
        "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "158"}]},
        "patient": {"reference": "Patient/p1"},
        "occurrenceDateTime": iso(given),
    })
}

fn pneumococcal() -> Value {
    json!({
        "resourceType": "Immunization",
        "id": "imm2",
        "status": "completed",
        "vaccineCode": {"coding": [{"system": "http://hl7.org/fhir/sid/cvx", "code": "216"}]},
        "patient": {"reference": "Patient/p1"},
        "occurrenceDateTime": "2022-10-01",
    })
}

/// Care gaps of a patient born on `birth_date` with `resources`.
fn gaps_born(birth_date: &str, resources: Vec<Value>, at: i64) -> Vec<Alert> {
    let mut all = vec![patient(birth_date)];
    all.extend(resources);
    evaluate(&PatientData::new("p1", all), &Config::default(), at)
        .into_iter()
        .filter(|a| a.rule == GAP)
        .collect()
}

#[test]
fn care_gap_influenza_for_a_70_year_old() {
    let found = gaps_born("1956-06-15", vec![], now());
    assert_eq!(causes(&found), ["gap:influenza-65", "gap:pneumococcal-65"]);
    let flu = &found[0];
    assert_eq!(flu.severity, Severity::Low);
    assert_eq!(flu.title, "Influenza vaccine due (65 and over, yearly)");
    assert_eq!(flu.why, "Age 70; none recorded");
    assert_eq!(flu.due_ms, None);
    assert_eq!(flu.focus, None);
    let pneumo = &found[1];
    assert_eq!(
        pneumo.title,
        "Pneumococcal vaccine never given (65 and over)"
    );
    assert_eq!(pneumo.why, "Age 70; none recorded");
}

#[test]
fn care_gap_influenza_given_within_the_year() {
    // Given 300 days ago: no influenza gap (the pneumococcal one was given once, for ever).
    let found = gaps_born(
        "1956-06-15",
        vec![flu_shot(now() - 300 * DAY), pneumococcal()],
        now(),
    );
    assert!(found.is_empty(), "{found:#?}");
    // Given exactly 365 days ago: due again now.
    let given = now() - 365 * DAY;
    let found = gaps_born("1956-06-15", vec![flu_shot(given), pneumococcal()], now());
    assert_eq!(causes(&found), ["gap:influenza-65"]);
    assert_eq!(found[0].why, "Age 70; last given 4 Dec 2025");
    assert_eq!(found[0].due_ms, Some(now()));
    // An hour earlier it was not.
    let found = gaps_born(
        "1956-06-15",
        vec![flu_shot(given), pneumococcal()],
        now() - HOUR,
    );
    assert!(found.is_empty(), "{found:#?}");
    // A vaccination not done does not count.
    let mut not_done = flu_shot(now() - 300 * DAY);
    not_done["status"] = json!("not-done");
    let found = gaps_born("1956-06-15", vec![not_done, pneumococcal()], now());
    assert_eq!(causes(&found), ["gap:influenza-65"]);
    assert_eq!(found[0].why, "Age 70; none recorded");
}

#[test]
fn care_gap_immunizations_by_age() {
    // 64 (65 on 15 Jun 2027): no gap.
    assert!(gaps_born("1962-06-15", vec![], now()).is_empty());
    // 65 today, 64 until yesterday.
    let found = gaps_born("1961-12-04", vec![], now());
    assert_eq!(causes(&found), ["gap:influenza-65", "gap:pneumococcal-65"]);
    assert_eq!(found[0].why, "Age 65; none recorded");
    assert!(gaps_born("1961-12-04", vec![], now() - DAY).is_empty());
    assert!(gaps_born("1961-12-05", vec![], now()).is_empty());
    // No birth date: no age, no gap.
    let unknown = json!({"resourceType": "Patient", "id": "p1"});
    let found: Vec<Alert> = evaluate(
        &PatientData::new("p1", [unknown]),
        &Config::default(),
        now(),
    );
    assert!(found.is_empty(), "{found:#?}");
}

// ---------------------------------------------------------------------------------------------
// evaluate

/// One of everything: a missed appointment, a refill run out, a discharge, an abnormal result,
/// an overdue task and a care gap.
fn busy_record() -> Vec<Value> {
    vec![
        booked_yesterday(),
        review("pending", "2026-12-05T09:30:00Z", "needs-action"),
        prescription(),
        dispensed_2_nov(),
        admission(),
        potassium(5.8, Some("H")),
        task("requested", "2026-12-03", "routine"),
        diabetes(),
    ]
}

#[test]
fn evaluate_reports_every_rule() {
    let found = evaluate(&data(busy_record()), &Config::default(), now());
    let mut named: Vec<(&str, &str)> = found.iter().map(|a| (a.rule, a.cause.as_str())).collect();
    named.sort();
    assert_eq!(
        named,
        [
            ("abnormal-result", "Observation/o1"),
            ("care-gap", "gap:diabetes-hba1c"),
            ("discharge-follow-up", "Encounter/e1"),
            ("missed-appointment", "Appointment/a1"),
            ("overdue-task", "Task/t1"),
            ("refill-due", "MedicationRequest/mr1@2026-12-02"),
            ("unconfirmed-appointment", "Appointment/u1"),
        ]
    );
}

#[test]
fn evaluate_deceased_patient_has_no_alerts() {
    let mut dead = patient("1950-01-01");
    dead["deceasedBoolean"] = json!(true);
    let mut all = vec![dead];
    all.extend(busy_record());
    let found = evaluate(
        &PatientData::new("p1", all.clone()),
        &Config::default(),
        now(),
    );
    assert!(found.is_empty(), "{found:#?}");

    let mut died = patient("1950-01-01");
    died["deceasedDateTime"] = json!("2026-12-01");
    all[0] = died;
    let found = evaluate(
        &PatientData::new("p1", all.clone()),
        &Config::default(),
        now(),
    );
    assert!(found.is_empty(), "{found:#?}");

    // deceasedBoolean false is alive.
    let mut alive = patient("1950-01-01");
    alive["deceasedBoolean"] = json!(false);
    all[0] = alive;
    let found = evaluate(&PatientData::new("p1", all), &Config::default(), now());
    assert!(!found.is_empty());
}

#[test]
fn evaluate_reports_each_rule_and_cause_once() {
    // The same resources twice (two versions of each, say).
    let mut twice = busy_record();
    twice.extend(busy_record());
    let found = evaluate(&data(twice), &Config::default(), now());
    let mut named: Vec<(&str, &str)> = found.iter().map(|a| (a.rule, a.cause.as_str())).collect();
    let all = named.len();
    named.sort();
    named.dedup();
    assert_eq!(named.len(), all, "{found:#?}");
    assert_eq!(all, 7);
    // Two diabetes conditions are still one gap.
    let other = condition(
        "c9",
        json!({"coding": [{"system": "http://hl7.org/fhir/sid/icd-10", "code": "E11.9"}]}),
        "active",
    );
    let gaps = alerts(&[diabetes(), other], now(), GAP);
    assert_eq!(causes(&gaps), ["gap:diabetes-hba1c"]);
}

#[test]
fn evaluate_is_ordered_by_the_rules() {
    let found = evaluate(&data(busy_record()), &Config::default(), now());
    let order: Vec<&str> = found.iter().map(|a| a.rule).collect();
    let rules: Vec<&str> = rapport_alerts::RULES.iter().map(|r| r.id).collect();
    let mut positions: Vec<usize> = order
        .iter()
        .map(|id| rules.iter().position(|r| r == id).unwrap())
        .collect();
    let sorted = {
        let mut p = positions.clone();
        p.sort();
        p
    };
    assert_eq!(positions, sorted);
    positions.dedup();
    assert_eq!(positions.len(), rules.len());
}

// ---------------------------------------------------------------------------------------------
// Config

#[test]
fn config_warn_days_override_moves_the_boundary() {
    let config = Config::from_toml("[refill_due]\nwarn_days = 3\n").unwrap();
    let r = [prescription(), dispensed_2_nov()];
    let runout = ms(RUNOUT);
    // The default warns 7 days ahead, so 4 days ahead too.
    assert_eq!(alerts(&r, runout - 4 * DAY, REFILL).len(), 1);
    // With 3 days: 4 days ahead or 3 days and an hour is too early.
    assert!(alerts_with(&config, &r, runout - 4 * DAY, REFILL).is_empty());
    assert!(alerts_with(&config, &r, runout - 3 * DAY - HOUR, REFILL).is_empty());
    let a = alerts_with(&config, &r, runout - 3 * DAY, REFILL);
    assert_eq!(causes(&a), ["MedicationRequest/mr1@2026-12-02"]);
    assert_eq!(a[0].severity, Severity::Normal);
    // The other keys keep their defaults: stale after 60 days.
    assert_eq!(config.refill_due.stale_days, 60);
    assert_eq!(alerts_with(&config, &r, runout + 60 * DAY, REFILL).len(), 1);
    assert!(alerts_with(&config, &r, runout + 61 * DAY, REFILL).is_empty());
}

#[test]
fn config_grace_hours_and_disabling_a_rule() {
    let r = [booked_yesterday()];
    let end = ms("2026-12-03T09:30:00Z");
    let quick = Config::from_toml("[missed_appointment]\ngrace_hours = 1\n").unwrap();
    assert!(alerts_with(&quick, &r, end + HOUR - 1, MISSED).is_empty());
    assert_eq!(alerts_with(&quick, &r, end + HOUR, MISSED).len(), 1);
    assert!(alerts(&r, end + HOUR, MISSED).is_empty());

    let off = Config::from_toml("[missed_appointment]\nenabled = false\n").unwrap();
    assert!(alerts_with(&off, &r, now(), MISSED).is_empty());
    // The other rules are unaffected.
    let found = evaluate(&data(busy_record()), &off, now());
    assert_eq!(found.len(), 6);
    assert!(found.iter().all(|a| a.rule != MISSED));
}

#[test]
fn config_care_gaps_replace_the_defaults() {
    let config = Config::from_toml(
        "[[care_gap]]\n\
         id = \"diabetes-hba1c-3m\"\n\
         title = \"Diabetes: no HbA1c in 3 months\"\n\
         conditions = [\"http://snomed.info/sct|44054006\"]\n\
         required = [\"http://loinc.org|4548-4\"]\n\
         within_days = 90\n",
    )
    .unwrap();
    assert_eq!(config.care_gap.len(), 1);
    let r = [diabetes(), hba1c(now() - 91 * DAY)];
    let found = alerts_with(&config, &r, now(), GAP);
    assert_eq!(causes(&found), ["gap:diabetes-hba1c-3m"]);
    assert_eq!(found[0].title, "Diabetes: no HbA1c in 3 months");
    assert!(alerts_with(&config, &[diabetes(), hba1c(now() - 90 * DAY)], now(), GAP).is_empty());
    // The default window would see no gap at 91 days.
    assert!(alerts(&r, now(), GAP).is_empty());
}

#[test]
fn config_default_is_utc() {
    assert_eq!(Config::default().utc_offset_minutes, 0);
    assert_eq!(Config::default(), Config::from_toml("").unwrap());
}
