//! The patient's timeline: appointments and the encounters they lead to, emergency
//! attendances and hospital stays, specialist clinics and community visits.
//!
//! Practice and clinic visits start as Appointments. Past ones are mostly `fulfilled` (and
//! then have an Encounter with vitals, perhaps labs, a note and procedures), about one in
//! ten is a `noshow` and a few were `cancelled`; future ones are `booked`, including a few
//! for tomorrow, so the console's day list and no-show statistics have data. Emergency
//! attendances have no appointment; some lead to an inpatient stay, and a handful of stays
//! ended in the last days before `today`, so "recently discharged" lists are not empty.

use chrono::{NaiveDate, NaiveDateTime};
use serde_json::{json, Value};
use uuid::Uuid;

use super::conditions::{self, Chronic};
use super::medications;
use super::notes::{self, labs_sentence, list, paragraph, vitals_sentence};
use super::observations::{self, Acuity, LabOrder, LabResults, VitalSet, Vitals};
use super::{
    add_days, add_minutes, at, clinic_time, random_day, weekday_on_same_side, Occasion, Story,
};
use crate::codes::{self, Code};
use crate::directory::{Department, Role};
use crate::fhir::{self, Transaction};
use crate::random::{self, SynthRng};

/// Minor illnesses seen at the practice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MinorIllness {
    Sinusitis,
    SoreThroat,
    Bronchitis,
    EarInfection,
    UrinaryTractInfection,
    Eczema,
}

impl MinorIllness {
    fn code(self) -> Code {
        match self {
            MinorIllness::Sinusitis => codes::VIRAL_SINUSITIS,
            MinorIllness::SoreThroat => codes::ACUTE_VIRAL_PHARYNGITIS,
            MinorIllness::Bronchitis => codes::ACUTE_BRONCHITIS,
            MinorIllness::EarInfection => codes::OTITIS_MEDIA,
            MinorIllness::UrinaryTractInfection => codes::URINARY_TRACT_INFECTION,
            MinorIllness::Eczema => codes::ATOPIC_DERMATITIS,
        }
    }

    fn complaint(self) -> &'static str {
        match self {
            MinorIllness::Sinusitis => "facial pain and a blocked nose",
            MinorIllness::SoreThroat => "a sore throat",
            MinorIllness::Bronchitis => "a productive cough",
            MinorIllness::EarInfection => "ear pain",
            MinorIllness::UrinaryTractInfection => "dysuria and urinary frequency",
            MinorIllness::Eczema => "an itchy rash",
        }
    }

    fn fever(self) -> bool {
        matches!(
            self,
            MinorIllness::EarInfection | MinorIllness::Bronchitis | MinorIllness::SoreThroat
        )
    }

    /// How often an antibiotic is prescribed (most of these are viral).
    fn antibiotic_chance(self) -> f64 {
        match self {
            MinorIllness::UrinaryTractInfection => 0.9,
            MinorIllness::EarInfection => 0.5,
            MinorIllness::Sinusitis | MinorIllness::Bronchitis => 0.2,
            MinorIllness::SoreThroat => 0.15,
            MinorIllness::Eczema => 0.0,
        }
    }

    fn resolves_after_days(self) -> i64 {
        match self {
            MinorIllness::Eczema => 60,
            MinorIllness::Sinusitis | MinorIllness::Bronchitis => 14,
            _ => 7,
        }
    }

    fn pick(rng: &mut SynthRng, story: &Story) -> MinorIllness {
        let female = story.person().sex == crate::names::Sex::Female;
        if story.age_today() < 12 {
            random::weighted(
                rng,
                &[
                    (MinorIllness::EarInfection, 4),
                    (MinorIllness::SoreThroat, 3),
                    (MinorIllness::Bronchitis, 2),
                    (MinorIllness::Eczema, 2),
                ],
            )
        } else {
            random::weighted(
                rng,
                &[
                    (MinorIllness::Sinusitis, 3),
                    (MinorIllness::SoreThroat, 3),
                    (MinorIllness::Bronchitis, 3),
                    (
                        MinorIllness::UrinaryTractInfection,
                        if female { 3 } else { 1 },
                    ),
                    (MinorIllness::Eczema, 1),
                ],
            )
        }
    }
}

/// Reasons to attend the emergency department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Emergency {
    ChestPain,
    AnkleSprain,
    HeadInjury,
    Pneumonia,
    CopdExacerbation,
    HeartFailureExacerbation,
    HipFracture,
}

impl Emergency {
    /// The diagnosis recorded, or `None` when it is a flare of a known chronic condition.
    fn code(self) -> Option<Code> {
        match self {
            Emergency::ChestPain => Some(codes::CHEST_PAIN),
            Emergency::AnkleSprain => Some(codes::SPRAIN_OF_ANKLE),
            Emergency::HeadInjury => Some(codes::CONCUSSION),
            Emergency::Pneumonia => Some(codes::PNEUMONIA),
            Emergency::CopdExacerbation => Some(codes::COPD_EXACERBATION),
            Emergency::HeartFailureExacerbation => None,
            Emergency::HipFracture => Some(codes::FRACTURE_OF_HIP),
        }
    }

