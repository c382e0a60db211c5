//! The care directory: organisations and the practitioners who work in them.
//!
//! It is written first, as `organizations.json` and `practitioners.json`, and household
//! bundles reach it only through conditional references on its identifiers (organisation
//! code, NPI), so the importer can resolve them whatever order the files arrive in. Its size
//! grows modestly with the population (about one GP per 1,500 patients, as in UK and US
//! primary care) so that a 100,000-patient demo has a realistic spread of caseloads.

use serde_json::{json, Value};
use uuid::Uuid;

use crate::codes::{self, system, Code};
use crate::fhir::{self, Transaction};
use crate::names::{self, Sex};
use crate::random::{self, SynthRng};

/// What a practitioner does; decides their SNOMED CT occupation and specialty and where they
/// work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    GeneralPractitioner,
    PracticeNurse,
    CareCoordinator,
    Cardiologist,
    Endocrinologist,
    Nephrologist,
    ChestPhysician,
    HospitalPhysician,
    WardNurse,
    DistrictNurse,
    Pharmacist,
    SocialWorker,
}

impl Role {
    const ALL: [Role; 12] = [
        Role::GeneralPractitioner,
        Role::PracticeNurse,
        Role::CareCoordinator,
        Role::Cardiologist,
        Role::Endocrinologist,
        Role::Nephrologist,
        Role::ChestPhysician,
        Role::HospitalPhysician,
        Role::WardNurse,
        Role::DistrictNurse,
        Role::Pharmacist,
        Role::SocialWorker,
    ];

    pub(crate) fn occupation(self) -> Code {
        match self {
            Role::GeneralPractitioner => codes::GENERAL_PRACTITIONER,
            Role::PracticeNurse => codes::PRACTICE_NURSE,
            Role::CareCoordinator => codes::CARE_COORDINATOR,
            Role::Cardiologist => codes::CARDIOLOGIST,
            Role::Endocrinologist => codes::ENDOCRINOLOGIST,
            Role::Nephrologist => codes::NEPHROLOGIST,
            Role::ChestPhysician => codes::CHEST_PHYSICIAN,
            Role::HospitalPhysician => codes::PHYSICIAN,
            Role::WardNurse => codes::REGISTERED_NURSE,
            Role::DistrictNurse => codes::DISTRICT_NURSE,
            Role::Pharmacist => codes::PHARMACIST,
            Role::SocialWorker => codes::SOCIAL_WORKER,
        }
    }

    pub(crate) fn specialty(self) -> Code {
        match self {
            Role::GeneralPractitioner | Role::PracticeNurse | Role::CareCoordinator => {
                codes::GENERAL_PRACTICE
            }
            Role::Cardiologist => codes::CARDIOLOGY,
            Role::Endocrinologist => codes::ENDOCRINOLOGY,
            Role::Nephrologist => codes::NEPHROLOGY,
            Role::ChestPhysician => codes::PULMONARY_MEDICINE,
            Role::HospitalPhysician | Role::WardNurse => codes::GENERAL_MEDICINE,
            Role::DistrictNurse | Role::SocialWorker => codes::COMMUNITY_MEDICINE,
            Role::Pharmacist => codes::CLINICAL_PHARMACOLOGY,
        }
    }

    fn is_doctor(self) -> bool {
        matches!(
            self,
            Role::GeneralPractitioner
                | Role::Cardiologist
                | Role::Endocrinologist
                | Role::Nephrologist
                | Role::ChestPhysician
                | Role::HospitalPhysician
        )
    }

    fn index(self) -> usize {
        self as usize
    }

