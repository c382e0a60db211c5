//! Vital signs and laboratory results.
//!
//! Each patient has a [`Physiology`]: a few latent numbers drawn once (stature, BMI, how well
//! their diabetes is controlled, how damaged their kidneys are…). Every measurement is that
//! latent value, shaped by age, conditions and treatment, plus measurement noise, so results
//! tell a consistent story across visits. Vitals follow the FHIR R4 vital-signs profile
//! (observation-vitalsigns.html: category `vital-signs`, LOINC code, UCUM units); labs carry
//! a reference range and a v3 interpretation (N, H, L, and now and then HH or LL).

use serde_json::{json, Value};
use uuid::Uuid;

use super::conditions::Chronic;
use super::{Occasion, Story};
use crate::codes::{self, Code};
use crate::directory::Department;
use crate::fhir::{self, Transaction};
use crate::names::Sex;
use crate::random::{self, SynthRng};

/// Latent per-patient values, drawn once so measurements agree with each other over time.
pub(super) struct Physiology {
    /// Multiplier on median height for age and sex.
    stature: f64,
    /// BMI as an adult.
    pub adult_bmi: f64,
    /// Multiplier on median BMI for age, for children.
    child_bmi: f64,
    /// Standard deviations above the age norm for blood pressure.
    blood_pressure: f64,
    resting_heart_rate: f64,
    /// 0 (excellent) to 1 (poor) glycaemic control, if diabetic.
    pub glycaemic_control: f64,
    /// 0 (mild) to 1 (severe) kidney damage, if CKD.
    pub kidney_damage: f64,
    lipids: f64,
    potassium: f64,
    /// Whether the patient collects repeat prescriptions on time.
    pub adherent: bool,
}

impl Physiology {
    pub(super) fn sample(rng: &mut SynthRng) -> Physiology {
        Physiology {
            stature: random::normal(rng, 1.0, 0.035).clamp(0.9, 1.1),
            adult_bmi: random::normal(rng, 27.0, 4.8).clamp(17.5, 46.0),
            child_bmi: random::normal(rng, 1.0, 0.08).clamp(0.82, 1.3),
            blood_pressure: random::normal(rng, 0.0, 1.0).clamp(-2.5, 2.5),
            resting_heart_rate: random::normal(rng, 72.0, 8.0).clamp(54.0, 96.0),
            glycaemic_control: random::uniform(rng, 0.0, 1.0),
            kidney_damage: random::uniform(rng, 0.0, 1.0),
            lipids: random::normal(rng, 0.0, 1.0).clamp(-2.5, 2.5),
            potassium: random::normal(rng, 4.3, 0.25).clamp(3.7, 4.9),
            adherent: random::chance(rng, 0.88),
        }
    }
}

/// Median height (cm) for age in years, from WHO/CDC growth references (boys, girls).
const HEIGHT_MEDIANS: &[(f64, f64, f64)] = &[
    (0.0, 49.9, 49.1),
    (0.5, 67.6, 65.7),
    (1.0, 75.7, 74.0),
    (2.0, 87.8, 86.4),
    (3.0, 96.1, 95.1),
    (5.0, 110.0, 109.4),
    (8.0, 127.3, 126.6),
    (10.0, 137.8, 138.6),
    (12.0, 149.1, 151.2),
    (14.0, 163.2, 159.8),
    (16.0, 173.4, 162.5),
    (18.0, 176.1, 163.1),
];

/// Median BMI (kg/m2) for age in years (both sexes, rounded).
const BMI_MEDIANS: &[(f64, f64)] = &[
    (0.0, 13.4),
    (0.5, 17.3),
    (1.0, 17.2),
    (2.0, 16.3),
    (5.0, 15.3),
    (8.0, 15.8),
    (10.0, 16.6),
    (12.0, 17.8),
    (14.0, 19.2),
    (16.0, 20.3),
    (18.0, 21.3),
];

fn interpolate(points: &[(f64, f64)], x: f64) -> f64 {
    let (first, last) = (points[0], points[points.len() - 1]);
    if x <= first.0 {
        return first.1;
    }
    if x >= last.0 {
        return last.1;
    }
    let window = points
        .windows(2)
        .find(|pair| x <= pair[1].0)
        .expect("x lies inside the table");
    let (a, b) = (window[0], window[1]);
    a.1 + (b.1 - a.1) * (x - a.0) / (b.0 - a.0)
}

