//! The clinical story of one patient, written into the household's transaction.
//!
//! A story is planned before it is written: first the body (height, BMI, latent tendencies
//! such as glycaemic control), then chronic conditions that fit the age, sex and body, then
//! medication courses for them, then who looks after the patient (specialists, district
//! nurse, social worker), and only then the timeline of visits, hospital episodes and
//! immunisations, each visit producing its own vitals, labs, notes and procedures. Planning
//! first keeps the parts coherent: a diabetic's HbA1c is high because the latent control
//! says so, a hypertensive's blood pressure falls once the lisinopril starts, and an
//! appointment with the nephrologist exists because the CKD is severe enough.
//!
//! The story covers the two years before `today` ([`HISTORY_DAYS`]) plus a few weeks ahead
//! (booked appointments). Children's immunisations go back to birth.

mod conditions;
mod encounters;
mod immunizations;
mod medications;
mod notes;
mod observations;

use chrono::{Datelike, Days, NaiveDate, NaiveDateTime, NaiveTime, Weekday};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::codes::{self, Code};
use crate::directory::{Clinician, Directory, Role};
use crate::fhir::{self, Transaction};
use crate::household::Person;
use crate::random::{self, SynthRng};

use conditions::{Chronic, ChronicCondition};
use medications::Course;
use observations::Physiology;

/// How far back a story goes. Two years gives every chronic patient several reviews and a
/// trend in their results while keeping an adult at roughly 50–150 resources.
const HISTORY_DAYS: u64 = 730;

/// Who looks after a household: its practice and GP, the practice's nurse and care
/// coordinator, and the pharmacy the family uses (indices into the directory).
pub(crate) struct CareAssignment {
    pub practice: usize,
    pub general_practitioner: usize,
    pub practice_nurse: usize,
    pub care_coordinator: usize,
    pub pharmacist: usize,
}

/// Everything the household knows that a patient's story needs.
pub(crate) struct PatientContext<'a> {
    pub person: &'a Person,
    pub today: NaiveDate,
    pub directory: &'a Directory,
    pub care: &'a CareAssignment,
    /// The RelatedPerson (in this bundle) of the family member who cares for this patient.
    pub caregiver: Option<Uuid>,
}

/// The planned facts of a story that every part of the writing consults.
struct Story<'a> {
    context: &'a PatientContext<'a>,
    window_start: NaiveDate,
    body: Physiology,
    chronic: Vec<ChronicCondition>,
    courses: Vec<Course>,
    team: CareTeamPlan,
}

/// When, in which encounter and by whom something was recorded: the context shared by
/// observations, diagnoses, procedures and notes made at one visit.
#[derive(Clone, Copy)]
struct Occasion<'a> {
    encounter: Uuid,
    at: NaiveDateTime,
    /// The performer, author or recorder (a conditional reference).
    by: &'a Value,
}

impl Occasion<'_> {
    fn minutes_later(self, minutes: i64) -> Self {
        Occasion {
            at: add_minutes(self.at, minutes),
            ..self
        }
    }
}

/// Extra people involved in a patient's care beyond the practice team.
#[derive(Default)]
struct CareTeamPlan {
    /// Hospital specialists, each with the condition they follow.
    specialists: Vec<(usize, Chronic)>,
    /// A district nurse who visits a housebound patient at home.
    district_nurse: Option<usize>,
    social_worker: Option<usize>,
}