    fn label(self) -> &'static str {
        match self {
            Emergency::ChestPain => "chest pain",
            Emergency::AnkleSprain => "an ankle sprain",
            Emergency::HeadInjury => "a minor head injury",
            Emergency::Pneumonia => "community-acquired pneumonia",
            Emergency::CopdExacerbation => "an exacerbation of COPD",
            Emergency::HeartFailureExacerbation => "decompensated heart failure",
            Emergency::HipFracture => "a fractured hip after a fall",
        }
    }

    fn admission_chance(self) -> f64 {
        match self {
            Emergency::ChestPain => 0.3,
            Emergency::AnkleSprain => 0.0,
            Emergency::HeadInjury => 0.1,
            Emergency::Pneumonia => 0.55,
            Emergency::CopdExacerbation => 0.6,
            Emergency::HeartFailureExacerbation => 0.85,
            Emergency::HipFracture => 1.0,
        }
    }

    /// Shortest and longest stay, in nights.
    fn stay(self) -> (i64, i64) {
        match self {
            Emergency::ChestPain | Emergency::HeadInjury | Emergency::AnkleSprain => (1, 2),
            Emergency::Pneumonia | Emergency::CopdExacerbation => (3, 7),
            Emergency::HeartFailureExacerbation => (4, 9),
            Emergency::HipFracture => (6, 12),
        }
    }

    fn ward(self) -> Department {
        match self {
            Emergency::ChestPain | Emergency::HeartFailureExacerbation => Department::Cardiology,
            Emergency::Pneumonia | Emergency::CopdExacerbation => Department::RespiratoryMedicine,
            _ => Department::GeneralMedicine,
        }
    }

    fn acuity(self) -> Acuity {
        match self {
            Emergency::Pneumonia => Acuity {
                fever: true,
                low_oxygen: true,
                pain: false,
            },
            Emergency::CopdExacerbation | Emergency::HeartFailureExacerbation => Acuity {
                fever: false,
                low_oxygen: true,
                pain: false,
            },
            _ => Acuity {
                fever: false,
                low_oxygen: false,
                pain: true,
            },
        }
    }

    fn resolves_after_days(self) -> i64 {
        match self {
            Emergency::ChestPain => 1,
            Emergency::HeadInjury | Emergency::CopdExacerbation => 14,
            Emergency::AnkleSprain | Emergency::Pneumonia => 21,
            Emergency::HeartFailureExacerbation => 14,
            Emergency::HipFracture => 90,
        }
    }

    fn pick(rng: &mut SynthRng, story: &Story, date: NaiveDate, admitted_only: bool) -> Emergency {
        let age = story.age_on(date);
        let weight = |condition: bool, weight: u32| if condition { weight } else { 0 };
        let choices = [
            (
                Emergency::ChestPain,
                weight(age >= 18, if age >= 40 { 4 } else { 2 }),
            ),
            (
                Emergency::AnkleSprain,
                weight(!admitted_only, if age < 60 { 4 } else { 1 }),
            ),
            (
                Emergency::HeadInjury,
                weight(!admitted_only, if age < 12 { 3 } else { 2 }),
            ),
            (Emergency::Pneumonia, 1 + weight(age >= 70, 3)),
            (
                Emergency::CopdExacerbation,
                weight(story.had(Chronic::Copd, date), 5),
            ),
            (
                Emergency::HeartFailureExacerbation,
                weight(story.had(Chronic::HeartFailure, date), 5),
            ),
            (Emergency::HipFracture, weight(age >= 70, 2)),
        ];
        random::weighted(rng, &choices)
    }
}

/// Why a patient has an appointment.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Purpose {
    Checkup,
    WellChild,
    /// A chronic disease review at the practice.
    Review,
    MinorIllness(MinorIllness),
    /// GP follow-up after a hospital stay.
    AfterDischarge(Emergency),
    /// A hospital outpatient clinic with the specialist who follows a condition.
    Clinic(usize, Chronic),
    /// A district nurse visiting a housebound patient.
    HomeVisit(usize),
    SocialCareAssessment(usize),
}

struct Visit {
    date: NaiveDate,
    purpose: Purpose,
    /// Keep the date even at a weekend (the "tomorrow" appointments).
    exact: bool,
}

impl Visit {
    fn on(date: NaiveDate, purpose: Purpose) -> Visit {
        Visit {
            date,
            purpose,
            exact: false,
        }
    }
}

/// An emergency attendance, possibly followed by admission for `stay` nights.
struct Episode {
    arrival: NaiveDateTime,
    kind: Emergency,
    stay: Option<i64>,
}

/// Months of age of the main well-child checks in infancy (a subset of AAP Bright Futures),
/// after which they are yearly.
const WELL_CHILD_MONTHS: &[i64] = &[2, 4, 6, 12, 18, 24, 36];

pub(super) fn write_timeline(rng: &mut SynthRng, story: &Story, transaction: &mut Transaction) {
    let episodes = plan_episodes(rng, story);
    let mut visits = plan_visits(rng, story);
    for episode in &episodes {
        if let Some(discharge) = write_episode(rng, story, transaction, episode) {
            let mut follow_up = add_days(discharge, random::between(rng, 3, 10));
            if follow_up == story.today() {
                follow_up = add_days(follow_up, 1);
            }
            visits.push(Visit::on(follow_up, Purpose::AfterDischarge(episode.kind)));
        }
    }
    visits.sort_by_key(|visit| visit.date);
    // Bloods are due again five months after the last set.
    let mut last_bloods = add_days(story.window_start, -random::between(rng, 0, 150));
    for visit in &visits {
        write_visit(rng, story, transaction, visit, &mut last_bloods);
    }
}