impl Story<'_> {
    fn height_cm(&self, age: f64) -> f64 {
        let column: Vec<(f64, f64)> = HEIGHT_MEDIANS
            .iter()
            .map(|(years, boys, girls)| match self.person().sex {
                Sex::Male => (*years, *boys),
                Sex::Female => (*years, *girls),
            })
            .collect();
        interpolate(&column, age) * self.body.stature
    }

    fn bmi(&self, age: f64) -> f64 {
        if age >= 18.0 {
            self.body.adult_bmi
        } else {
            interpolate(BMI_MEDIANS, age) * self.body.child_bmi
        }
    }
}

/// Which vital signs a kind of visit measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum VitalSet {
    /// A chronic-disease review: blood pressure, pulse, weight and BMI.
    Review,
    /// A health check: adds height.
    Checkup,
    /// Someone unwell: temperature and oxygen saturation too.
    Unwell,
    /// A home visit: blood pressure, pulse, oxygen saturation.
    Home,
    /// A well-child check: growth and pulse.
    Child,
}

/// How unwell the patient is at the time, which shifts the readings.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Acuity {
    pub fever: bool,
    pub low_oxygen: bool,
    pub pain: bool,
}

/// The readings taken, for the note.
#[derive(Debug, Default)]
pub(super) struct Vitals {
    pub blood_pressure: Option<(i64, i64)>,
    pub heart_rate: Option<i64>,
    pub temperature: Option<f64>,
    pub oxygen_saturation: Option<i64>,
    pub weight: Option<f64>,
    pub height: Option<f64>,
    pub bmi: Option<f64>,
}

/// Fields shared by every Observation: status, category, code, subject, encounter, time and
/// performer.
fn observation(story: &Story, category: Code, codings: &[Code], taken: Occasion) -> Value {
    json!({
        "status": "final",
        "category": [fhir::category(category)],
        "code": {
            "coding": codings.iter().map(|code| fhir::coding(*code)).collect::<Vec<_>>(),
            "text": codings[0].display,
        },
        "subject": story.subject(),
        "encounter": fhir::local_reference(taken.encounter),
        "effectiveDateTime": fhir::instant(taken.at),
        "performer": [taken.by],
    })
}

/// One vital-sign Observation with a UCUM `valueQuantity`.
fn write_vital(
    story: &Story,
    transaction: &mut Transaction,
    rng: &mut SynthRng,
    taken: Occasion,
    codings: &[Code],
    quantity: Value,
) {
    let mut body = observation(story, codes::VITAL_SIGNS, codings, taken);
    body["valueQuantity"] = quantity;
    transaction.add("Observation", random::uuid(rng), body);
}

pub(super) fn write_vitals(
    story: &Story,
    transaction: &mut Transaction,
    rng: &mut SynthRng,
    taken: Occasion,
    set: VitalSet,
    acuity: Acuity,
) -> Vitals {
    let date = taken.at.date();
    let age = story.exact_age_on(date);
    let mut vitals = Vitals::default();

    if matches!(set, VitalSet::Checkup | VitalSet::Child) || (set == VitalSet::Review && age < 18.0)
    {
        let height = story.height_cm(age) + random::normal(rng, 0.0, 0.4);
        vitals.height = Some(height);
        let quantity = fhir::quantity(fhir::decimal(height, 1), "cm", "cm");
        write_vital(
            story,
            transaction,
            rng,
            taken,
            &[codes::BODY_HEIGHT],
            quantity,
        );
    }
    if matches!(set, VitalSet::Review | VitalSet::Checkup | VitalSet::Child) {
        let height_m = story.height_cm(age) / 100.0;
        let weight = story.bmi(age) * height_m * height_m * random::normal(rng, 1.0, 0.012);
        let bmi = weight / (height_m * height_m);
        vitals.weight = Some(weight);
        vitals.bmi = Some(bmi);
        let quantity = fhir::quantity(fhir::decimal(weight, 1), "kg", "kg");
        write_vital(
            story,
            transaction,
            rng,
            taken,
            &[codes::BODY_WEIGHT],
            quantity,
        );
        if age >= 2.0 {
            let quantity = fhir::quantity(fhir::decimal(bmi, 1), "kg/m2", "kg/m2");
            write_vital(
                story,
                transaction,
                rng,
                taken,
                &[codes::BODY_MASS_INDEX],
                quantity,
            );
        }
    }
    if age >= 3.0 && set != VitalSet::Child {
        let (systolic, diastolic) = blood_pressure(story, rng, date, age, acuity);
        vitals.blood_pressure = Some((systolic, diastolic));
        write_blood_pressure(story, transaction, rng, taken, systolic, diastolic);
    }
    let heart_rate = heart_rate(story, rng, date, age, acuity);
    vitals.heart_rate = Some(heart_rate);
    let quantity = fhir::quantity(Value::from(heart_rate), "beats/minute", "/min");
    write_vital(
        story,
        transaction,
        rng,
        taken,
        &[codes::HEART_RATE],
        quantity,
    );
    if set == VitalSet::Unwell {
        let temperature = if acuity.fever {
            random::uniform(rng, 37.8, 39.4)
        } else {
            random::normal(rng, 36.8, 0.25).clamp(36.1, 37.4)
        };
        vitals.temperature = Some(temperature);
        let quantity = fhir::quantity(fhir::decimal(temperature, 1), "Cel", "Cel");
        write_vital(
            story,
            transaction,
            rng,
            taken,
            &[codes::BODY_TEMPERATURE],
            quantity,
        );
    }
    if matches!(set, VitalSet::Unwell | VitalSet::Home) {
        let saturation = oxygen_saturation(story, rng, date, acuity);
        vitals.oxygen_saturation = Some(saturation);
        // The vital-signs profile requires 2708-6 alongside the pulse-oximetry code.
        let codings = [codes::OXYGEN_SATURATION, codes::OXYGEN_SATURATION_ARTERIAL];
        let quantity = fhir::quantity(Value::from(saturation), "%", "%");
        write_vital(story, transaction, rng, taken, &codings, quantity);
    }
    vitals
}