impl Story<'_> {
    fn today(&self) -> NaiveDate {
        self.context.today
    }

    fn person(&self) -> &Person {
        self.context.person
    }

    fn subject(&self) -> Value {
        fhir::local_reference(self.person().id)
    }

    fn clinician(&self, index: usize) -> &Clinician {
        self.context.directory.clinician(index)
    }

    fn general_practitioner(&self) -> usize {
        self.context.care.general_practitioner
    }

    /// Age in whole years on `date`.
    fn age_on(&self, date: NaiveDate) -> i64 {
        let birth = self.person().birth_date;
        let mut years = i64::from(date.year() - birth.year());
        if (date.month(), date.day()) < (birth.month(), birth.day()) {
            years -= 1;
        }
        years
    }

    /// Age in fractional years on `date`, for growth curves.
    fn exact_age_on(&self, date: NaiveDate) -> f64 {
        (date - self.person().birth_date).num_days() as f64 / 365.25
    }

    fn age_today(&self) -> i64 {
        self.age_on(self.today())
    }

    fn condition(&self, kind: Chronic) -> Option<&ChronicCondition> {
        self.chronic.iter().find(|condition| condition.kind == kind)
    }

    /// Whether the patient had this chronic condition on `date`.
    fn had(&self, kind: Chronic, date: NaiveDate) -> bool {
        self.condition(kind)
            .is_some_and(|condition| condition.onset <= date)
    }

    fn chronic_on(&self, date: NaiveDate) -> Vec<&ChronicCondition> {
        self.chronic
            .iter()
            .filter(|condition| condition.onset <= date)
            .collect()
    }

    /// Whether a course of this drug was running on `date`.
    fn taking(&self, drug: Code, date: NaiveDate) -> bool {
        self.courses.iter().any(|course| {
            course.drug.code == drug
                && course.start <= date
                && course.stop.is_none_or(|stop| date < stop)
        })
    }

    /// Whether any medication for the condition was running on `date`.
    fn treated(&self, kind: Chronic, date: NaiveDate) -> bool {
        let Some(condition) = self.condition(kind) else {
            return false;
        };
        self.courses.iter().any(|course| {
            course.reason == condition.id
                && course.start <= date
                && course.stop.is_none_or(|stop| date < stop)
        })
    }
}

pub(crate) fn write_story(
    context: &PatientContext,
    rng: &mut SynthRng,
    transaction: &mut Transaction,
) {
    let today = context.today;
    let window_start = context
        .person
        .birth_date
        .max(today - Days::new(HISTORY_DAYS));
    let body = Physiology::sample(rng);
    let mut story = Story {
        context,
        window_start,
        body,
        chronic: Vec::new(),
        courses: Vec::new(),
        team: CareTeamPlan::default(),
    };
    story.chronic = conditions::plan(rng, &story);
    story.courses = medications::plan(rng, &story);
    story.team = plan_team(rng, &story);

    conditions::write_chronic(&story, transaction);
    medications::write_courses(rng, &story, transaction);
    encounters::write_timeline(rng, &story, transaction);
    immunizations::write(rng, &story, transaction);
    write_care_team(rng, &story, transaction);
}

/// Decides which specialists, community nurses and social workers are involved, from how
/// severe the chronic conditions are and how frail the patient is.
fn plan_team(rng: &mut SynthRng, story: &Story) -> CareTeamPlan {
    let directory = story.context.directory;
    let mut plan = CareTeamPlan::default();
    let today = story.today();
    let mut refer = |rng: &mut SynthRng, role: Role, kind: Chronic| {
        plan.specialists.push((directory.pick(rng, role), kind));
    };
    if story.had(Chronic::Diabetes, today)
        && (story.body.glycaemic_control > 0.65 || random::chance(rng, 0.15))
    {
        refer(rng, Role::Endocrinologist, Chronic::Diabetes);
    }
    if story.had(Chronic::KidneyDisease, today) && story.body.kidney_damage > 0.45 {
        refer(rng, Role::Nephrologist, Chronic::KidneyDisease);
    }
    if story.had(Chronic::HeartFailure, today) {
        refer(rng, Role::Cardiologist, Chronic::HeartFailure);
    } else if story.had(Chronic::AtrialFibrillation, today) && random::chance(rng, 0.7) {
        refer(rng, Role::Cardiologist, Chronic::AtrialFibrillation);
    }
    if story.had(Chronic::Copd, today) && random::chance(rng, 0.5) {
        refer(rng, Role::ChestPhysician, Chronic::Copd);
    }

    let age = story.age_today();
    let multimorbid = story.chronic.len() >= 2;
    let housebound = age >= 80 && multimorbid && random::chance(rng, 0.5)
        || story.context.caregiver.is_some() && random::chance(rng, 0.5);
    if housebound {
        plan.district_nurse = Some(directory.pick(rng, Role::DistrictNurse));
    }
    if story.context.caregiver.is_some() || housebound && random::chance(rng, 0.5) {
        plan.social_worker = Some(directory.pick(rng, Role::SocialWorker));
    }
    plan
}

