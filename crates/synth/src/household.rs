//! One household: who lives there, how they are related, and their patients' records.
//!
//! A household becomes one transaction bundle holding a Group (FHIR R4 group.html: type
//! `person`, `actual`), a Patient per member, RelatedPerson resources for every family tie
//! and emergency contact, and each patient's clinical story. Family ties are written from
//! both sides: when Ana is Tomás's mother, Tomás has a RelatedPerson "mother" describing
//! Ana, and Ana's Patient resource links to it with `link.type = seealso` (FHIR R4
//! patient.html#links: a Patient may link to the RelatedPerson that is the same person), so
//! the console can walk from a child to a parent who is also a patient.

use chrono::{Datelike, NaiveDate};
use serde_json::{json, Value};
use uuid::Uuid;

use crate::clinical::{self, CareAssignment, PatientContext};
use crate::codes::{self, system, Code};
use crate::directory::{Directory, Role};
use crate::fhir::{self, Transaction};
use crate::names::{self, Address, Culture, Sex};
use crate::random::{self, SynthRng};

/// The largest household the generator makes (two parents and three children).
pub(crate) const MAX_MEMBERS: usize = 5;

pub(crate) struct HouseholdInput<'a> {
    /// How many patients earlier households hold; numbers this household's MRNs.
    pub first_patient_ordinal: usize,
    /// Never make more patients than the population still needs.
    pub max_members: usize,
    pub seed: u64,
    pub today: NaiveDate,
    pub directory: &'a Directory,
}

pub(crate) struct Household {
    pub bundle: Value,
    pub patients: usize,
}

/// The kinds of household the generator knows, with rough frequencies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Composition {
    Single,
    Couple,
    CoupleWithChildren,
    SingleParent,
    ElderlyWithCaregiver,
    ElderlyCouple,
}

const COMPOSITIONS: &[(Composition, u32)] = &[
    (Composition::Single, 24),
    (Composition::Couple, 20),
    (Composition::CoupleWithChildren, 24),
    (Composition::SingleParent, 10),
    (Composition::ElderlyWithCaregiver, 10),
    (Composition::ElderlyCouple, 12),
];

/// A member of the household; every member is a patient.
pub(crate) struct Person {
    pub id: Uuid,
    culture: &'static Culture,
    pub mrn: String,
    pub given: Vec<String>,
    pub family: String,
    pub sex: Sex,
    pub birth_date: NaiveDate,
    phone: String,
    email: Option<String>,
    marital_status: Option<Code>,
}

impl Person {
    pub(crate) fn display_name(&self) -> String {
        format!("{} {}", self.given.join(" "), self.family)
    }

    fn human_name(&self) -> Value {
        json!({ "use": "official", "family": self.family, "given": self.given })
    }

    fn telecom(&self) -> Value {
        let mut telecom = vec![json!({ "system": "phone", "value": self.phone, "use": "mobile" })];
        if let Some(email) = &self.email {
            telecom.push(json!({ "system": "email", "value": email, "use": "home" }));
        }
        Value::from(telecom)
    }
}

/// How the members are related, by index into the member list.
#[derive(Default)]
struct Kinship {
    spouses: Vec<(usize, usize)>,
    /// (parent, child)
    parent_of: Vec<(usize, usize)>,
    /// (caregiver, cared-for)
    cares_for: Vec<(usize, usize)>,
}

impl Kinship {
    fn keep_members_below(&mut self, count: usize) {
        let keep = |pair: &(usize, usize)| pair.0 < count && pair.1 < count;
        self.spouses.retain(keep);
        self.parent_of.retain(keep);
        self.cares_for.retain(keep);
    }

    fn spouse_of(&self, member: usize) -> Option<usize> {
        self.spouses.iter().find_map(|&(a, b)| match member {
            m if m == a => Some(b),
            m if m == b => Some(a),
            _ => None,
        })
    }

    fn parents_of(&self, member: usize) -> Vec<usize> {
        self.parent_of
            .iter()
            .filter(|(_, child)| *child == member)
            .map(|(parent, _)| *parent)
            .collect()
    }

    fn caregiver_of(&self, member: usize) -> Option<usize> {
        self.cares_for
            .iter()
            .find(|(_, cared)| *cared == member)
            .map(|(caregiver, _)| *caregiver)
    }