fn blood_pressure(
    story: &Story,
    rng: &mut SynthRng,
    date: chrono::NaiveDate,
    age: f64,
    acuity: Acuity,
) -> (i64, i64) {
    let mut systolic = if age < 18.0 {
        90.0 + 1.6 * age
    } else {
        108.0 + 0.45 * (age - 20.0)
    } + 7.0 * story.body.blood_pressure;
    if story.had(Chronic::Hypertension, date) {
        systolic += 20.0;
        if story.treated(Chronic::Hypertension, date) {
            systolic -= 12.0;
        }
    }
    if acuity.pain {
        systolic += 10.0;
    }
    systolic += random::normal(rng, 0.0, 6.0);
    let diastolic = 72.0 + (systolic - 120.0) * 0.45 + random::normal(rng, 0.0, 4.0)
        - if age > 65.0 { 5.0 } else { 0.0 };
    (
        systolic.round().clamp(78.0, 210.0) as i64,
        diastolic.round().clamp(42.0, 125.0) as i64,
    )
}

fn heart_rate(
    story: &Story,
    rng: &mut SynthRng,
    date: chrono::NaiveDate,
    age: f64,
    acuity: Acuity,
) -> i64 {
    let mut rate = match age {
        a if a < 1.0 => 130.0,
        a if a < 3.0 => 112.0,
        a if a < 6.0 => 100.0,
        a if a < 12.0 => 88.0,
        a if a < 18.0 => 78.0,
        _ => story.body.resting_heart_rate,
    } + random::normal(rng, 0.0, 5.0);
    if story.had(Chronic::AtrialFibrillation, date) {
        rate += random::uniform(rng, 0.0, 25.0);
    }
    if acuity.fever || acuity.low_oxygen {
        rate += 16.0;
    }
    rate.round().clamp(40.0, 190.0) as i64
}

fn oxygen_saturation(
    story: &Story,
    rng: &mut SynthRng,
    date: chrono::NaiveDate,
    acuity: Acuity,
) -> i64 {
    let (low, high) = if acuity.low_oxygen {
        (87, 93)
    } else if story.had(Chronic::Copd, date) || story.had(Chronic::HeartFailure, date) {
        (91, 96)
    } else {
        (95, 100)
    };
    random::between(rng, low, high)
}