fn plan_visits(rng: &mut SynthRng, story: &Story) -> Vec<Visit> {
    let today = story.today();
    let start = story.window_start;
    let tomorrow = add_days(today, 1);
    let age = story.age_today();
    let birth = story.person().birth_date;
    let mut visits = Vec::new();

    if age < 18 {
        let mut check_ages: Vec<NaiveDate> = WELL_CHILD_MONTHS
            .iter()
            .map(|months| add_days(birth, (*months as f64 * 30.44) as i64))
            .collect();
        check_ages.extend(
            (4..18).map(|years| add_days(birth, years * 365 + random::between(rng, 0, 60))),
        );
        for date in check_ages {
            if date >= start && date < today {
                visits.push(Visit::on(date, Purpose::WellChild));
            } else if date >= today && date < add_days(today, 45) {
                visits.push(Visit::on(date.max(tomorrow), Purpose::WellChild));
            }
        }
    }

    if let Some(first_onset) = story.chronic.iter().map(|condition| condition.onset).min() {
        let interval = match story.chronic.len() {
            1 => 180,
            2 => 150,
            _ => 120,
        };
        let mut date = add_days(start, random::between(rng, 0, interval))
            .max(add_days(first_onset, random::between(rng, 7, 30)));
        while date < today {
            visits.push(Visit::on(date, Purpose::Review));
            date = add_days(date, interval + random::between(rng, -20, 20));
        }
        visits.push(Visit::on(date.max(tomorrow), Purpose::Review));
    } else if age >= 18 {
        let mut year_start = start;
        while year_start < today {
            let year_end = add_days(year_start, 365).min(today);
            if random::chance(rng, 0.85) {
                visits.push(Visit::on(
                    random_day(rng, year_start, year_end),
                    Purpose::Checkup,
                ));
            }
            year_start = year_end;
        }
        if random::chance(rng, 0.15) {
            visits.push(Visit::on(
                add_days(today, random::between(rng, 1, 60)),
                Purpose::Checkup,
            ));
        }
    }

    let yearly_rate = match age {
        ..=4 => 1.0,
        5..=17 => 0.7,
        18..=69 => 0.6,
        _ => 0.9,
    };
    let months = ((today - start).num_days() / 30).max(1) as u32;
    for _ in 0..random::count(rng, months, yearly_rate / 12.0) {
        let illness = MinorIllness::pick(rng, story);
        visits.push(Visit::on(
            random_day(rng, start, today),
            Purpose::MinorIllness(illness),
        ));
    }

    for (specialist, condition) in &story.team.specialists {
        let onset = story.condition(*condition).map_or(start, |c| c.onset);
        let mut date = add_days(start.max(add_days(onset, 30)), random::between(rng, 0, 200));
        while date < today {
            visits.push(Visit::on(date, Purpose::Clinic(*specialist, *condition)));
            date = add_days(date, random::between(rng, 180, 300));
        }
        visits.push(Visit::on(
            date.max(tomorrow),
            Purpose::Clinic(*specialist, *condition),
        ));
    }

    if let Some(nurse) = story.team.district_nurse {
        let mut date = add_days(
            start.max(add_days(today, -180)),
            random::between(rng, 0, 28),
        );
        while date < today {
            visits.push(Visit::on(date, Purpose::HomeVisit(nurse)));
            date = add_days(date, random::between(rng, 21, 35));
        }
        visits.push(Visit::on(date.max(tomorrow), Purpose::HomeVisit(nurse)));
    }
    if let Some(worker) = story.team.social_worker {
        visits.push(Visit::on(
            random_day(rng, start, today),
            Purpose::SocialCareAssessment(worker),
        ));
    }

    // A few patients are booked in for tomorrow, whatever day of the week it is.
    if random::chance(rng, 0.03) {
        let purpose = if !story.chronic.is_empty() {
            Purpose::Review
        } else if age < 18 {
            Purpose::WellChild
        } else {
            Purpose::Checkup
        };
        visits.push(Visit {
            date: tomorrow,
            purpose,
            exact: true,
        });
    }
    visits
}

fn plan_episodes(rng: &mut SynthRng, story: &Story) -> Vec<Episode> {
    let today = story.today();
    let start = story.window_start;
    let age = story.age_today();
    let frail = age >= 70 || story.chronic.len() >= 2;
    let yearly_rate = 0.05
        + 0.03 * story.chronic.len() as f64
        + if age >= 75 { 0.08 } else { 0.0 }
        + if age < 5 { 0.05 } else { 0.0 };
    let months = ((today - start).num_days() / 30).max(1) as u32;
    let mut episodes = Vec::new();
    for _ in 0..random::count(rng, months, yearly_rate / 12.0) {
        let mut day = random_day(rng, start, add_days(today, -1));
        let kind = Emergency::pick(rng, story, day, false);
        let stay = random::chance(rng, kind.admission_chance()).then(|| {
            let (shortest, longest) = kind.stay();
            random::between(rng, shortest, longest)
        });
        if let Some(nights) = stay {
            // Everyone planned in the past has gone home by now.
            if add_days(day, nights) >= today {
                day = add_days(today, -(nights + 1)).max(start);
            }
        }
        episodes.push(Episode {
            arrival: at(
                day,
                random::between(rng, 0, 23) as u32,
                random::between(rng, 0, 59) as u32,
            ),
            kind,
            stay,
        });
    }
    // Some adults, more of them frail, went home from hospital in the last six days.
    let recent_chance = if age < 18 {
        0.0
    } else if frail {
        0.07
    } else {
        0.015
    };
    if random::chance(rng, recent_chance) {
        let discharge = add_days(today, -random::between(rng, 1, 6));
        let kind = Emergency::pick(rng, story, discharge, true);
        let (shortest, longest) = kind.stay();
        let nights = random::between(rng, shortest, longest);
        let day = add_days(discharge, -nights);
        episodes.push(Episode {
            arrival: at(
                day,
                random::between(rng, 0, 23) as u32,
                random::between(rng, 0, 59) as u32,
            ),
            kind,
            stay: Some(nights),
        });
    }
    episodes
}