    /// What `other` is to `member`, as v3 RoleCode: spouse, mother, father, child, sibling.
    fn relation(&self, member: usize, other: usize, other_sex: Sex) -> Option<Code> {
        if self.spouse_of(member) == Some(other) {
            return Some(codes::SPOUSE);
        }
        if self.parent_of.contains(&(other, member)) {
            return Some(match other_sex {
                Sex::Female => codes::MOTHER,
                Sex::Male => codes::FATHER,
            });
        }
        if self.parent_of.contains(&(member, other)) {
            return Some(codes::CHILD);
        }
        let shared_parent = self
            .parents_of(member)
            .iter()
            .any(|parent| self.parent_of.contains(&(*parent, other)));
        shared_parent.then_some(codes::SIBLING)
    }
}

/// A member before they get identifiers.
struct Draft {
    sex: Sex,
    age: i64,
    culture: &'static Culture,
    family: String,
}

pub(crate) fn generate(input: &HouseholdInput, rng: &mut SynthRng) -> Household {
    let composition = random::weighted(rng, COMPOSITIONS);
    let (mut drafts, mut kinship) = compose(rng, composition);
    drafts.truncate(input.max_members);
    kinship.keep_members_below(drafts.len());

    let address = names::address(rng);
    let landline = names::phone(rng);
    let mut people: Vec<Person> = Vec::with_capacity(drafts.len());
    for (index, draft) in drafts.iter().enumerate() {
        let ordinal = input.first_patient_ordinal + index;
        let married = kinship.spouse_of(index).is_some();
        let person = make_person(rng, input, draft, ordinal, married, &people, &landline);
        people.push(person);
    }

    let practice = *random::pick(rng, input.directory.practices());
    let pharmacy = *random::pick(rng, input.directory.pharmacies());
    let directory = input.directory;
    let care = CareAssignment {
        practice,
        general_practitioner: directory.pick_at(rng, Role::GeneralPractitioner, practice),
        practice_nurse: directory.pick_at(rng, Role::PracticeNurse, practice),
        care_coordinator: directory.pick_at(rng, Role::CareCoordinator, practice),
        pharmacist: directory.pick_at(rng, Role::Pharmacist, pharmacy),
    };

    let mut transaction = Transaction::new();
    write_group(&mut transaction, rng, &people);
    let ties = plan_ties(rng, &people, &kinship, input.today);
    write_patients(&mut transaction, input, &people, &ties, &address, &care);
    write_related_people(&mut transaction, &people, &ties, &address);

    for (index, person) in people.iter().enumerate() {
        let caregiver = ties
            .iter()
            .find(|tie| tie.patient == index && tie.is_caregiver)
            .map(|tie| tie.id);
        let context = PatientContext {
            person,
            today: input.today,
            directory: input.directory,
            care: &care,
            caregiver,
        };
        clinical::write_story(&context, rng, &mut transaction);
    }

    Household {
        bundle: transaction.into_bundle(),
        patients: people.len(),
    }
}

/// Decides who lives in the household: sexes, ages, surnames and how they are related.
fn compose(rng: &mut SynthRng, composition: Composition) -> (Vec<Draft>, Kinship) {
    let culture = names::culture(rng);
    let mut kinship = Kinship::default();
    let mut drafts = Vec::new();
    let adult = |rng: &mut SynthRng, sex: Sex, age: i64| Draft {
        sex,
        age,
        culture,
        family: names::surname(rng, culture),
    };
    match composition {
        Composition::Single => {
            let age = random::weighted(rng, &[((18, 34), 35), ((35, 64), 40), ((65, 95), 25)]);
            let age = random::between(rng, age.0, age.1);
            let sex = Sex::random(rng);
            drafts.push(adult(rng, sex, age));
        }
        Composition::Couple | Composition::ElderlyCouple => {
            let age = if composition == Composition::Couple {
                random::between(rng, 22, 70)
            } else {
                random::between(rng, 66, 92)
            };
            add_couple(rng, &mut drafts, &mut kinship, culture, age);
        }
        Composition::CoupleWithChildren => {
            let age = random::between(rng, 25, 52);
            add_couple(rng, &mut drafts, &mut kinship, culture, age);
            let children = random::between(rng, 1, 3) as usize;
            add_children(rng, &mut drafts, &mut kinship, &[0, 1], children);
        }
        Composition::SingleParent => {
            let age = random::between(rng, 21, 55);
            let sex = if random::chance(rng, 0.8) {
                Sex::Female
            } else {
                Sex::Male
            };
            drafts.push(adult(rng, sex, age));
            let children = random::between(rng, 1, 3) as usize;
            add_children(rng, &mut drafts, &mut kinship, &[0], children);
        }
        Composition::ElderlyWithCaregiver => {
            let elder_age = random::between(rng, 74, 97);
            let elder_sex = if random::chance(rng, 0.6) {
                Sex::Female
            } else {
                Sex::Male
            };
            drafts.push(adult(rng, elder_sex, elder_age));
            let mut parents = vec![0];
            if random::chance(rng, 0.3) {
                let spouse_age = (elder_age + random::between(rng, -4, 4)).max(70);
                let family = drafts[0].family.clone();
                drafts.push(Draft {
                    sex: elder_sex.opposite(),
                    age: spouse_age,
                    culture,
                    family,
                });
                kinship.spouses.push((0, 1));
                parents.push(1);
            }
            let caregiver = drafts.len();
            let caregiver_age = (elder_age - random::between(rng, 22, 38)).max(36);
            let caregiver_sex = if random::chance(rng, 0.65) {
                Sex::Female
            } else {
                Sex::Male
            };
            let elders: Vec<&Draft> = parents.iter().map(|p| &drafts[*p]).collect();
            let family = child_surname(rng, &elders);
            drafts.push(Draft {
                sex: caregiver_sex,
                age: caregiver_age,
                culture,
                family,
            });
            for parent in parents {
                kinship.parent_of.push((parent, caregiver));
                kinship.cares_for.push((caregiver, parent));
            }
        }
    }
    (drafts, kinship)
}