    /// How many people in this role a population of `patients` needs.
    fn headcount(self, patients: usize) -> usize {
        let per =
            |patients_each: usize, minimum: usize| patients.div_ceil(patients_each).max(minimum);
        match self {
            Role::GeneralPractitioner => per(1_500, 4),
            Role::PracticeNurse => per(3_000, 3),
            Role::CareCoordinator => per(5_000, 2),
            Role::Cardiologist
            | Role::Endocrinologist
            | Role::Nephrologist
            | Role::ChestPhysician => per(25_000, 1),
            Role::HospitalPhysician => per(8_000, 3),
            Role::WardNurse => per(10_000, 2),
            Role::DistrictNurse => per(5_000, 2),
            Role::Pharmacist => per(5_000, 1),
            Role::SocialWorker => per(10_000, 1),
        }
    }
}

/// The hospital's departments, each an Organization that is `partOf` the hospital.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Department {
    Emergency,
    Cardiology,
    Endocrinology,
    Nephrology,
    RespiratoryMedicine,
    GeneralMedicine,
}

impl Department {
    const ALL: [Department; 6] = [
        Department::Emergency,
        Department::Cardiology,
        Department::Endocrinology,
        Department::Nephrology,
        Department::RespiratoryMedicine,
        Department::GeneralMedicine,
    ];