#[allow(clippy::too_many_arguments)]
fn write_blood_pressure(
    story: &Story,
    transaction: &mut Transaction,
    rng: &mut SynthRng,
    taken: Occasion,
    systolic: i64,
    diastolic: i64,
) {
    let component = |code: Code, value: i64| {
        json!({
            "code": fhir::concept(code),
            "valueQuantity": fhir::quantity(Value::from(value), "mmHg", "mm[Hg]"),
        })
    };
    let mut body = observation(
        story,
        codes::VITAL_SIGNS,
        &[codes::BLOOD_PRESSURE_PANEL],
        taken,
    );
    // Flag readings at or above 140/90, the usual clinic threshold for hypertension.
    let interpretation = if systolic >= 180 || diastolic >= 120 {
        codes::CRITICAL_HIGH
    } else if systolic >= 140 || diastolic >= 90 {
        codes::HIGH
    } else if systolic < 90 {
        codes::LOW
    } else {
        codes::NORMAL
    };
    body["interpretation"] = json!([fhir::category(interpretation)]);
    body["component"] = json!([
        component(codes::SYSTOLIC_BLOOD_PRESSURE, systolic),
        component(codes::DIASTOLIC_BLOOD_PRESSURE, diastolic),
    ]);
    transaction.add("Observation", random::uuid(rng), body);
}

/// Results are reported (`issued`) six hours after the sample is taken.
const RESULTS_AFTER_MINUTES: i64 = 6 * 60;

/// Which tests were ordered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct LabOrder {
    pub hba1c: bool,
    /// Glucose, creatinine, eGFR and potassium, grouped in a DiagnosticReport.
    pub metabolic_panel: bool,
    pub cholesterol: bool,
}

impl LabOrder {
    pub(super) fn any(self) -> bool {
        self.hba1c || self.metabolic_panel || self.cholesterol
    }
}

/// Results worth mentioning in a note.
#[derive(Debug, Default)]
pub(super) struct LabResults {
    pub hba1c: Option<f64>,
    pub egfr: Option<i64>,
    pub cholesterol: Option<i64>,
    /// Phrases such as "potassium critically high (6.4 mmol/L)".
    pub abnormal: Vec<String>,
}

/// A lab test's units and reference interval (adult values; ranges vary by laboratory).
struct Test {
    code: Code,
    unit: &'static str,
    ucum: &'static str,
    places: usize,
    low: Option<f64>,
    high: Option<f64>,
    critical_low: Option<f64>,
    critical_high: Option<f64>,
    name: &'static str,
}

const HBA1C: Test = Test {
    code: codes::HBA1C,
    unit: "%",
    ucum: "%",
    places: 1,
    low: Some(4.0),
    high: Some(5.6),
    critical_low: None,
    critical_high: None,
    name: "HbA1c",
};
const GLUCOSE: Test = Test {
    code: codes::GLUCOSE,
    unit: "mg/dL",
    ucum: "mg/dL",
    places: 0,
    low: Some(70.0),
    high: Some(99.0),
    critical_low: Some(50.0),
    critical_high: Some(400.0),
    name: "glucose",
};
const EGFR: Test = Test {
    code: codes::EGFR,
    unit: "mL/min/1.73m2",
    ucum: "mL/min/{1.73_m2}",
    places: 0,
    low: Some(60.0),
    high: None,
    critical_low: None,
    critical_high: None,
    name: "eGFR",
};
const CHOLESTEROL: Test = Test {
    code: codes::CHOLESTEROL,
    unit: "mg/dL",
    ucum: "mg/dL",
    places: 0,
    low: None,
    high: Some(199.0),
    critical_low: None,
    critical_high: None,
    name: "total cholesterol",
};
const POTASSIUM: Test = Test {
    code: codes::POTASSIUM,
    unit: "mmol/L",
    ucum: "mmol/L",
    places: 1,
    low: Some(3.5),
    high: Some(5.1),
    critical_low: Some(3.0),
    critical_high: Some(6.0),
    name: "potassium",
};

fn creatinine_test(sex: Sex) -> Test {
    let (low, high) = match sex {
        Sex::Female => (0.59, 1.04),
        Sex::Male => (0.74, 1.35),
    };
    Test {
        code: codes::CREATININE,
        unit: "mg/dL",
        ucum: "mg/dL",
        places: 2,
        low: Some(low),
        high: Some(high),
        critical_low: None,
        critical_high: None,
        name: "creatinine",
    }
}

fn interpret(test: &Test, value: f64) -> Code {
    let below = |limit: Option<f64>| limit.is_some_and(|limit| value < limit);
    let above = |limit: Option<f64>| limit.is_some_and(|limit| value > limit);
    if above(test.critical_high) {
        codes::CRITICAL_HIGH
    } else if below(test.critical_low) {
        codes::CRITICAL_LOW
    } else if above(test.high) {
        codes::HIGH
    } else if below(test.low) {
        codes::LOW
    } else {
        codes::NORMAL
    }
}

