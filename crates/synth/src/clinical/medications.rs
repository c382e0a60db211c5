//! Medication courses for chronic conditions, their prescriptions and their dispensing.
//!
//! A course is one drug taken for one condition from a start date until it is stopped (or
//! still running). Prescriptions are renewed yearly, so a course is a chain of
//! MedicationRequests of which only the last is `active` (or `stopped` when the drug was
//! switched); the pharmacy hands over a fill whenever the previous one is about to run out.
//! Most patients collect a few days early; patients who do not collect on time are where the
//! console's refill alerts come from, so some last fills run out in the coming week and a
//! few ran out weeks ago.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};
use uuid::Uuid;

use super::conditions::Chronic;
use super::{add_days, at, random_day, Occasion, Story};
use crate::codes::{self, Code};
use crate::fhir::{self, Transaction};
use crate::random::{self, SynthRng};

/// A drug as prescribed here: product, how to take it, and what one fill contains.
pub(crate) struct Drug {
    pub code: Code,
    instruction: &'static str,
    /// Doses a day; `None` when taken as needed.
    per_day: Option<u32>,
    route: Code,
    fill_quantity: u32,
    fill_unit: &'static str,
    fill_ucum: &'static str,
    /// How many days one fill lasts (expectedSupplyDuration / daysSupply).
    pub supply_days: i64,
}

impl Drug {
    /// What one fill contains, as a UCUM quantity.
    fn fill(&self) -> Value {
        fhir::quantity(
            Value::from(self.fill_quantity),
            self.fill_unit,
            self.fill_ucum,
        )
    }
}

const fn tablets(code: Code, instruction: &'static str, per_day: u32, supply_days: i64) -> Drug {
    Drug {
        code,
        instruction,
        per_day: Some(per_day),
        route: codes::ORAL_ROUTE,
        fill_quantity: per_day * supply_days as u32,
        fill_unit: "tablet",
        fill_ucum: "{tbl}",
        supply_days,
    }
}