/// Everything an Encounter needs.
struct EncounterDraft {
    class: Code,
    kind: Code,
    start: NaiveDateTime,
    end: NaiveDateTime,
    performer: Value,
    organization: Value,
    reasons: Vec<Uuid>,
    appointment: Option<Uuid>,
    hospitalization: Option<Value>,
}

fn write_encounter(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    draft: EncounterDraft,
) -> Uuid {
    let id = random::uuid(rng);
    let mut body = json!({
        "status": "finished",
        "class": fhir::coding(draft.class),
        "type": [fhir::concept(draft.kind)],
        "subject": story.subject(),
        "participant": [{
            "type": [fhir::category(codes::PRIMARY_PERFORMER)],
            "individual": draft.performer,
            "period": fhir::period(draft.start, draft.end),
        }],
        "period": fhir::period(draft.start, draft.end),
    });
    if let Some(appointment) = draft.appointment {
        body["appointment"] = json!([fhir::local_reference(appointment)]);
    }
    if !draft.reasons.is_empty() {
        body["reasonReference"] = Value::from(
            draft
                .reasons
                .iter()
                .map(|reason| fhir::local_reference(*reason))
                .collect::<Vec<_>>(),
        );
    }
    if let Some(hospitalization) = draft.hospitalization {
        body["hospitalization"] = hospitalization;
    }
    body["serviceProvider"] = draft.organization;
    transaction.add("Encounter", id, body);
    id
}

/// A completed Procedure performed during an encounter.
fn write_procedure(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    code: Code,
    done: Occasion,
    reason: Option<Uuid>,
) {
    let mut body = json!({
        "status": "completed",
        "code": fhir::concept(code),
        "subject": story.subject(),
        "encounter": fhir::local_reference(done.encounter),
        "performedDateTime": fhir::instant(done.at),
        "performer": [{ "actor": done.by }],
    });
    if let Some(reason) = reason {
        body["reasonReference"] = json!([fhir::local_reference(reason)]);
    }
    transaction.add("Procedure", random::uuid(rng), body);
}

/// Who the visit is with, where, when, and how the appointment is described.
struct Booking {
    clinician: usize,
    organization: usize,
    specialty: Code,
    general_practice: bool,
    appointment_type: Code,
    description: String,
    minutes: i64,
    home: bool,
    start: NaiveDateTime,
    /// When the appointment was made.
    created: NaiveDate,
    /// The chronic conditions the visit is about.
    reasons: Vec<Uuid>,
}

impl Booking {
    fn end(&self) -> NaiveDateTime {
        add_minutes(self.start, self.minutes)
    }
}

/// Who a visit is with and where, by purpose; the time and reasons are filled in later.
fn booking(rng: &mut SynthRng, story: &Story, purpose: Purpose) -> Booking {
    let unscheduled = NaiveDateTime::MIN;
    let care = story.context.care;
    let gp = care.general_practitioner;
    let at_practice =
        |clinician: usize, appointment_type: Code, description: &str, minutes: i64| Booking {
            clinician,
            organization: care.practice,
            specialty: codes::GENERAL_PRACTICE,
            general_practice: true,
            appointment_type,
            description: description.to_owned(),
            minutes,
            home: false,
            start: unscheduled,
            created: unscheduled.date(),
            reasons: Vec::new(),
        };
    match purpose {
        Purpose::Checkup => at_practice(gp, codes::CHECKUP_APPOINTMENT, "Annual health check", 20),
        Purpose::WellChild => {
            let clinician = if random::chance(rng, 0.5) {
                gp
            } else {
                care.practice_nurse
            };
            at_practice(
                clinician,
                codes::CHECKUP_APPOINTMENT,
                "Well child check",
                20,
            )
        }
        Purpose::Review => {
            // Many chronic disease clinics are run by the practice nurse.
            let clinician = if random::chance(rng, 0.3) {
                care.practice_nurse
            } else {
                gp
            };
            let labels: Vec<&str> = story
                .chronic
                .iter()
                .map(|c| c.kind.label())
                .take(3)
                .collect();
            let description = format!("Review of {}", list(&labels));
            at_practice(clinician, codes::FOLLOW_UP_APPOINTMENT, &description, 20)
        }
        Purpose::MinorIllness(illness) => {
            let description = format!("Unwell with {}", illness.complaint());
            at_practice(gp, codes::ROUTINE_APPOINTMENT, &description, 10)
        }
        Purpose::AfterDischarge(kind) => {
            let description = format!("Follow-up after hospital admission with {}", kind.label());
            at_practice(gp, codes::FOLLOW_UP_APPOINTMENT, &description, 20)
        }
        Purpose::Clinic(specialist, condition) => {
            let clinician = story.clinician(specialist);
            Booking {
                clinician: specialist,
                organization: clinician.organization,
                specialty: clinician.role.specialty(),
                general_practice: false,
                appointment_type: codes::FOLLOW_UP_APPOINTMENT,
                description: format!(
                    "{} clinic: {}",
                    clinician.role.specialty().display,
                    condition.label()
                ),
                minutes: 30,
                home: false,
                start: unscheduled,
                created: unscheduled.date(),
                reasons: Vec::new(),
            }
        }
        Purpose::HomeVisit(nurse) => Booking {
            clinician: nurse,
            organization: story.context.directory.nursing_service(),
            specialty: codes::COMMUNITY_MEDICINE,
            general_practice: false,
            appointment_type: codes::ROUTINE_APPOINTMENT,
            description: "District nurse home visit".to_owned(),
            minutes: 30,
            home: true,
            start: unscheduled,
            created: unscheduled.date(),
            reasons: Vec::new(),
        },
        Purpose::SocialCareAssessment(worker) => Booking {
            clinician: worker,
            organization: story.context.directory.nursing_service(),
            specialty: codes::COMMUNITY_MEDICINE,
            general_practice: false,
            appointment_type: codes::ROUTINE_APPOINTMENT,
            description: "Health and social care needs assessment".to_owned(),
            minutes: 60,
            home: true,
            start: unscheduled,
            created: unscheduled.date(),
            reasons: Vec::new(),
        },
    }
}