/// Writes one lab Observation and returns its id; abnormal results are noted in `results`.
#[allow(clippy::too_many_arguments)]
fn write_lab(
    story: &Story,
    transaction: &mut Transaction,
    rng: &mut SynthRng,
    taken: Occasion,
    test: &Test,
    value: f64,
    results: &mut LabResults,
) -> Uuid {
    // Round first so the interpretation matches the number a reader sees.
    let factor = 10f64.powi(test.places as i32);
    let value = (value * factor).round() / factor;
    let interpretation = interpret(test, value);
    let mut body = observation(story, codes::LABORATORY, &[test.code], taken);
    body["issued"] = Value::from(fhir::instant(taken.minutes_later(RESULTS_AFTER_MINUTES).at));
    body["valueQuantity"] = fhir::quantity(fhir::decimal(value, test.places), test.unit, test.ucum);
    body["interpretation"] = json!([fhir::category(interpretation)]);
    let mut range = json!({});
    if let Some(low) = test.low {
        range["low"] = fhir::quantity(fhir::decimal(low, test.places), test.unit, test.ucum);
    }
    if let Some(high) = test.high {
        range["high"] = fhir::quantity(fhir::decimal(high, test.places), test.unit, test.ucum);
    }
    body["referenceRange"] = json!([range]);
    if interpretation != codes::NORMAL {
        let value_text = format!("{value:.places$} {}", test.unit, places = test.places);
        results.abnormal.push(format!(
            "{} {} ({value_text})",
            test.name,
            interpretation.display.to_lowercase()
        ));
    }
    let id = random::uuid(rng);
    transaction.add("Observation", id, body);
    id
}

