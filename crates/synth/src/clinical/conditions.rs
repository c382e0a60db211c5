//! Chronic and acute conditions.
//!
//! Chronic conditions are drawn with age- and risk-dependent probabilities loosely shaped
//! like adult prevalence in high-income countries (hypertension in about half of people over
//! 70, type 2 diabetes commoner with obesity, CKD commoner with diabetes and hypertension,
//! heart failure with atrial fibrillation). They go on the problem list
//! (category `problem-list-item`); acute problems found at a visit are encounter diagnoses
//! that resolve.

use chrono::NaiveDate;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{add_days, Occasion, Story};
use crate::codes::{self, Code};
use crate::fhir::{self, Transaction};
use crate::names::Sex;
use crate::random::{self, SynthRng};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chronic {
    Obesity,
    Hypertension,
    Diabetes,
    Hyperlipidemia,
    Asthma,
    Copd,
    KidneyDisease,
    AtrialFibrillation,
    HeartFailure,
    Depression,
    Anxiety,
    Osteoarthritis,
    Hypothyroidism,
}

impl Chronic {
    /// In the order they are drawn: risk factors before the conditions they raise.
    const ALL: [Chronic; 13] = [
        Chronic::Obesity,
        Chronic::Hypertension,
        Chronic::Diabetes,
        Chronic::Hyperlipidemia,
        Chronic::Asthma,
        Chronic::Copd,
        Chronic::KidneyDisease,
        Chronic::AtrialFibrillation,
        Chronic::HeartFailure,
        Chronic::Depression,
        Chronic::Anxiety,
        Chronic::Osteoarthritis,
        Chronic::Hypothyroidism,
    ];

    pub(crate) fn code(self) -> Code {
        match self {
            Chronic::Obesity => codes::OBESITY,
            Chronic::Hypertension => codes::HYPERTENSION,
            Chronic::Diabetes => codes::DIABETES_TYPE_2,
            Chronic::Hyperlipidemia => codes::HYPERLIPIDEMIA,
            Chronic::Asthma => codes::ASTHMA,
            Chronic::Copd => codes::COPD,
            Chronic::KidneyDisease => codes::CHRONIC_KIDNEY_DISEASE,
            Chronic::AtrialFibrillation => codes::ATRIAL_FIBRILLATION,
            Chronic::HeartFailure => codes::HEART_FAILURE,
            Chronic::Depression => codes::DEPRESSION,
            Chronic::Anxiety => codes::ANXIETY,
            Chronic::Osteoarthritis => codes::OSTEOARTHRITIS,
            Chronic::Hypothyroidism => codes::HYPOTHYROIDISM,
        }
    }

    /// How a clinician would name it in a note.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Chronic::Obesity => "obesity",
            Chronic::Hypertension => "hypertension",
            Chronic::Diabetes => "type 2 diabetes",
            Chronic::Hyperlipidemia => "hyperlipidaemia",
            Chronic::Asthma => "asthma",
            Chronic::Copd => "COPD",
            Chronic::KidneyDisease => "chronic kidney disease",
            Chronic::AtrialFibrillation => "atrial fibrillation",
            Chronic::HeartFailure => "heart failure",
            Chronic::Depression => "depression",
            Chronic::Anxiety => "anxiety",
            Chronic::Osteoarthritis => "osteoarthritis",
            Chronic::Hypothyroidism => "hypothyroidism",
        }
    }

    /// The youngest age at which the generator lets the condition start.
    fn earliest_onset(self) -> i64 {
        match self {
            Chronic::Asthma => 2,
            Chronic::Anxiety | Chronic::Depression => 13,
            Chronic::Obesity | Chronic::Hypothyroidism => 18,
            Chronic::Hypertension | Chronic::Diabetes | Chronic::Hyperlipidemia => 25,
            Chronic::KidneyDisease | Chronic::Osteoarthritis => 40,
            Chronic::Copd | Chronic::AtrialFibrillation | Chronic::HeartFailure => 45,
        }
    }

    fn probability(self, risk: &Risk) -> f64 {
        let age = risk.age as f64;
        let over = |threshold: f64, per_year: f64| ((age - threshold) * per_year).max(0.0);
        let has = |kind: Chronic| risk.has.contains(&kind);
        let bool_weight = |condition: bool, weight: f64| if condition { weight } else { 0.0 };
        let p = match self {
            Chronic::Obesity => bool_weight(risk.bmi >= 30.0, 0.75),
            Chronic::Hypertension => 0.02 + over(30.0, 0.011) + bool_weight(risk.bmi >= 30.0, 0.1),
            Chronic::Diabetes => over(30.0, 0.004) + bool_weight(risk.bmi >= 30.0, 0.1),
            Chronic::Hyperlipidemia => over(35.0, 0.009) + bool_weight(has(Chronic::Diabetes), 0.2),
            Chronic::Asthma => 0.08,
            Chronic::Copd => over(45.0, 0.003),
            Chronic::KidneyDisease => {
                over(45.0, 0.004)
                    + bool_weight(has(Chronic::Diabetes), 0.12)
                    + bool_weight(has(Chronic::Hypertension), 0.06)
            }
            Chronic::AtrialFibrillation => over(55.0, 0.005),
            Chronic::HeartFailure => {
                over(55.0, 0.003)
                    + bool_weight(has(Chronic::AtrialFibrillation), 0.1)
                    + bool_weight(has(Chronic::Hypertension), 0.03)
            }
            Chronic::Depression => {
                if risk.age >= 18 {
                    0.09
                } else {
                    0.04
                }
            }
            Chronic::Anxiety => {
                if risk.age >= 18 {
                    0.07
                } else {
                    0.05
                }
            }
            Chronic::Osteoarthritis => over(45.0, 0.012),
            Chronic::Hypothyroidism => match risk.sex {
                Sex::Female => 0.06 * (age / 50.0).min(1.0),
                Sex::Male => 0.015,
            },
        };
        p.min(0.7)
    }
}