fn write_appointment(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    booking: &Booking,
    status: &str,
) -> Uuid {
    let id = random::uuid(rng);
    let mut body = json!({ "status": status });
    if status == "cancelled" {
        body["cancelationReason"] = json!({ "text": "Cancelled by patient" });
    }
    if booking.general_practice {
        body["serviceType"] = json!([fhir::concept(codes::GENERAL_PRACTICE_SERVICE)]);
    }
    body["specialty"] = json!([fhir::concept(booking.specialty)]);
    body["appointmentType"] = fhir::concept(booking.appointment_type);
    if !booking.reasons.is_empty() {
        let reasons: Vec<Value> = booking
            .reasons
            .iter()
            .map(|r| fhir::local_reference(*r))
            .collect();
        body["reasonReference"] = Value::from(reasons);
    }
    body["description"] = Value::from(booking.description.clone());
    body["start"] = Value::from(fhir::instant(booking.start));
    body["end"] = Value::from(fhir::instant(booking.end()));
    body["minutesDuration"] = Value::from(booking.minutes);
    body["created"] = Value::from(fhir::date(booking.created));
    let mut patient = story.subject();
    patient["display"] = Value::from(story.person().display_name());
    let clinician = story.clinician(booking.clinician).reference();
    body["participant"] = json!([
        { "actor": patient, "required": "required", "status": "accepted" },
        { "actor": clinician, "required": "required", "status": "accepted" },
    ]);
    transaction.add("Appointment", id, body);
    id
}

/// Books the visit; if it is in the past and the patient came, writes what happened.
fn write_visit(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    visit: &Visit,
    last_bloods: &mut NaiveDate,
) {
    let today = story.today();
    let date = if visit.exact {
        visit.date
    } else {
        weekday_on_same_side(visit.date, today)
    };
    let mut booking = booking(rng, story, visit.purpose);
    booking.start = clinic_time(rng, date);
    booking.created = add_days(date, -random::between(rng, 1, 28)).min(today);
    booking.reasons = match visit.purpose {
        Purpose::Review => story.chronic_on(date).iter().map(|c| c.id).collect(),
        Purpose::Clinic(_, condition) => story
            .condition(condition)
            .map(|c| c.id)
            .into_iter()
            .collect(),
        _ => Vec::new(),
    };

    if date >= today {
        let status = if random::chance(rng, 0.04) {
            "cancelled"
        } else {
            "booked"
        };
        write_appointment(rng, story, transaction, &booking, status);
        return;
    }
    // About one practice appointment in ten is missed; home visits rarely are.
    let status = if booking.home {
        random::weighted(rng, &[("fulfilled", 95), ("cancelled", 5)])
    } else {
        random::weighted(rng, &[("fulfilled", 83), ("noshow", 11), ("cancelled", 6)])
    };
    let appointment = write_appointment(rng, story, transaction, &booking, status);
    if status == "fulfilled" {
        attend(
            rng,
            story,
            transaction,
            visit.purpose,
            &booking,
            appointment,
            last_bloods,
        );
    }
}

/// What was found at a visit, for the procedures and the note.
struct Findings<'a> {
    vitals: Vitals,
    labs: Option<LabResults>,
    /// The chronic conditions known on the day, as words.
    labels: Vec<&'a str>,
    /// The Condition for a minor illness diagnosed at the visit.
    illness: Option<Uuid>,
}

/// A visit that took place: an Encounter with measurements, results, diagnoses, procedures
/// and (often) a note.
fn attend(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    purpose: Purpose,
    booking: &Booking,
    appointment: Uuid,
    last_bloods: &mut NaiveDate,
) {
    let performer = story.clinician(booking.clinician).reference();
    let date = booking.start.date();
    let illness = matches!(purpose, Purpose::MinorIllness(_)).then(|| random::uuid(rng));
    let (class, kind) = match purpose {
        Purpose::Checkup => (codes::AMBULATORY, codes::CHECK_UP),
        Purpose::WellChild => (codes::AMBULATORY, codes::WELL_CHILD_VISIT),
        Purpose::MinorIllness(_) => (codes::AMBULATORY, codes::SYMPTOM_ENCOUNTER),
        Purpose::HomeVisit(_) | Purpose::SocialCareAssessment(_) => {
            (codes::HOME_HEALTH, codes::HOME_VISIT)
        }
        Purpose::Review | Purpose::AfterDischarge(_) | Purpose::Clinic(..) => {
            (codes::AMBULATORY, codes::FOLLOW_UP_ENCOUNTER)
        }
    };
    let encounter = write_encounter(
        rng,
        story,
        transaction,
        EncounterDraft {
            class,
            kind,
            start: booking.start,
            end: booking.end(),
            performer: performer.clone(),
            organization: story
                .context
                .directory
                .organization(booking.organization)
                .reference(),
            reasons: booking.reasons.iter().copied().chain(illness).collect(),
            appointment: Some(appointment),
            hospitalization: None,
        },
    );
    let during = Occasion {
        encounter,
        at: booking.start,
        by: &performer,
    };

    let (vital_set, acuity) = match purpose {
        Purpose::Checkup => (Some(VitalSet::Checkup), Acuity::default()),
        Purpose::WellChild => (Some(VitalSet::Child), Acuity::default()),
        Purpose::MinorIllness(illness) => (
            Some(VitalSet::Unwell),
            Acuity {
                fever: illness.fever() && random::chance(rng, 0.6),
                ..Acuity::default()
            },
        ),
        Purpose::HomeVisit(_) => (Some(VitalSet::Home), Acuity::default()),
        Purpose::SocialCareAssessment(_) => (None, Acuity::default()),
        Purpose::Review | Purpose::AfterDischarge(_) | Purpose::Clinic(..) => {
            (Some(VitalSet::Review), Acuity::default())
        }
    };
    let vitals = match vital_set {
        Some(set) => observations::write_vitals(
            story,
            transaction,
            rng,
            during.minutes_later(5),
            set,
            acuity,
        ),
        None => Vitals::default(),
    };
    let order = lab_order(rng, story, purpose, date, *last_bloods);
    let labs = order.any().then(|| {
        *last_bloods = date;
        observations::write_labs(story, transaction, rng, during.minutes_later(15), order)
    });
    let findings = Findings {
        vitals,
        labs,
        labels: story
            .chronic_on(date)
            .iter()
            .map(|c| c.kind.label())
            .collect(),
        illness,
    };
    let (text, note_chance) = document_visit(rng, story, transaction, purpose, during, &findings);
    if random::chance(rng, note_chance) {
        let written = Occasion {
            at: booking.end(),
            ..during
        };
        notes::write_note(rng, story, transaction, written, &text);
    }
}