pub(super) fn write_labs(
    story: &Story,
    transaction: &mut Transaction,
    rng: &mut SynthRng,
    sampled: Occasion,
    order: LabOrder,
) -> LabResults {
    let date = sampled.at.date();
    let age = story.exact_age_on(date);
    let sex = story.person().sex;
    // Samples go to the hospital laboratory, which is the performer of the results.
    let directory = story.context.directory;
    let laboratory = directory
        .organization(directory.department(Department::GeneralMedicine))
        .reference();
    let at_lab = Occasion {
        by: &laboratory,
        ..sampled
    };
    let body = &story.body;
    let diabetic = story.had(Chronic::Diabetes, date);
    let on_insulin = story.taking(codes::INSULIN_70_30, date);
    let mut results = LabResults::default();

    // HbA1c: diabetics between about 6.3 and 10.5 % depending on control, others 4.8-5.9.
    let hba1c_level = if diabetic {
        6.3 + 4.0 * body.glycaemic_control
    } else {
        5.0 + 0.25 * (body.adult_bmi - 25.0) / 5.0
    };
    if order.hba1c {
        let value = (hba1c_level + random::normal(rng, 0.0, 0.3)).clamp(4.3, 13.5);
        results.hba1c = Some((value * 10.0).round() / 10.0);
        write_lab(story, transaction, rng, at_lab, &HBA1C, value, &mut results);
    }

    if order.metabolic_panel {
        // Glucose tracks HbA1c (ADA estimated average glucose: 28.7 × A1c − 46.7), with the
        // occasional hypo on insulin or severe hyperglycaemia when control is poor.
        let mut glucose = if diabetic {
            28.7 * hba1c_level - 46.7 + random::normal(rng, 0.0, 18.0)
        } else {
            random::normal(rng, 88.0, 8.0)
        };
        if on_insulin && random::chance(rng, 0.05) {
            glucose = random::uniform(rng, 38.0, 49.0);
        } else if diabetic && body.glycaemic_control > 0.8 && random::chance(rng, 0.06) {
            glucose = random::uniform(rng, 410.0, 520.0);
        }
        let glucose_id = write_lab(
            story,
            transaction,
            rng,
            at_lab,
            &GLUCOSE,
            glucose.max(35.0),
            &mut results,
        );

        let baseline = match sex {
            Sex::Female => 0.72,
            Sex::Male => 0.92,
        } + 0.002 * (age - 40.0).max(0.0);
        let creatinine = if story.had(Chronic::KidneyDisease, date) {
            baseline * (1.45 + 2.0 * body.kidney_damage)
        } else {
            baseline
        } * random::normal(rng, 1.0, 0.05);
        let creatinine = (creatinine * 100.0).round() / 100.0;
        let creatinine_id = write_lab(
            story,
            transaction,
            rng,
            at_lab,
            &creatinine_test(sex),
            creatinine,
            &mut results,
        );

        // eGFR by the MDRD study equation, matching LOINC 33914-3.
        let mut egfr = 175.0 * creatinine.powf(-1.154) * age.max(18.0).powf(-0.203);
        if sex == Sex::Female {
            egfr *= 0.742;
        }
        let egfr = egfr.round();
        results.egfr = Some(egfr as i64);
        let egfr_id = write_lab(story, transaction, rng, at_lab, &EGFR, egfr, &mut results);

        let on_diuretic = story.taking(codes::HYDROCHLOROTHIAZIDE_25, date)
            || story.taking(codes::FUROSEMIDE_40, date);
        let kidney = story.had(Chronic::KidneyDisease, date);
        let mut potassium = body.potassium
            + if kidney {
                0.35 * body.kidney_damage + 0.2
            } else {
                0.0
            }
            - if on_diuretic { 0.3 } else { 0.0 }
            + random::normal(rng, 0.0, 0.15);
        if kidney && random::chance(rng, 0.06) {
            potassium = random::uniform(rng, 6.1, 6.8);
        } else if on_diuretic && random::chance(rng, 0.05) {
            potassium = random::uniform(rng, 2.6, 2.95);
        }
        let potassium_id = write_lab(
            story,
            transaction,
            rng,
            at_lab,
            &POTASSIUM,
            potassium,
            &mut results,
        );

        let results_in_panel: Vec<Value> = [glucose_id, creatinine_id, egfr_id, potassium_id]
            .iter()
            .map(|id| fhir::local_reference(*id))
            .collect();
        let mut report = json!({
            "status": "final",
            "category": [fhir::category(codes::LAB_SERVICE)],
            "code": fhir::concept(codes::BASIC_METABOLIC_PANEL),
            "subject": story.subject(),
            "encounter": fhir::local_reference(sampled.encounter),
            "effectiveDateTime": fhir::instant(sampled.at),
            "issued": fhir::instant(at_lab.minutes_later(RESULTS_AFTER_MINUTES).at),
            "performer": [laboratory],
            "result": results_in_panel,
        });
        let panel_findings: Vec<&String> = results
            .abnormal
            .iter()
            .filter(|finding| !finding.starts_with("HbA1c"))
            .collect();
        report["conclusion"] = Value::from(if panel_findings.is_empty() {
            "All results within reference range.".to_owned()
        } else {
            let joined: Vec<&str> = panel_findings
                .iter()
                .map(|finding| finding.as_str())
                .collect();
            format!("Abnormal: {}.", joined.join("; "))
        });
        transaction.add("DiagnosticReport", random::uuid(rng), report);
    }

    if order.cholesterol {
        let mut cholesterol = 185.0
            + 24.0 * body.lipids
            + if story.had(Chronic::Hyperlipidemia, date) {
                50.0
            } else {
                0.0
            };
        if story.taking(codes::ATORVASTATIN_80, date) || story.taking(codes::SIMVASTATIN_10, date) {
            cholesterol *= 0.72;
        }
        cholesterol += random::normal(rng, 0.0, 10.0);
        results.cholesterol = Some(cholesterol.round() as i64);
        write_lab(
            story,
            transaction,
            rng,
            at_lab,
            &CHOLESTEROL,
            cholesterol.max(110.0),
            &mut results,
        );
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpretation_follows_the_reference_and_critical_limits() {
        assert_eq!(interpret(&POTASSIUM, 4.2), codes::NORMAL);
        assert_eq!(interpret(&POTASSIUM, 5.4), codes::HIGH);
        assert_eq!(interpret(&POTASSIUM, 6.4), codes::CRITICAL_HIGH);
        assert_eq!(interpret(&POTASSIUM, 3.2), codes::LOW);
        assert_eq!(interpret(&POTASSIUM, 2.8), codes::CRITICAL_LOW);
        assert_eq!(interpret(&EGFR, 45.0), codes::LOW);
        assert_eq!(interpret(&CHOLESTEROL, 240.0), codes::HIGH);
    }

    #[test]
    fn growth_tables_interpolate_between_ages() {
        assert!((interpolate(BMI_MEDIANS, 1.5) - 16.75).abs() < 1e-9);
        assert_eq!(interpolate(BMI_MEDIANS, 40.0), 21.3);
    }
}