/// Two partners of similar age, usually of opposite sex; about one in seven couples mixes
/// naming traditions, and about half share a surname.
fn add_couple(
    rng: &mut SynthRng,
    drafts: &mut Vec<Draft>,
    kinship: &mut Kinship,
    culture: &'static Culture,
    age: i64,
) {
    let first_sex = Sex::random(rng);
    let second_sex = if random::chance(rng, 0.92) {
        first_sex.opposite()
    } else {
        first_sex
    };
    let partner_culture = if random::chance(rng, 0.15) {
        names::culture(rng)
    } else {
        culture
    };
    let first_family = names::surname(rng, culture);
    let second_family = if !culture.two_surnames && random::chance(rng, 0.5) {
        first_family.clone()
    } else {
        names::surname(rng, partner_culture)
    };
    let second_age = (age + random::between(rng, -6, 6)).max(19);
    let start = drafts.len();
    drafts.push(Draft {
        sex: first_sex,
        age,
        culture,
        family: first_family,
    });
    drafts.push(Draft {
        sex: second_sex,
        age: second_age,
        culture: partner_culture,
        family: second_family,
    });
    kinship.spouses.push((start, start + 1));
}

/// Children of the given parents, young enough that every parent was an adult at the birth.
fn add_children(
    rng: &mut SynthRng,
    drafts: &mut Vec<Draft>,
    kinship: &mut Kinship,
    parents: &[usize],
    count: usize,
) {
    let youngest_parent = parents.iter().map(|p| drafts[*p].age).min().unwrap_or(18);
    let oldest_child = (youngest_parent - 18).clamp(0, 17);
    let parent_drafts: Vec<&Draft> = parents.iter().map(|p| &drafts[*p]).collect();
    let culture = parent_drafts[0].culture;
    let family = child_surname(rng, &parent_drafts);
    for _ in 0..count {
        let index = drafts.len();
        drafts.push(Draft {
            sex: Sex::random(rng),
            age: random::between(rng, 0, oldest_child),
            culture,
            family: family.clone(),
        });
        for parent in parents {
            kinship.parent_of.push((*parent, index));
        }
    }
}

/// The surname a child takes from the parents who live with them. In the Spanish tradition it
/// is the father's first surname followed by the mother's (an absent parent's is invented);
/// elsewhere usually the father's, sometimes the mother's or both joined.
fn child_surname(rng: &mut SynthRng, parents: &[&Draft]) -> String {
    let culture = parents[0].culture;
    let father = parents.iter().find(|parent| parent.sex == Sex::Male);
    let mother = parents.iter().find(|parent| parent.sex == Sex::Female);
    if culture.two_surnames {
        let father_name = father.map_or_else(|| names::surname(rng, culture), |f| f.family.clone());
        let mother_name = mother.map_or_else(|| names::surname(rng, culture), |m| m.family.clone());
        return names::join_surnames(rng, &father_name, &mother_name);
    }
    match parents {
        [only] if random::chance(rng, 0.8) => only.family.clone(),
        [_] => names::surname(rng, culture),
        [first, second, ..] if first.family == second.family => first.family.clone(),
        [first, second, ..] => {
            let paternal = father.unwrap_or(first).family.clone();
            let maternal = mother.unwrap_or(second).family.clone();
            match random::between(rng, 0, 4) {
                0 => names::join_surnames(rng, &paternal, &maternal),
                1 => maternal,
                _ => paternal,
            }
        }
        [] => unreachable!("a child has at least one parent at home"),
    }
}