const WELL_CHILD_PLAN: &str =
    "Development appropriate for age; immunisations discussed and parent reports no concerns.";
const ANTIBIOTIC_PLAN: &str =
    "Started amoxicillin for 7 days; return if not improving within 48 hours.";
const SELF_CARE_PLAN: &str =
    "Likely self-limiting; advised fluids, rest and simple analgesia, and to return if worse.";
const CLINIC_PLAN: &str =
    "Current treatment continued; next clinic in 6 to 9 months, GP to continue repeat prescribing.";

/// The purpose-specific part of a visit: diagnoses, prescriptions and procedures, and the
/// note text with how likely the clinician is to write it.
fn document_visit(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    purpose: Purpose,
    during: Occasion,
    findings: &Findings,
) -> (String, f64) {
    let date = during.at.date();
    let vitals = &findings.vitals;
    let labs = findings.labs.as_ref();
    let labels = &findings.labels;
    let reason_for = |kind: Chronic| story.condition(kind).map(|c| c.id);
    let procedure =
        |rng: &mut SynthRng, transaction: &mut Transaction, code: Code, reason: Option<Uuid>| {
            write_procedure(
                rng,
                story,
                transaction,
                code,
                during.minutes_later(10),
                reason,
            );
        };
    let known = |fallback: &str| {
        if labels.is_empty() {
            fallback.to_owned()
        } else {
            list(labels)
        }
    };
    match purpose {
        Purpose::Checkup => {
            if random::chance(rng, 0.25) {
                procedure(rng, transaction, codes::DEPRESSION_SCREENING, None);
            }
            let bmi = vitals.bmi.map(|bmi| {
                if bmi >= 30.0 {
                    format!("BMI {bmi:.1}; weight management and physical activity discussed.")
                } else {
                    format!("BMI {bmi:.1}.")
                }
            });
            let text = paragraph(&[
                Some("Annual health check, no new concerns raised.".to_owned()),
                Some(vitals_sentence(vitals)),
                bmi,
                labs_sentence(labs),
            ]);
            (text, 0.4)
        }
        Purpose::WellChild => {
            let growth = match (vitals.weight, vitals.height) {
                (Some(weight), Some(height)) => format!(
                    "Weight {weight:.1} kg and height {height:.1} cm, \
                     growing along expected centiles."
                ),
                _ => "Growing along expected centiles.".to_owned(),
            };
            let text = paragraph(&[
                Some(format!("Well child check at {}.", age_text(story, date))),
                Some(growth),
                Some(WELL_CHILD_PLAN.to_owned()),
            ]);
            (text, 0.3)
        }
        Purpose::Review => {
            let lungs = story.had(Chronic::Copd, date) || story.had(Chronic::Asthma, date);
            if lungs && random::chance(rng, 0.2) {
                let reason = reason_for(Chronic::Copd).or(reason_for(Chronic::Asthma));
                procedure(rng, transaction, codes::SPIROMETRY, reason);
            }
            if story.had(Chronic::AtrialFibrillation, date) && random::chance(rng, 0.25) {
                procedure(
                    rng,
                    transaction,
                    codes::ELECTROCARDIOGRAM,
                    reason_for(Chronic::AtrialFibrillation),
                );
            }
            (review_note(story, labels, vitals, labs, date), 0.7)
        }
        Purpose::MinorIllness(illness) => {
            let id = findings.illness.expect("a minor illness has its Condition");
            conditions::write_acute(
                story,
                transaction,
                id,
                illness.code(),
                during,
                illness.resolves_after_days(),
            );
            let antibiotic = random::chance(rng, illness.antibiotic_chance());
            if antibiotic {
                let prescribed = during.minutes_later(10);
                medications::write_acute_course(
                    rng,
                    story,
                    transaction,
                    &medications::AMOXICILLIN,
                    id,
                    prescribed,
                );
            }
            let plan = if antibiotic {
                ANTIBIOTIC_PLAN
            } else {
                SELF_CARE_PLAN
            };
            let text = paragraph(&[
                Some(format!(
                    "Presented with {} for {} days.",
                    illness.complaint(),
                    random::between(rng, 2, 7)
                )),
                Some(vitals_sentence(vitals)),
                Some(format!(
                    "Impression: {}.",
                    illness.code().display.to_lowercase()
                )),
                Some(plan.to_owned()),
            ]);
            (text, 0.6)
        }
        Purpose::AfterDischarge(kind) => {
            procedure(rng, transaction, codes::MEDICATION_RECONCILIATION, None);
            let history = if labels.is_empty() {
                String::new()
            } else {
                format!("; known {}", list(labels))
            };
            let text = paragraph(&[
                Some(format!(
                    "Seen after recent hospital admission with {}{history}.",
                    kind.label()
                )),
                Some("Medication reconciled against the discharge summary.".to_owned()),
                Some(vitals_sentence(vitals)),
                Some(
                    "Recovering as expected; safety-netting advice given and review in 4 weeks."
                        .to_owned(),
                ),
            ]);
            (text, 1.0)
        }
        Purpose::Clinic(specialist, condition) => {
            let role = story.clinician(specialist).role;
            match role {
                Role::Cardiologist if random::chance(rng, 0.5) => {
                    procedure(
                        rng,
                        transaction,
                        codes::ELECTROCARDIOGRAM,
                        reason_for(condition),
                    );
                }
                Role::ChestPhysician if random::chance(rng, 0.5) => {
                    procedure(rng, transaction, codes::SPIROMETRY, reason_for(condition));
                }
                _ => {}
            }
            let text = paragraph(&[
                Some(format!(
                    "{} clinic review of {}.",
                    role.specialty().display,
                    condition.label()
                )),
                Some(vitals_sentence(vitals)),
                labs_sentence(labs),
                Some(CLINIC_PLAN.to_owned()),
            ]);
            (text, 0.8)
        }
        Purpose::HomeVisit(_) => {
            let text = paragraph(&[
                Some(format!(
                    "District nurse home visit for a housebound patient with {}.",
                    known("frailty")
                )),
                Some(vitals_sentence(vitals)),
                Some("Medication compliance aid checked and skin intact.".to_owned()),
            ]);
            (text, 0.5)
        }
        Purpose::SocialCareAssessment(_) => {
            procedure(rng, transaction, codes::SOCIAL_CARE_ASSESSMENT, None);
            let text = paragraph(&[
                Some("Assessment of health and social care needs at home.".to_owned()),
                Some(format!(
                    "Needs support with daily activities; known {}.",
                    known("frailty")
                )),
                Some(
                    "Family caregiver support, respite options and benefits advice discussed."
                        .to_owned(),
                ),
            ]);
            (text, 1.0)
        }
    }
}