pub(crate) const LISINOPRIL: Drug = tablets(
    codes::LISINOPRIL_10,
    "Take 1 tablet by mouth once daily.",
    1,
    90,
);
pub(crate) const AMLODIPINE: Drug = tablets(
    codes::AMLODIPINE_5,
    "Take 1 tablet by mouth once daily.",
    1,
    90,
);
pub(crate) const HYDROCHLOROTHIAZIDE: Drug = tablets(
    codes::HYDROCHLOROTHIAZIDE_25,
    "Take 1 tablet by mouth every morning.",
    1,
    90,
);
pub(crate) const METFORMIN: Drug = tablets(
    codes::METFORMIN_ER_500,
    "Take 1 tablet by mouth once daily with the evening meal.",
    1,
    90,
);
pub(crate) const INSULIN: Drug = Drug {
    code: codes::INSULIN_70_30,
    instruction:
        "Inject 16 units under the skin twice daily, before breakfast and before the evening meal.",
    per_day: Some(2),
    route: codes::SUBCUTANEOUS_ROUTE,
    fill_quantity: 10,
    fill_unit: "mL",
    fill_ucum: "mL",
    supply_days: 30,
};
pub(crate) const ATORVASTATIN: Drug = tablets(
    codes::ATORVASTATIN_80,
    "Take 1 tablet by mouth once daily at bedtime.",
    1,
    90,
);
pub(crate) const SIMVASTATIN: Drug = tablets(
    codes::SIMVASTATIN_10,
    "Take 1 tablet by mouth once daily at bedtime.",
    1,
    90,
);
pub(crate) const ALBUTEROL: Drug = Drug {
    code: codes::ALBUTEROL_INHALER,
    instruction: "Inhale 2 puffs every 4 to 6 hours as needed for wheeze or breathlessness.",
    per_day: None,
    route: codes::RESPIRATORY_ROUTE,
    fill_quantity: 1,
    fill_unit: "inhaler",
    fill_ucum: "{inhaler}",
    supply_days: 30,
};
pub(crate) const FLUTICASONE: Drug = Drug {
    code: codes::FLUTICASONE_INHALER,
    instruction: "Inhale 2 puffs twice daily. Rinse mouth after use.",
    per_day: Some(2),
    route: codes::RESPIRATORY_ROUTE,
    fill_quantity: 1,
    fill_unit: "inhaler",
    fill_ucum: "{inhaler}",
    supply_days: 30,
};
pub(crate) const WARFARIN: Drug = tablets(
    codes::WARFARIN_5,
    "Take 1 tablet by mouth once daily in the evening, or as directed by the anticoagulation clinic.",
    1,
    30,
);
pub(crate) const APIXABAN: Drug = tablets(
    codes::APIXABAN_5,
    "Take 1 tablet by mouth twice daily.",
    2,
    90,
);
pub(crate) const METOPROLOL: Drug = tablets(
    codes::METOPROLOL_ER_100,
    "Take 1 tablet by mouth once daily.",
    1,
    90,
);
pub(crate) const FUROSEMIDE: Drug = tablets(
    codes::FUROSEMIDE_40,
    "Take 1 tablet by mouth every morning.",
    1,
    90,
);
pub(crate) const SERTRALINE: Drug = tablets(
    codes::SERTRALINE_100,
    "Take 1 tablet by mouth once daily.",
    1,
    90,
);
pub(crate) const LEVOTHYROXINE: Drug = tablets(
    codes::LEVOTHYROXINE_75_MCG,
    "Take 1 tablet by mouth every morning on an empty stomach.",
    1,
    90,
);
pub(crate) const ACETAMINOPHEN: Drug = Drug {
    code: codes::ACETAMINOPHEN_325,
    instruction: "Take 2 tablets by mouth every 6 hours as needed for joint pain; no more than 8 tablets a day.",
    per_day: None,
    route: codes::ORAL_ROUTE,
    fill_quantity: 120,
    fill_unit: "tablet",
    fill_ucum: "{tbl}",
    supply_days: 30,
};
pub(crate) const NAPROXEN: Drug = Drug {
    code: codes::NAPROXEN_220,
    instruction: "Take 1 tablet by mouth twice daily with food as needed for joint pain.",
    per_day: None,
    route: codes::ORAL_ROUTE,
    fill_quantity: 60,
    fill_unit: "tablet",
    fill_ucum: "{tbl}",
    supply_days: 30,
};
pub(crate) const AMOXICILLIN: Drug = Drug {
    code: codes::AMOXICILLIN_250,
    instruction: "Take 2 capsules by mouth three times daily for 7 days.",
    per_day: Some(3),
    route: codes::ORAL_ROUTE,
    fill_quantity: 42,
    fill_unit: "capsule",
    fill_ucum: "{cap}",
    supply_days: 7,
};

/// One drug taken for one condition.
pub(crate) struct Course {
    pub drug: &'static Drug,
    /// The Condition it treats.
    pub reason: Uuid,
    pub start: NaiveDate,
    pub stop: Option<NaiveDate>,
    stop_reason: Option<&'static str>,
    /// The patient stopped collecting: the last fill ran out this many days before today.
    overdue_by: Option<i64>,
}

impl Course {
    /// Days since the last fill ran out, for a patient who stopped collecting.
    pub(crate) fn overdue_by(&self) -> Option<i64> {
        self.overdue_by
    }
}

/// Prescriptions run for a year before they must be renewed.
const PRESCRIPTION_VALIDITY_DAYS: i64 = 365;

/// Dispensing history kept: a year is enough to see adherence and to compute when the last
/// fill runs out, and keeps monthly-dispensed patients from drowning in MedicationDispense.
const DISPENSE_HISTORY_DAYS: i64 = 365;