    fn name(self) -> &'static str {
        match self {
            Department::Emergency => "Emergency Department",
            Department::Cardiology => "Cardiology",
            Department::Endocrinology => "Endocrinology and Diabetes",
            Department::Nephrology => "Renal Medicine",
            Department::RespiratoryMedicine => "Respiratory Medicine",
            Department::GeneralMedicine => "General Medicine",
        }
    }

    /// The department a hospital role works in.
    pub(crate) fn of(role: Role) -> Option<Department> {
        match role {
            Role::Cardiologist => Some(Department::Cardiology),
            Role::Endocrinologist => Some(Department::Endocrinology),
            Role::Nephrologist => Some(Department::Nephrology),
            Role::ChestPhysician => Some(Department::RespiratoryMedicine),
            Role::HospitalPhysician | Role::WardNurse => Some(Department::GeneralMedicine),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OrganizationKind {
    Practice,
    Hospital,
    Department(Department),
    Pharmacy,
    CommunityNursing,
}

#[derive(Debug)]
pub(crate) struct Organization {
    pub id: Uuid,
    pub identifier: String,
    pub name: String,
    pub kind: OrganizationKind,
    part_of: Option<usize>,
    phone: String,
    address: names::Address,
}

impl Organization {
    /// The conditional reference household bundles use.
    pub(crate) fn reference(&self) -> Value {
        fhir::conditional_reference(
            "Organization",
            system::ORGANIZATION_ID,
            &self.identifier,
            &self.name,
        )
    }
}

#[derive(Debug)]
pub(crate) struct Clinician {
    pub id: Uuid,
    role_id: Uuid,
    pub npi: String,
    role_identifier: String,
    given: Vec<String>,
    family: String,
    sex: Sex,
    pub role: Role,
    pub organization: usize,
    phone: String,
}

impl Clinician {
    pub(crate) fn display_name(&self) -> String {
        let name = format!("{} {}", self.given.join(" "), self.family);
        if self.role.is_doctor() {
            format!("Dr {name}")
        } else {
            name
        }
    }

    /// The conditional reference household bundles use.
    pub(crate) fn reference(&self) -> Value {
        fhir::conditional_reference("Practitioner", system::NPI, &self.npi, &self.display_name())
    }
}

/// The whole directory, kept in memory while households are generated (it is small: a
/// 100,000-patient population has about 200 practitioners).
#[derive(Debug)]
pub(crate) struct Directory {
    organizations: Vec<Organization>,
    clinicians: Vec<Clinician>,
    practices: Vec<usize>,
    pharmacies: Vec<usize>,
    nursing_service: usize,
    departments: Vec<usize>,
    by_role: Vec<Vec<usize>>,
}

const PRACTICE_NAMES: &[&str] = &[
    "Riverside Family Practice",
    "Oakfield Medical Centre",
    "Harbour Lane Surgery",
    "Meadowbrook Health Centre",
    "Kingsgate Family Medicine",
    "Willow Park Practice",
    "Elmstead Primary Care",
    "Northgate Medical Group",
];
const PHARMACY_NAMES: &[&str] = &[
    "Greenleaf Pharmacy",
    "Corner Street Pharmacy",
    "Bridgeview Chemist",
];
const HOSPITAL_NAME: &str = "Harbourview General Hospital";
const NURSING_SERVICE_NAME: &str = "Harbourview Community Nursing Service";

impl Directory {
    pub(crate) fn generate(patients: usize, seed: u64) -> Directory {
        let mut rng = random::stream(seed, 0);
        let mut directory = Directory {
            organizations: Vec::new(),
            clinicians: Vec::new(),
            practices: Vec::new(),
            pharmacies: Vec::new(),
            nursing_service: 0,
            departments: Vec::new(),
            by_role: vec![Vec::new(); Role::ALL.len()],
        };

        let general_practitioners = Role::GeneralPractitioner.headcount(patients);
        // About four GPs to a practice, and at least three practices so patients are spread.
        let practice_count = general_practitioners.div_ceil(4).max(3);
        for number in 0..practice_count {
            let name = numbered_name(PRACTICE_NAMES, number, "Family Practice");
            let index =
                directory.add_organization(&mut rng, name, OrganizationKind::Practice, None);
            directory.practices.push(index);
        }
        let hospital = directory.add_organization(
            &mut rng,
            HOSPITAL_NAME.to_owned(),
            OrganizationKind::Hospital,
            None,
        );
        for department in Department::ALL {
            let index = directory.add_organization(
                &mut rng,
                format!("{HOSPITAL_NAME} - {}", department.name()),
                OrganizationKind::Department(department),
                Some(hospital),
            );
            directory.departments.push(index);
        }
        let pharmacy_count = Role::Pharmacist.headcount(patients);
        for number in 0..pharmacy_count {
            let name = numbered_name(PHARMACY_NAMES, number, "Pharmacy");
            let index =
                directory.add_organization(&mut rng, name, OrganizationKind::Pharmacy, None);
            directory.pharmacies.push(index);
        }
        directory.nursing_service = directory.add_organization(
            &mut rng,
            NURSING_SERVICE_NAME.to_owned(),
            OrganizationKind::CommunityNursing,
            None,
        );

        for role in Role::ALL {
            for number in 0..role.headcount(patients) {
                let organization = directory.workplace(role, number);
                directory.add_clinician(&mut rng, seed, role, organization);
            }
        }
        directory
    }

    /// Where the `number`th person in `role` works: practice and pharmacy staff are spread
    /// round-robin, hospital staff sit in their department.
    fn workplace(&self, role: Role, number: usize) -> usize {
        match role {
            Role::GeneralPractitioner | Role::PracticeNurse | Role::CareCoordinator => {
                self.practices[number % self.practices.len()]
            }
            Role::Pharmacist => self.pharmacies[number % self.pharmacies.len()],
            Role::DistrictNurse | Role::SocialWorker => self.nursing_service,
            // Hospital physicians alternate between the emergency department and the wards.
            Role::HospitalPhysician => {
                self.department([Department::Emergency, Department::GeneralMedicine][number % 2])
            }
            hospital_role => self.department(
                Department::of(hospital_role).expect("every other role works in a department"),
            ),
        }
    }

    fn add_organization(
        &mut self,
        rng: &mut SynthRng,
        name: String,
        kind: OrganizationKind,
        part_of: Option<usize>,
    ) -> usize {
        let index = self.organizations.len();
        self.organizations.push(Organization {
            id: random::uuid(rng),
            identifier: format!("ORG{:03}", index + 1),
            name,
            kind,
            part_of,
            phone: names::phone(rng),
            address: names::address(rng),
        });
        index
    }

    fn add_clinician(&mut self, rng: &mut SynthRng, seed: u64, role: Role, organization: usize) {
        let ordinal = self.clinicians.len();
        let culture = names::culture(rng);
        let sex = Sex::random(rng);
        let clinician = Clinician {
            id: random::uuid(rng),
            role_id: random::uuid(rng),
            npi: npi(seed, ordinal),
            role_identifier: format!("PR{:05}", ordinal + 1),
            given: names::given_names(rng, culture, sex),
            family: names::surname(rng, culture),
            sex,
            role,
            organization,
            phone: names::phone(rng),
        };
        self.by_role[role.index()].push(ordinal);
        self.clinicians.push(clinician);
    }

    pub(crate) fn organization(&self, index: usize) -> &Organization {
        &self.organizations[index]
    }

    pub(crate) fn department(&self, department: Department) -> usize {
        let position = Department::ALL
            .iter()
            .position(|candidate| *candidate == department)
            .expect("every department is listed");
        self.departments[position]
    }

    pub(crate) fn practices(&self) -> &[usize] {
        &self.practices
    }

    pub(crate) fn pharmacies(&self) -> &[usize] {
        &self.pharmacies
    }

    pub(crate) fn nursing_service(&self) -> usize {
        self.nursing_service
    }

    pub(crate) fn clinician(&self, index: usize) -> &Clinician {
        &self.clinicians[index]
    }

    /// Anyone in `role`.
    pub(crate) fn pick(&self, rng: &mut SynthRng, role: Role) -> usize {
        *random::pick(rng, &self.by_role[role.index()])
    }

    /// Someone in `role` who works at `organization`, or anyone in that role if nobody does.
    pub(crate) fn pick_at(&self, rng: &mut SynthRng, role: Role, organization: usize) -> usize {
        let local: Vec<usize> = self.by_role[role.index()]
            .iter()
            .copied()
            .filter(|index| self.clinicians[*index].organization == organization)
            .collect();
        if local.is_empty() {
            self.pick(rng, role)
        } else {
            *random::pick(rng, &local)
        }
    }

    /// `organizations.json`: the hospital's departments point at the hospital by `urn:uuid`,
    /// which resolves inside this transaction.
    pub(crate) fn organizations_bundle(&self) -> Value {
        let mut transaction = Transaction::new();
        for organization in &self.organizations {
            let kind = match organization.kind {
                OrganizationKind::Department(_) => codes::ORG_DEPARTMENT,
                _ => codes::ORG_PROVIDER,
            };
            let mut body = json!({
                "identifier": [{
                    "system": system::ORGANIZATION_ID,
                    "value": organization.identifier,
                }],
                "active": true,
                "type": [fhir::concept(kind)],
                "name": organization.name,
                "telecom": [{ "system": "phone", "value": organization.phone, "use": "work" }],
                "address": [{
                    "use": "work",
                    "type": "physical",
                    "line": [organization.address.line],
                    "city": organization.address.city,
                    "postalCode": organization.address.postal_code,
                    "country": "US",
                }],
            });
            if let Some(parent) = organization.part_of {
                let parent = &self.organizations[parent];
                let mut reference = fhir::local_reference(parent.id);
                reference["display"] = Value::from(parent.name.clone());
                body["partOf"] = reference;
            }
            transaction.add_unless_identified(
                "Organization",
                organization.id,
                body,
                system::ORGANIZATION_ID,
                &organization.identifier,
            );
        }
        transaction.into_bundle()
    }

    /// `practitioners.json`: each Practitioner followed by its PractitionerRole, which points
    /// at the Practitioner by `urn:uuid` and at its organisation by conditional reference
    /// (that lives in the other file).
    pub(crate) fn practitioners_bundle(&self) -> Value {
        let mut transaction = Transaction::new();
        for clinician in &self.clinicians {
            let mut name = json!({
                "use": "official",
                "family": clinician.family,
                "given": clinician.given,
            });
            if clinician.role.is_doctor() {
                name["prefix"] = json!(["Dr"]);
            }
            let telecom = json!([{ "system": "phone", "value": clinician.phone, "use": "work" }]);
            transaction.add_unless_identified(
                "Practitioner",
                clinician.id,
                json!({
                    "identifier": [{ "system": system::NPI, "value": clinician.npi }],
                    "active": true,
                    "name": [name],
                    "telecom": telecom,
                    "gender": clinician.sex.fhir_gender(),
                }),
                system::NPI,
                &clinician.npi,
            );
            let mut practitioner = fhir::local_reference(clinician.id);
            practitioner["display"] = Value::from(clinician.display_name());
            transaction.add_unless_identified(
                "PractitionerRole",
                clinician.role_id,
                json!({
                    "identifier": [{
                        "system": system::PRACTITIONER_ROLE_ID,
                        "value": clinician.role_identifier,
                    }],
                    "active": true,
                    "practitioner": practitioner,
                    "organization": self.organizations[clinician.organization].reference(),
                    "code": [fhir::concept(clinician.role.occupation())],
                    "specialty": [fhir::concept(clinician.role.specialty())],
                    "telecom": telecom,
                }),
                system::PRACTITIONER_ROLE_ID,
                &clinician.role_identifier,
            );
        }
        transaction.into_bundle()
    }
}

/// The `number`th name from a list, or a numbered variant once the list runs out.
fn numbered_name(names: &[&str], number: usize, suffix: &str) -> String {
    match names.get(number) {
        Some(name) => (*name).to_owned(),
        None => {
            let (town, _) = names::TOWNS[number % names::TOWNS.len()];
            format!("{town} {suffix} {}", number / names::TOWNS.len() + 1)
        }
    }
}

/// A 10-digit NPI with a valid check digit (Luhn over the "80840" prefix plus the first nine
/// digits, as CMS specifies) that is still certainly fictional: real NPIs start with 1 or 2,
/// these start with 9. The body is a bijective scramble of the ordinal, so NPIs are unique
/// for up to 10^8 practitioners and vary with the seed.
fn npi(seed: u64, ordinal: usize) -> String {
    const SPACE: u64 = 100_000_000;
    let offset = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) % SPACE;
    // 104,729 is prime and so coprime to 10^8: multiplying by it permutes 0..10^8.
    let body = (ordinal as u64 % SPACE * 104_729 + offset) % SPACE;
    let first_nine = format!("9{body:08}");
    let check = luhn_check_digit(&format!("80840{first_nine}"));
    format!("{first_nine}{check}")
}

fn luhn_check_digit(payload: &str) -> u32 {
    let sum: u32 = payload
        .chars()
        .rev()
        .enumerate()
        .map(|(position, character)| {
            let digit = character.to_digit(10).expect("payload is all digits");
            if position % 2 == 0 {
                let doubled = digit * 2;
                if doubled > 9 {
                    doubled - 9
                } else {
                    doubled
                }
            } else {
                digit
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cms_example_npi_has_the_expected_check_digit() {
        // CMS's published example: 123456789 gets check digit 3.
        assert_eq!(luhn_check_digit("80840123456789"), 3);
    }

    #[test]
    fn npis_are_ten_digits_start_with_nine_and_are_unique() {
        let npis: Vec<String> = (0..1000).map(|ordinal| npi(42, ordinal)).collect();
        for value in &npis {
            assert_eq!(value.len(), 10);
            assert!(value.starts_with('9'));
            let check = luhn_check_digit(&format!("80840{}", &value[..9]));
            assert_eq!(value[9..], check.to_string());
        }
        let mut sorted = npis.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), npis.len());
    }

    #[test]
    fn the_directory_grows_with_the_population() {
        let small = Directory::generate(200, 1);
        let large = Directory::generate(100_000, 1);
        assert_eq!(small.by_role[Role::GeneralPractitioner.index()].len(), 4);
        assert_eq!(large.by_role[Role::GeneralPractitioner.index()].len(), 67);
        assert!(large.practices.len() > small.practices.len());
    }
}