fn make_person(
    rng: &mut SynthRng,
    input: &HouseholdInput,
    draft: &Draft,
    ordinal: usize,
    married: bool,
    housemates: &[Person],
    landline: &str,
) -> Person {
    // Avoid two people at home answering to the same first name.
    let mut given = names::given_names(rng, draft.culture, draft.sex);
    for _ in 0..8 {
        if !housemates.iter().any(|other| other.given[0] == given[0]) {
            break;
        }
        given = names::given_names(rng, draft.culture, draft.sex);
    }
    let birth_date = birth_date_for_age(rng, input.today, draft.age);
    let adult = draft.age >= 18;
    let phone = if draft.age >= 13 {
        names::phone(rng)
    } else {
        landline.to_owned()
    };
    let email =
        (adult && random::chance(rng, 0.7)).then(|| names::email(rng, &given[0], &draft.family));
    let marital_status = adult.then(|| {
        if married {
            codes::MARRIED
        } else if draft.age >= 70 {
            if random::chance(rng, 0.7) {
                codes::WIDOWED
            } else {
                codes::DIVORCED
            }
        } else if draft.age < 30 || random::chance(rng, 0.5) {
            codes::NEVER_MARRIED
        } else {
            codes::DIVORCED
        }
    });
    Person {
        id: random::uuid(rng),
        culture: draft.culture,
        mrn: mrn(input.seed, ordinal),
        given,
        family: draft.family.clone(),
        sex: draft.sex,
        birth_date,
        phone,
        email,
        marital_status,
    }
}

/// A birth date that makes the person `age` years old on `today`.
fn birth_date_for_age(rng: &mut SynthRng, today: NaiveDate, age: i64) -> NaiveDate {
    let year = today.year() - age as i32;
    // On 29 February the birthday in a common year falls back to the 28th.
    let birthday_this_year = today
        .with_year(year)
        .or_else(|| NaiveDate::from_ymd_opt(year, 2, 28))
        .expect("a date in a supported year");
    let days_before = random::between(rng, 1, 364) as u64;
    birthday_this_year - chrono::Days::new(days_before)
}

/// "MRN" and seven digits: a bijective scramble of the patient's ordinal (7,368,787 is
/// coprime to 10^7), offset by the seed, so MRNs are unique within a population of up to ten
/// million and look like a hospital's rather than a counter.
fn mrn(seed: u64, ordinal: usize) -> String {
    const SPACE: u64 = 10_000_000;
    let offset = seed.wrapping_mul(0xD6E8_FEB8_6659_FD93) % SPACE;
    let value = (ordinal as u64 % SPACE * 7_368_787 + offset) % SPACE;
    format!("MRN{value:07}")
}

fn write_group(transaction: &mut Transaction, rng: &mut SynthRng, people: &[Person]) {
    let mut families: Vec<&str> = people.iter().map(|person| person.family.as_str()).collect();
    families.dedup();
    let members: Vec<Value> = people
        .iter()
        .map(|person| {
            let mut entity = fhir::local_reference(person.id);
            entity["display"] = Value::from(person.display_name());
            json!({ "entity": entity, "inactive": false })
        })
        .collect();
    transaction.add(
        "Group",
        random::uuid(rng),
        json!({
            "type": "person",
            "actual": true,
            "code": { "text": "Household" },
            "name": format!("Household {}", families.join(" / ")),
            "quantity": people.len(),
            "member": members,
        }),
    );
}

/// Somebody a patient is tied to: another household member or an outside emergency contact.
struct Tie {
    /// The RelatedPerson's own id.
    id: Uuid,
    /// Index of the patient the RelatedPerson is about.
    patient: usize,
    /// Index of the household member who *is* the related person, if any.
    member: Option<usize>,
    relationships: Vec<Code>,
    is_caregiver: bool,
    is_emergency_contact: bool,
    outsider: Option<Outsider>,
}

/// An emergency contact who lives elsewhere and is not a patient here.
struct Outsider {
    given: Vec<String>,
    family: String,
    sex: Sex,
    phone: String,
}