pub(super) fn plan(rng: &mut SynthRng, story: &Story) -> Vec<Course> {
    let today = story.today();
    let mut plan = CoursePlan {
        courses: Vec::new(),
        lapse_chance: if story.body.adherent { 0.02 } else { 0.5 },
    };
    for condition in &story.chronic {
        let reason = condition.id;
        let start = random_day(rng, condition.onset, add_days(condition.onset, 42))
            .min(add_days(today, -1));
        // A day inside the story window, at least two months into the course, for switches.
        let switch_day = |rng: &mut SynthRng| {
            let day = random_day(
                rng,
                story.window_start.max(add_days(start, 60)),
                add_days(today, -14),
            );
            (day > add_days(start, 30) && day < today).then_some(day)
        };
        match condition.kind {
            Chronic::Hypertension => {
                if random::chance(rng, 0.6) {
                    plan.start(rng, &LISINOPRIL, reason, start);
                } else if let Some(first) = plan.start(rng, &AMLODIPINE, reason, start) {
                    // Some patients are switched because of ankle swelling, a common
                    // amlodipine side effect; the switch shows as a stopped prescription.
                    if let (Some(day), true) = (switch_day(rng), random::chance(rng, 0.3)) {
                        plan.switch(
                            rng,
                            first,
                            day,
                            "Ankle swelling; switched to lisinopril.",
                            &LISINOPRIL,
                        );
                    }
                }
                if random::chance(rng, 0.25) {
                    plan.start(rng, &HYDROCHLOROTHIAZIDE, reason, start);
                }
            }
            Chronic::Diabetes => {
                plan.start(rng, &METFORMIN, reason, start);
                if story.body.glycaemic_control > 0.7 && random::chance(rng, 0.7) {
                    let insulin_start = random_day(rng, start, today);
                    plan.start(rng, &INSULIN, reason, insulin_start);
                }
            }
            Chronic::Hyperlipidemia => {
                if random::chance(rng, 0.7) {
                    plan.start(rng, &ATORVASTATIN, reason, start);
                } else if let Some(first) = plan.start(rng, &SIMVASTATIN, reason, start) {
                    if let (Some(day), true) = (switch_day(rng), random::chance(rng, 0.25)) {
                        let why = "Cholesterol above target; intensified to atorvastatin.";
                        plan.switch(rng, first, day, why, &ATORVASTATIN);
                    }
                }
            }
            Chronic::Asthma | Chronic::Copd => {
                plan.start(rng, &ALBUTEROL, reason, start);
                if random::chance(rng, 0.65) {
                    plan.start(rng, &FLUTICASONE, reason, start);
                }
            }
            Chronic::KidneyDisease => {
                plan.start(rng, &LISINOPRIL, reason, start);
            }
            Chronic::AtrialFibrillation => {
                let anticoagulant = if random::chance(rng, 0.4) {
                    &WARFARIN
                } else {
                    &APIXABAN
                };
                plan.start(rng, anticoagulant, reason, start);
                if random::chance(rng, 0.8) {
                    plan.start(rng, &METOPROLOL, reason, start);
                }
            }
            Chronic::HeartFailure => {
                plan.start(rng, &FUROSEMIDE, reason, start);
                plan.start(rng, &METOPROLOL, reason, start);
                plan.start(rng, &LISINOPRIL, reason, start);
            }
            Chronic::Depression | Chronic::Anxiety => {
                let p = if condition.kind == Chronic::Depression {
                    0.75
                } else {
                    0.4
                };
                if random::chance(rng, p) {
                    if let Some(index) = plan.start(rng, &SERTRALINE, reason, start) {
                        // Antidepressants are often stopped after months in remission.
                        if let (Some(day), true) = (switch_day(rng), random::chance(rng, 0.2)) {
                            let course = &mut plan.courses[index];
                            course.stop = Some(day);
                            course.stop_reason = Some("In remission; tapered and stopped.");
                            course.overdue_by = None;
                        }
                    }
                }
            }
            Chronic::Hypothyroidism => {
                plan.start(rng, &LEVOTHYROXINE, reason, start);
            }
            Chronic::Osteoarthritis => {
                let fragile_kidneys =
                    story.had(Chronic::KidneyDisease, today) || story.age_today() >= 75;
                if !fragile_kidneys && random::chance(rng, 0.3) {
                    plan.start(rng, &NAPROXEN, reason, start);
                } else if random::chance(rng, 0.6) {
                    plan.start(rng, &ACETAMINOPHEN, reason, start);
                }
            }
            Chronic::Obesity => {}
        }
    }
    plan.courses
}