/// What the draw of each condition depends on.
struct Risk {
    age: i64,
    sex: Sex,
    bmi: f64,
    has: Vec<Chronic>,
}

/// A condition on the problem list, with the id its Condition resource will have.
pub(crate) struct ChronicCondition {
    pub kind: Chronic,
    pub id: Uuid,
    pub onset: NaiveDate,
}

pub(super) fn plan(rng: &mut SynthRng, story: &Story) -> Vec<ChronicCondition> {
    let person = story.person();
    let age = story.age_today();
    let mut risk = Risk {
        age,
        sex: person.sex,
        bmi: story.body.adult_bmi,
        has: Vec::new(),
    };
    let mut planned = Vec::new();
    for kind in Chronic::ALL {
        if age < kind.earliest_onset() || !random::chance(rng, kind.probability(&risk)) {
            continue;
        }
        // Onset somewhere between the earliest plausible age and two weeks ago.
        let earliest = add_days(person.birth_date, kind.earliest_onset() * 365);
        let latest = add_days(story.today(), -14);
        let onset = super::random_day(rng, earliest, latest).min(latest);
        risk.has.push(kind);
        planned.push(ChronicCondition {
            kind,
            id: random::uuid(rng),
            onset,
        });
    }
    planned
}

pub(super) fn write_chronic(story: &Story, transaction: &mut Transaction) {
    let general_practitioner = story.clinician(story.general_practitioner()).reference();
    for condition in &story.chronic {
        transaction.add(
            "Condition",
            condition.id,
            json!({
                "clinicalStatus": fhir::category(codes::ACTIVE),
                "verificationStatus": fhir::category(codes::CONFIRMED),
                "category": [fhir::category(codes::PROBLEM_LIST_ITEM)],
                "code": fhir::concept(condition.kind.code()),
                "subject": story.subject(),
                "onsetDateTime": fhir::date(condition.onset),
                "recordedDate": fhir::date(condition.onset),
                "recorder": general_practitioner,
            }),
        );
    }
}

/// An acute problem diagnosed at an encounter; it resolves after `resolves_after_days`
/// unless that day is still ahead.
pub(super) fn write_acute(
    story: &Story,
    transaction: &mut Transaction,
    id: Uuid,
    code: Code,
    diagnosed: Occasion,
    resolves_after_days: i64,
) {
    let abatement = add_days(diagnosed.at.date(), resolves_after_days);
    let resolved = abatement < story.today();
    let mut body = json!({
        "clinicalStatus": fhir::category(if resolved { codes::RESOLVED } else { codes::ACTIVE }),
        "verificationStatus": fhir::category(codes::CONFIRMED),
        "category": [fhir::category(codes::ENCOUNTER_DIAGNOSIS)],
        "code": fhir::concept(code),
        "subject": story.subject(),
        "encounter": fhir::local_reference(diagnosed.encounter),
        "onsetDateTime": fhir::instant(diagnosed.at),
        "recordedDate": fhir::instant(diagnosed.at),
        "recorder": diagnosed.by,
    });
    if resolved {
        body["abatementDateTime"] = Value::from(fhir::date(abatement));
    }
    transaction.add("Condition", id, body);
}