/// Every family tie in both directions, plus one emergency contact per patient: a parent for
/// a child, the spouse, the caregiver for a cared-for elder, else someone outside.
fn plan_ties(
    rng: &mut SynthRng,
    people: &[Person],
    kinship: &Kinship,
    today: NaiveDate,
) -> Vec<Tie> {
    let mut ties = Vec::new();
    for (patient, person) in people.iter().enumerate() {
        let age = years_between(person.birth_date, today);
        let parents = kinship.parents_of(patient);
        let is_minor = age < 18;
        let emergency_contact = if is_minor {
            parents
                .iter()
                .copied()
                .find(|parent| people[*parent].sex == Sex::Female)
                .or_else(|| parents.first().copied())
        } else {
            kinship
                .caregiver_of(patient)
                .or_else(|| kinship.spouse_of(patient))
        };
        for (member, other) in people.iter().enumerate() {
            if member == patient {
                continue;
            }
            let Some(relation) = kinship.relation(patient, member, other.sex) else {
                continue;
            };
            let mut relationships = vec![relation];
            if is_minor && parents.contains(&member) {
                relationships.push(codes::GUARDIAN);
            }
            let is_caregiver = kinship.caregiver_of(patient) == Some(member);
            if is_caregiver {
                relationships.push(codes::CAREGIVER);
            }
            let is_emergency_contact = emergency_contact == Some(member);
            if is_emergency_contact {
                relationships.push(codes::EMERGENCY_CONTACT_ROLE);
            }
            ties.push(Tie {
                id: random::uuid(rng),
                patient,
                member: Some(member),
                relationships,
                is_caregiver,
                is_emergency_contact,
                outsider: None,
            });
        }
        if emergency_contact.is_none() {
            ties.push(outside_contact(rng, patient, person, age));
        }
    }
    ties
}

/// Someone outside the household: a parent for a young adult, a grown-up child for an
/// older one, otherwise a sibling, friend or neighbour.
fn outside_contact(rng: &mut SynthRng, patient: usize, person: &Person, age: i64) -> Tie {
    let sex = Sex::random(rng);
    let parent = match sex {
        Sex::Female => codes::MOTHER,
        Sex::Male => codes::FATHER,
    };
    let relation = match age {
        ..=35 => random::weighted(rng, &[(parent, 5), (codes::SIBLING, 3), (codes::FRIEND, 2)]),
        36..=59 => random::weighted(
            rng,
            &[
                (codes::SIBLING, 4),
                (codes::FRIEND, 3),
                (codes::NEIGHBOR, 1),
            ],
        ),
        _ => random::weighted(
            rng,
            &[
                (codes::CHILD, 5),
                (codes::SIBLING, 2),
                (codes::NEIGHBOR, 2),
                (codes::FRIEND, 1),
            ],
        ),
    };
    let is_family =
        [codes::SIBLING, codes::CHILD, codes::MOTHER, codes::FATHER].contains(&relation);
    let (culture, family) = if is_family {
        (person.culture, person.family.clone())
    } else {
        let culture = names::culture(rng);
        (culture, names::surname(rng, culture))
    };
    Tie {
        id: random::uuid(rng),
        patient,
        member: None,
        relationships: vec![relation, codes::EMERGENCY_CONTACT_ROLE],
        is_caregiver: false,
        is_emergency_contact: true,
        outsider: Some(Outsider {
            given: names::given_names(rng, culture, sex),
            family,
            sex,
            phone: names::phone(rng),
        }),
    }
}

fn years_between(from: NaiveDate, to: NaiveDate) -> i64 {
    let mut years = i64::from(to.year() - from.year());
    if (to.month(), to.day()) < (from.month(), from.day()) {
        years -= 1;
    }
    years
}

fn address_json(address: &Address) -> Value {
    json!({
        "use": "home",
        "type": "both",
        "line": [address.line],
        "city": address.city,
        "postalCode": address.postal_code,
        "country": "US",
    })
}