struct CoursePlan {
    courses: Vec<Course>,
    /// How likely this patient is to have stopped collecting a given drug.
    lapse_chance: f64,
}

impl CoursePlan {
    /// Starts a course unless the drug is already prescribed (lisinopril serves both
    /// hypertension and CKD); returns its index.
    fn start(
        &mut self,
        rng: &mut SynthRng,
        drug: &'static Drug,
        reason: Uuid,
        start: NaiveDate,
    ) -> Option<usize> {
        if self
            .courses
            .iter()
            .any(|course| course.drug.code == drug.code)
        {
            return None;
        }
        let overdue_by =
            random::chance(rng, self.lapse_chance).then(|| random::between(rng, 1, 45));
        self.courses.push(Course {
            drug,
            reason,
            start,
            stop: None,
            stop_reason: None,
            overdue_by,
        });
        Some(self.courses.len() - 1)
    }

    /// Stops course `index` on `day` and starts `replacement` for the same condition.
    fn switch(
        &mut self,
        rng: &mut SynthRng,
        index: usize,
        day: NaiveDate,
        why: &'static str,
        replacement: &'static Drug,
    ) {
        let reason = self.courses[index].reason;
        let course = &mut self.courses[index];
        course.stop = Some(day);
        course.stop_reason = Some(why);
        course.overdue_by = None;
        self.start(rng, replacement, reason, day);
    }
}

fn medication_request(
    story: &Story,
    drug: &Drug,
    status: &str,
    authored: NaiveDate,
    repeats: i64,
    reason: Option<Uuid>,
    requester: &Value,
) -> Value {
    let mut dosage =
        json!({ "sequence": 1, "text": drug.instruction, "route": fhir::concept(drug.route) });
    match drug.per_day {
        Some(frequency) => {
            dosage["timing"] =
                json!({ "repeat": { "frequency": frequency, "period": 1, "periodUnit": "d" } });
        }
        None => dosage["asNeededBoolean"] = Value::from(true),
    }
    // A one-off prescription must be collected within a month; repeats run for a year.
    let validity_days = if repeats == 0 {
        30
    } else {
        PRESCRIPTION_VALIDITY_DAYS
    };
    let validity_end = add_days(authored, validity_days);
    let mut body = json!({
        "status": status,
        "intent": "order",
        "medicationCodeableConcept": fhir::concept(drug.code),
        "subject": story.subject(),
        "authoredOn": fhir::date(authored),
        "requester": requester,
        "dosageInstruction": [dosage],
        "dispenseRequest": {
            "validityPeriod": { "start": fhir::date(authored), "end": fhir::date(validity_end) },
            "numberOfRepeatsAllowed": repeats,
            "quantity": drug.fill(),
            "expectedSupplyDuration": fhir::days_quantity(drug.supply_days),
        },
    });
    if let Some(reason) = reason {
        body["reasonReference"] = json!([fhir::local_reference(reason)]);
    }
    body
}

fn medication_dispense(
    story: &Story,
    drug: &Drug,
    prescription: Uuid,
    first_fill: bool,
    handed_over: NaiveDateTime,
    pharmacist: &Value,
) -> Value {
    json!({
        "status": "completed",
        "type": fhir::concept(if first_fill { codes::FIRST_FILL } else { codes::REFILL }),
        "medicationCodeableConcept": fhir::concept(drug.code),
        "subject": story.subject(),
        "performer": [{ "actor": pharmacist }],
        "authorizingPrescription": [fhir::local_reference(prescription)],
        "quantity": drug.fill(),
        "daysSupply": fhir::days_quantity(drug.supply_days),
        "whenPrepared": fhir::instant(super::add_minutes(handed_over, -45)),
        "whenHandedOver": fhir::instant(handed_over),
        "dosageInstruction": [{ "sequence": 1, "text": drug.instruction }],
    })
}