fn review_note(
    story: &Story,
    labels: &[&str],
    vitals: &Vitals,
    labs: Option<&LabResults>,
    date: NaiveDate,
) -> String {
    let conditions = if labels.is_empty() {
        "long-term conditions".to_owned()
    } else {
        list(labels)
    };
    let lapsed = story
        .courses
        .iter()
        .any(|course| course.stop.is_none() && course.overdue_by().is_some_and(|days| days > 0));
    let plan = if lapsed && date > add_days(story.today(), -60) {
        "Repeat prescriptions not collected recently; adherence discussed."
    } else if vitals
        .blood_pressure
        .is_some_and(|(systolic, _)| systolic >= 150)
    {
        "Blood pressure above target; treatment to be optimised and home readings requested."
    } else {
        "Continue current medication and review in 4 to 6 months."
    };
    paragraph(&[
        Some(format!("Routine review of {conditions}.")),
        Some(vitals_sentence(vitals)),
        labs_sentence(labs),
        Some(plan.to_owned()),
    ])
}

fn age_text(story: &Story, date: NaiveDate) -> String {
    let months = ((date - story.person().birth_date).num_days() as f64 / 30.44).round() as i64;
    match months {
        ..=23 => format!("{months} months"),
        _ => format!("{} years", story.age_on(date)),
    }
}

/// Bloods at a visit: reviews check what the conditions need every five months or so, health
/// checks screen adults, and clinics check what their specialty follows.
fn lab_order(
    rng: &mut SynthRng,
    story: &Story,
    purpose: Purpose,
    date: NaiveDate,
    last_bloods: NaiveDate,
) -> LabOrder {
    let due = (date - last_bloods).num_days() >= 150;
    let had = |kind: Chronic| story.had(kind, date);
    let age = story.age_on(date);
    match purpose {
        Purpose::Review if due && age >= 18 => LabOrder {
            hba1c: had(Chronic::Diabetes),
            metabolic_panel: had(Chronic::Diabetes)
                || had(Chronic::KidneyDisease)
                || had(Chronic::Hypertension)
                || had(Chronic::HeartFailure),
            cholesterol: had(Chronic::Hyperlipidemia) || had(Chronic::Diabetes),
        },
        Purpose::Checkup => LabOrder {
            hba1c: age >= 45 && random::chance(rng, 0.3),
            metabolic_panel: age >= 40 && random::chance(rng, 0.5),
            cholesterol: age >= 35 && random::chance(rng, 0.6),
        },
        Purpose::Clinic(_, Chronic::Diabetes) => LabOrder {
            hba1c: true,
            ..LabOrder::default()
        },
        Purpose::Clinic(_, Chronic::KidneyDisease | Chronic::HeartFailure) => LabOrder {
            metabolic_panel: true,
            ..LabOrder::default()
        },
        _ => LabOrder::default(),
    }
}