fn write_patients(
    transaction: &mut Transaction,
    input: &HouseholdInput,
    people: &[Person],
    ties: &[Tie],
    address: &Address,
    care: &CareAssignment,
) {
    let directory = input.directory;
    let practice = directory.organization(care.practice);
    let general_practitioner = directory.clinician(care.general_practitioner);
    for (index, person) in people.iter().enumerate() {
        let mut patient = json!({
            "identifier": [{
                "use": "usual",
                "type": { "coding": [fhir::coding(codes::MEDICAL_RECORD_NUMBER)], "text": "MRN" },
                "system": system::MRN,
                "value": person.mrn,
            }],
            "active": true,
            "name": [person.human_name()],
            "telecom": person.telecom(),
            "gender": person.sex.fhir_gender(),
            "birthDate": fhir::date(person.birth_date),
            "address": [address_json(address)],
        });
        if let Some(status) = person.marital_status {
            patient["maritalStatus"] = fhir::concept(status);
        }
        let contacts: Vec<Value> = ties
            .iter()
            .filter(|tie| tie.patient == index && tie.is_emergency_contact)
            .map(|tie| emergency_contact(tie, people))
            .collect();
        patient["contact"] = Value::from(contacts);
        patient["generalPractitioner"] =
            json!([general_practitioner.reference(), practice.reference()]);
        patient["managingOrganization"] = practice.reference();
        let links: Vec<Value> = ties
            .iter()
            .filter(|tie| tie.member == Some(index))
            .map(|tie| json!({ "other": fhir::local_reference(tie.id), "type": "seealso" }))
            .collect();
        if !links.is_empty() {
            patient["link"] = Value::from(links);
        }
        transaction.add_unless_identified("Patient", person.id, patient, system::MRN, &person.mrn);
    }
}

/// Patient.contact for the emergency contact (v2-0131 `C`) with the family relationship.
fn emergency_contact(tie: &Tie, people: &[Person]) -> Value {
    let mut relationship = vec![fhir::category(codes::EMERGENCY_CONTACT)];
    relationship.push(fhir::category(tie.relationships[0]));
    let (name, telecom, gender) = match (&tie.outsider, tie.member) {
        (Some(outsider), _) => (
            json!({ "family": outsider.family, "given": outsider.given }),
            outsider.phone.clone(),
            outsider.sex,
        ),
        (None, Some(member)) => {
            let person = &people[member];
            (
                json!({ "family": person.family, "given": person.given }),
                person.phone.clone(),
                person.sex,
            )
        }
        (None, None) => unreachable!("a tie is either to a member or to an outsider"),
    };
    json!({
        "relationship": relationship,
        "name": name,
        "telecom": [{ "system": "phone", "value": telecom, "use": "mobile" }],
        "gender": gender.fhir_gender(),
    })
}

fn write_related_people(
    transaction: &mut Transaction,
    people: &[Person],
    ties: &[Tie],
    address: &Address,
) {
    for tie in ties {
        let patient = &people[tie.patient];
        let mut reference = fhir::local_reference(patient.id);
        reference["display"] = Value::from(patient.display_name());
        let relationship: Vec<Value> = tie
            .relationships
            .iter()
            .map(|code| fhir::concept(*code))
            .collect();
        let body = match (&tie.outsider, tie.member) {
            (Some(outsider), _) => json!({
                "active": true,
                "patient": reference,
                "relationship": relationship,
                "name": [{ "use": "official", "family": outsider.family, "given": outsider.given }],
                "telecom": [{ "system": "phone", "value": outsider.phone, "use": "mobile" }],
                "gender": outsider.sex.fhir_gender(),
            }),
            (None, Some(member)) => {
                let person = &people[member];
                json!({
                    "active": true,
                    "patient": reference,
                    "relationship": relationship,
                    "name": [person.human_name()],
                    "telecom": person.telecom(),
                    "gender": person.sex.fhir_gender(),
                    "birthDate": fhir::date(person.birth_date),
                    "address": [address_json(address)],
                })
            }
            (None, None) => unreachable!("a tie is either to a member or to an outsider"),
        };
        transaction.add("RelatedPerson", tie.id, body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mrns_are_seven_digits_and_unique() {
        let mrns: Vec<String> = (0..100_000).map(|ordinal| mrn(3, ordinal)).collect();
        assert!(mrns.iter().all(|m| m.len() == 10 && m.starts_with("MRN")));
        let mut sorted = mrns.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), mrns.len());
    }

    #[test]
    fn birth_dates_give_the_requested_age_even_on_a_leap_day() {
        let mut rng = random::stream(1, 1);
        for today in [
            NaiveDate::from_ymd_opt(2025, 3, 1).unwrap(),
            NaiveDate::from_ymd_opt(2024, 2, 29).unwrap(),
        ] {
            for age in [0, 1, 17, 18, 63, 64, 97] {
                for _ in 0..50 {
                    let birth = birth_date_for_age(&mut rng, today, age);
                    assert_eq!(
                        years_between(birth, today),
                        age,
                        "born {birth}, today {today}"
                    );
                }
            }
        }
    }
}