/// One longitudinal CareTeam per patient (FHIR R4 careteam.html): the GP always; the practice
/// nurse and care coordinator for chronic or frail patients; specialists, district nurse,
/// social worker and pharmacist when involved; and the family caregiver as a RelatedPerson.
fn write_care_team(rng: &mut SynthRng, story: &Story, transaction: &mut Transaction) {
    let care = story.context.care;
    let age = story.age_today();
    let mut members: Vec<(Code, Value)> = Vec::new();
    let mut add = |index: usize| {
        let clinician = story.clinician(index);
        members.push((clinician.role.occupation(), clinician.reference()));
    };
    add(care.general_practitioner);
    if !story.chronic.is_empty() {
        add(care.practice_nurse);
    }
    if story.chronic.len() >= 2 || age >= 75 || story.context.caregiver.is_some() {
        add(care.care_coordinator);
    }
    for (specialist, _) in &story.team.specialists {
        add(*specialist);
    }
    if let Some(nurse) = story.team.district_nurse {
        add(nurse);
    }
    if let Some(worker) = story.team.social_worker {
        add(worker);
    }
    let active_courses = story
        .courses
        .iter()
        .filter(|course| course.stop.is_none())
        .count();
    if active_courses >= 4 {
        add(care.pharmacist);
    }
    if let Some(caregiver) = story.context.caregiver {
        members.push((codes::CAREGIVER, fhir::local_reference(caregiver)));
    }

    let participants: Vec<Value> = members
        .into_iter()
        .map(|(role, member)| json!({ "role": [fhir::concept(role)], "member": member }))
        .collect();
    let start = story
        .chronic
        .iter()
        .map(|condition| condition.onset)
        .min()
        .unwrap_or(story.window_start);
    let reasons: Vec<Value> = story
        .chronic
        .iter()
        .map(|condition| fhir::local_reference(condition.id))
        .collect();
    let practice = story.context.directory.organization(care.practice);
    let mut body = json!({
        "status": "active",
        "category": [fhir::category(codes::LONGITUDINAL_CARE_TEAM)],
        "name": format!("Care team for {}", story.person().display_name()),
        "subject": story.subject(),
        "period": { "start": fhir::date(start) },
        "participant": participants,
        "managingOrganization": [practice.reference()],
    });
    if !reasons.is_empty() {
        body["reasonReference"] = Value::from(reasons);
    }
    transaction.add("CareTeam", random::uuid(rng), body);
}

// --- Time helpers shared by the story writers.

fn at(date: NaiveDate, hour: u32, minute: u32) -> NaiveDateTime {
    date.and_time(NaiveTime::from_hms_opt(hour, minute, 0).expect("valid clock time"))
}

/// A quarter-hour slot in surgery hours.
fn clinic_time(rng: &mut SynthRng, date: NaiveDate) -> NaiveDateTime {
    let slot = random::between(rng, 0, 35) as u32;
    at(date, 8 + slot / 4, (slot % 4) * 15)
}

fn add_days(date: NaiveDate, days: i64) -> NaiveDate {
    if days >= 0 {
        date + Days::new(days as u64)
    } else {
        date - Days::new(days.unsigned_abs())
    }
}

fn add_minutes(moment: NaiveDateTime, minutes: i64) -> NaiveDateTime {
    moment + chrono::TimeDelta::minutes(minutes)
}

/// A day in `from..until` (or `from` if the range is empty).
fn random_day(rng: &mut SynthRng, from: NaiveDate, until: NaiveDate) -> NaiveDate {
    let span = (until - from).num_days();
    if span <= 1 {
        return from;
    }
    add_days(from, random::between(rng, 0, span - 1))
}

/// Moves a weekend day to a weekday on the same side of `today`, since practices are closed
/// at weekends: past visits move back to Friday, future ones forward to Monday.
fn weekday_on_same_side(date: NaiveDate, today: NaiveDate) -> NaiveDate {
    let shift = match date.weekday() {
        Weekday::Sat if date < today => -1,
        Weekday::Sun if date < today => -2,
        Weekday::Sat => 2,
        Weekday::Sun => 1,
        _ => 0,
    };
    add_days(date, shift)
}