/// Writes an emergency attendance and any admission; returns the discharge day if admitted.
fn write_episode(
    rng: &mut SynthRng,
    story: &Story,
    transaction: &mut Transaction,
    episode: &Episode,
) -> Option<NaiveDate> {
    let directory = story.context.directory;
    let kind = episode.kind;
    let emergency_department = directory.department(Department::Emergency);
    let physician = directory.pick_at(rng, Role::HospitalPhysician, emergency_department);
    let performer = directory.clinician(physician).reference();
    let arrival = episode.arrival;
    let left = add_minutes(arrival, random::between(rng, 120, 420));
    let diagnosis = kind.code().map(|_| random::uuid(rng));
    // A flare of heart failure is attributed to the known condition rather than a new one.
    let reason = diagnosis.or_else(|| story.condition(Chronic::HeartFailure).map(|c| c.id));
    let encounter = write_encounter(
        rng,
        story,
        transaction,
        EncounterDraft {
            class: codes::EMERGENCY,
            kind: codes::EMERGENCY_ROOM_ADMISSION,
            start: arrival,
            end: left,
            performer: performer.clone(),
            organization: directory.organization(emergency_department).reference(),
            reasons: reason.into_iter().collect(),
            appointment: None,
            hospitalization: None,
        },
    );
    let seen = Occasion {
        encounter,
        at: arrival,
        by: &performer,
    };
    if let (Some(id), Some(code)) = (diagnosis, kind.code()) {
        let resolves = kind.resolves_after_days() + episode.stay.unwrap_or(0);
        conditions::write_acute(story, transaction, id, code, seen, resolves);
    }
    let vitals = observations::write_vitals(
        story,
        transaction,
        rng,
        seen.minutes_later(10),
        VitalSet::Unwell,
        kind.acuity(),
    );
    let age = story.age_on(arrival.date());
    let needs_bloods =
        age >= 18 && (!matches!(kind, Emergency::AnkleSprain | Emergency::HeadInjury) || age >= 65);
    let labs = needs_bloods.then(|| {
        let order = LabOrder {
            metabolic_panel: true,
            ..LabOrder::default()
        };
        observations::write_labs(story, transaction, rng, seen.minutes_later(30), order)
    });
    if matches!(
        kind,
        Emergency::ChestPain | Emergency::HeartFailureExacerbation
    ) {
        write_procedure(
            rng,
            story,
            transaction,
            codes::ELECTROCARDIOGRAM,
            seen.minutes_later(40),
            reason,
        );
    }
    if matches!(
        kind,
        Emergency::Pneumonia | Emergency::CopdExacerbation | Emergency::HeartFailureExacerbation
    ) {
        write_procedure(
            rng,
            story,
            transaction,
            codes::PLAIN_CHEST_X_RAY,
            seen.minutes_later(40),
            reason,
        );
    }

    let Some(nights) = episode.stay else {
        let departure = Occasion { at: left, ..seen };
        if let (Emergency::Pneumonia, Some(id)) = (kind, diagnosis) {
            medications::write_acute_course(
                rng,
                story,
                transaction,
                &medications::AMOXICILLIN,
                id,
                departure,
            );
        }
        let text = paragraph(&[
            Some(format!(
                "Attended the emergency department with {}.",
                kind.label()
            )),
            Some(vitals_sentence(&vitals)),
            labs_sentence(labs.as_ref()),
            Some(
                "Assessed and treated; discharged home with advice and GP follow-up as needed."
                    .to_owned(),
            ),
        ]);
        notes::write_note(rng, story, transaction, departure, &text);
        return None;
    };

    let ward = directory.department(kind.ward());
    let ward_role = match kind.ward() {
        Department::Cardiology => Role::Cardiologist,
        Department::RespiratoryMedicine => Role::ChestPhysician,
        _ => Role::HospitalPhysician,
    };
    let consultant = directory
        .clinician(directory.pick_at(rng, ward_role, ward))
        .reference();
    let discharge_day = add_days(arrival.date(), nights);
    let discharged = at(
        discharge_day,
        random::between(rng, 10, 15) as u32,
        random::between(rng, 0, 59) as u32,
    );
    let admission = write_encounter(
        rng,
        story,
        transaction,
        EncounterDraft {
            class: codes::INPATIENT,
            kind: codes::EMERGENCY_HOSPITAL_ADMISSION,
            start: left,
            end: discharged,
            performer: consultant.clone(),
            organization: directory.organization(ward).reference(),
            reasons: reason.into_iter().collect(),
            appointment: None,
            hospitalization: Some(json!({
                "admitSource": fhir::concept(codes::FROM_EMERGENCY_DEPARTMENT),
                "dischargeDisposition": fhir::concept(codes::DISCHARGED_HOME),
            })),
        },
    );
    let on_ward = Occasion {
        encounter: admission,
        at: discharged,
        by: &consultant,
    };
    if kind == Emergency::HipFracture {
        let operation = Occasion {
            at: at(add_days(arrival.date(), 1), 9, 30),
            ..on_ward
        };
        write_procedure(
            rng,
            story,
            transaction,
            codes::TOTAL_HIP_REPLACEMENT,
            operation,
            reason,
        );
    }
    if let (Emergency::Pneumonia, Some(id)) = (kind, diagnosis) {
        let prescribed = on_ward.minutes_later(-60);
        medications::write_acute_course(
            rng,
            story,
            transaction,
            &medications::AMOXICILLIN,
            id,
            prescribed,
        );
    }
    let discharge_vitals = observations::write_vitals(
        story,
        transaction,
        rng,
        on_ward.minutes_later(-180),
        VitalSet::Unwell,
        Acuity::default(),
    );
    let text = paragraph(&[
        Some(format!(
            "Discharged home after {nights} nights in hospital with {}.",
            kind.label()
        )),
        Some(format!(
            "Observations stable at discharge. {}",
            vitals_sentence(&discharge_vitals)
        )),
        Some("Medicines reviewed on the ward; GP follow-up requested within two weeks.".to_owned()),
    ]);
    notes::write_note(rng, story, transaction, on_ward, &text);
    Some(discharge_day)
}