pub(super) fn write_courses(rng: &mut SynthRng, story: &Story, transaction: &mut Transaction) {
    let today = story.today();
    let requester = story.clinician(story.general_practitioner()).reference();
    let pharmacist = story.clinician(story.context.care.pharmacist).reference();
    for course in &story.courses {
        let drug = course.drug;
        let end = course.stop.unwrap_or(today);
        if end <= story.window_start {
            continue;
        }
        // The chain of yearly prescriptions, keeping those still valid inside the window.
        let mut prescriptions: Vec<(NaiveDate, Uuid)> = Vec::new();
        let mut authored = course.start;
        while authored < end {
            if add_days(authored, PRESCRIPTION_VALIDITY_DAYS) > story.window_start {
                prescriptions.push((authored, random::uuid(rng)));
            }
            authored = add_days(authored, PRESCRIPTION_VALIDITY_DAYS);
        }
        let repeats = PRESCRIPTION_VALIDITY_DAYS / drug.supply_days - 1;
        for (position, (authored, id)) in prescriptions.iter().enumerate() {
            let last = position + 1 == prescriptions.len();
            let status = match (last, course.stop) {
                (false, _) => "completed",
                (true, None) => "active",
                (true, Some(_)) => "stopped",
            };
            let mut body = medication_request(
                story,
                drug,
                status,
                *authored,
                repeats,
                Some(course.reason),
                &requester,
            );
            if let (true, Some(reason)) = (status == "stopped", course.stop_reason) {
                body["statusReason"] = json!({ "text": reason });
            }
            transaction.add("MedicationRequest", *id, body);
        }

        // Fills: one when each runs out, usually collected a few days early; as-needed
        // drugs are collected less regularly.
        let mut fills: Vec<NaiveDate> = Vec::new();
        let mut fill = course.start;
        while fill < end {
            fills.push(fill);
            let delay = if drug.per_day.is_none() {
                random::between(rng, -3, 12)
            } else {
                random::between(rng, -5, 2)
            };
            fill = add_days(fill, drug.supply_days + delay);
        }
        if let Some(overdue_by) = course.overdue_by {
            // A patient who stopped collecting: drop fills until the last one ran out
            // `overdue_by` days ago.
            while fills.last().is_some_and(|last| {
                add_days(*last, drug.supply_days) > add_days(today, -overdue_by)
            }) {
                fills.pop();
            }
        }
        let history_start = story
            .window_start
            .max(add_days(today, -DISPENSE_HISTORY_DAYS));
        for (number, day) in fills.iter().enumerate() {
            if *day < history_start {
                continue;
            }
            let prescription_index = (*day - course.start).num_days() / PRESCRIPTION_VALIDITY_DAYS;
            let Some((_, prescription)) = prescriptions.iter().find(|(authored, _)| {
                (*authored - course.start).num_days() / PRESCRIPTION_VALIDITY_DAYS
                    == prescription_index
            }) else {
                continue;
            };
            let handed_over = at(
                *day,
                random::between(rng, 9, 17) as u32,
                random::between(rng, 0, 59) as u32,
            );
            transaction.add(
                "MedicationDispense",
                random::uuid(rng),
                medication_dispense(
                    story,
                    drug,
                    *prescription,
                    number == 0,
                    handed_over,
                    &pharmacist,
                ),
            );
        }
    }
}

/// A short course for an acute problem (antibiotics): one prescription made during the
/// encounter, completed, and one fill handed over the same day.
pub(super) fn write_acute_course(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    drug: &Drug,
    reason: Uuid,
    prescribed: Occasion,
) {
    let id = random::uuid(rng);
    let mut body = medication_request(
        story,
        drug,
        "completed",
        prescribed.at.date(),
        0,
        Some(reason),
        prescribed.by,
    );
    body["authoredOn"] = Value::from(fhir::instant(prescribed.at));
    body["encounter"] = fhir::local_reference(prescribed.encounter);
    transaction.add("MedicationRequest", id, body);
    let pharmacist = story.clinician(story.context.care.pharmacist).reference();
    let handed_over = prescribed.minutes_later(random::between(rng, 60, 300)).at;
    transaction.add(
        "MedicationDispense",
        random::uuid(rng),
        medication_dispense(story, drug, id, true, handed_over, &pharmacist),
    );
}
