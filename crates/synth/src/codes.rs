//! Every code the generator writes, as a named constant with its display text.
//!
//! Keeping them here, rather than as literals next to the JSON that uses them, means a
//! reviewer can check the terminology in one place and the story code reads in clinical
//! words (`DIABETES_TYPE_2`, `HBA1C`) rather than numbers. Displays follow each code
//! system's preferred term (SNOMED CT, LOINC, RxNorm, CVX, HL7 v2/v3 tables as published in
//! the FHIR R4 terminology).

/// A code in a code system, with the display text written next to it (FHIR R4 Coding).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Code {
    pub system: &'static str,
    pub code: &'static str,
    pub display: &'static str,
}

impl Code {
    const fn new(system: &'static str, code: &'static str, display: &'static str) -> Code {
        Code {
            system,
            code,
            display,
        }
    }
}

/// Code system and identifier system URIs.
pub(crate) mod system {
    pub const SNOMED: &str = "http://snomed.info/sct";
    pub const LOINC: &str = "http://loinc.org";
    pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
    pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
    pub const UCUM: &str = "http://unitsofmeasure.org";

    /// US National Provider Identifier (FHIR R4 identifier-registry).
    pub const NPI: &str = "http://hl7.org/fhir/sid/us-npi";
    /// Rapport's own identifier systems for things that have no national identifier.
    pub const ORGANIZATION_ID: &str = "http://rapport.example.org/fhir/sid/org";
    pub const MRN: &str = "http://rapport.example.org/fhir/sid/mrn";
    pub const PRACTITIONER_ROLE_ID: &str = "http://rapport.example.org/fhir/sid/practitioner-role";

    pub const V2_IDENTIFIER_TYPE: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
    pub const V2_CONTACT_ROLE: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";
    pub const V2_DIAGNOSTIC_SERVICE: &str = "http://terminology.hl7.org/CodeSystem/v2-0074";
    pub const V2_APPOINTMENT_REASON: &str = "http://terminology.hl7.org/CodeSystem/v2-0276";
    pub const V3_ROLE_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
    pub const V3_ACT_CODE: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    pub const V3_PARTICIPATION_TYPE: &str =
        "http://terminology.hl7.org/CodeSystem/v3-ParticipationType";
    pub const V3_INTERPRETATION: &str =
        "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation";
    pub const V3_MARITAL_STATUS: &str = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus";
    pub const OBSERVATION_CATEGORY: &str =
        "http://terminology.hl7.org/CodeSystem/observation-category";
    pub const CONDITION_CLINICAL: &str = "http://terminology.hl7.org/CodeSystem/condition-clinical";
    pub const CONDITION_VERIFICATION: &str =
        "http://terminology.hl7.org/CodeSystem/condition-ver-status";
    pub const CONDITION_CATEGORY: &str = "http://terminology.hl7.org/CodeSystem/condition-category";
    pub const SERVICE_TYPE: &str = "http://terminology.hl7.org/CodeSystem/service-type";
    pub const ORGANIZATION_TYPE: &str = "http://terminology.hl7.org/CodeSystem/organization-type";
    pub const ADMIT_SOURCE: &str = "http://terminology.hl7.org/CodeSystem/admit-source";
    pub const DISCHARGE_DISPOSITION: &str =
        "http://terminology.hl7.org/CodeSystem/discharge-disposition";
    pub const DOCUMENT_CATEGORY: &str =
        "http://hl7.org/fhir/us/core/CodeSystem/us-core-documentreference-category";
}

use system::*;

const fn snomed(code: &'static str, display: &'static str) -> Code {
    Code::new(SNOMED, code, display)
}
const fn loinc(code: &'static str, display: &'static str) -> Code {
    Code::new(LOINC, code, display)
}
const fn rxnorm(code: &'static str, display: &'static str) -> Code {
    Code::new(RXNORM, code, display)
}
const fn cvx(code: &'static str, display: &'static str) -> Code {
    Code::new(CVX, code, display)
}

// --- Occupations (SNOMED CT occupation hierarchy), for PractitionerRole.code and CareTeam roles.
pub(crate) const GENERAL_PRACTITIONER: Code = snomed("62247001", "General practitioner");
pub(crate) const CARDIOLOGIST: Code = snomed("17561000", "Cardiologist");
pub(crate) const ENDOCRINOLOGIST: Code = snomed("61894003", "Endocrinologist");
pub(crate) const NEPHROLOGIST: Code = snomed("11911009", "Nephrologist");
pub(crate) const CHEST_PHYSICIAN: Code = snomed("309345004", "Chest physician");
pub(crate) const PHYSICIAN: Code = snomed("309343006", "Physician");
pub(crate) const PRACTICE_NURSE: Code = snomed("159002008", "Practice nurse");
pub(crate) const DISTRICT_NURSE: Code = snomed("158997000", "District nurse");
pub(crate) const REGISTERED_NURSE: Code = snomed("224535009", "Registered nurse");
pub(crate) const PHARMACIST: Code = snomed("46255001", "Pharmacist");
pub(crate) const SOCIAL_WORKER: Code = snomed("106328005", "Social worker");
pub(crate) const CARE_COORDINATOR: Code = snomed("768820003", "Care coordinator");
/// A family member who looks after the patient (SNOMED CT person hierarchy).
pub(crate) const CAREGIVER: Code = snomed("133932002", "Caregiver");

// --- Specialties (SNOMED CT qualifiers from the FHIR R4 c80-practice-codes value set).
pub(crate) const GENERAL_PRACTICE: Code = snomed("394814009", "General practice");
pub(crate) const CARDIOLOGY: Code = snomed("394579002", "Cardiology");
pub(crate) const ENDOCRINOLOGY: Code = snomed("394583002", "Endocrinology");
pub(crate) const NEPHROLOGY: Code = snomed("394589003", "Nephrology");
pub(crate) const PULMONARY_MEDICINE: Code = snomed("418112009", "Pulmonary medicine");
pub(crate) const GENERAL_MEDICINE: Code = snomed("394802001", "General medicine");
pub(crate) const COMMUNITY_MEDICINE: Code = snomed("394581000", "Community medicine");
pub(crate) const CLINICAL_PHARMACOLOGY: Code = snomed("394600006", "Clinical pharmacology");

// --- Organisation types (FHIR R4 organization-type).
pub(crate) const ORG_PROVIDER: Code = Code::new(ORGANIZATION_TYPE, "prov", "Healthcare Provider");
pub(crate) const ORG_DEPARTMENT: Code = Code::new(ORGANIZATION_TYPE, "dept", "Hospital Department");

// --- Chronic problems (SNOMED CT disorders).
pub(crate) const HYPERTENSION: Code =
    snomed("38341003", "Hypertensive disorder, systemic arterial");
pub(crate) const DIABETES_TYPE_2: Code = snomed("44054006", "Diabetes mellitus type 2");
pub(crate) const HYPERLIPIDEMIA: Code = snomed("55822004", "Hyperlipidemia");
pub(crate) const ASTHMA: Code = snomed("195967001", "Asthma");
pub(crate) const COPD: Code = snomed("13645005", "Chronic obstructive lung disease");
pub(crate) const CHRONIC_KIDNEY_DISEASE: Code = snomed("709044004", "Chronic kidney disease");
pub(crate) const ATRIAL_FIBRILLATION: Code = snomed("49436004", "Atrial fibrillation");
pub(crate) const HEART_FAILURE: Code = snomed("84114007", "Heart failure");
pub(crate) const DEPRESSION: Code = snomed("35489007", "Depressive disorder");
pub(crate) const ANXIETY: Code = snomed("197480006", "Anxiety disorder");
pub(crate) const OSTEOARTHRITIS: Code = snomed("396275006", "Osteoarthritis");
pub(crate) const HYPOTHYROIDISM: Code = snomed("40930008", "Hypothyroidism");
pub(crate) const OBESITY: Code = snomed("414916001", "Obesity");

// --- Acute problems (SNOMED CT disorders and findings).
pub(crate) const VIRAL_SINUSITIS: Code = snomed("444814009", "Viral sinusitis");
pub(crate) const ACUTE_VIRAL_PHARYNGITIS: Code = snomed("195662009", "Acute viral pharyngitis");
pub(crate) const ACUTE_BRONCHITIS: Code = snomed("10509002", "Acute bronchitis");
pub(crate) const OTITIS_MEDIA: Code = snomed("65363002", "Otitis media");
pub(crate) const URINARY_TRACT_INFECTION: Code =
    snomed("68566005", "Urinary tract infectious disease");
pub(crate) const ATOPIC_DERMATITIS: Code = snomed("24079001", "Atopic dermatitis");
pub(crate) const PNEUMONIA: Code = snomed("233604007", "Pneumonia");
pub(crate) const COPD_EXACERBATION: Code = snomed(
    "195951007",
    "Acute exacerbation of chronic obstructive airways disease",
);
pub(crate) const CHEST_PAIN: Code = snomed("29857009", "Chest pain");
pub(crate) const SPRAIN_OF_ANKLE: Code = snomed("44465007", "Sprain of ankle");
pub(crate) const CONCUSSION: Code = snomed("62106007", "Concussion with no loss of consciousness");
pub(crate) const FRACTURE_OF_HIP: Code = snomed("359817006", "Closed fracture of hip");

// --- Encounter types (SNOMED CT procedures).
pub(crate) const CHECK_UP: Code = snomed("185349003", "Encounter for check up");
pub(crate) const SYMPTOM_ENCOUNTER: Code = snomed("185345009", "Encounter for symptom");
pub(crate) const FOLLOW_UP_ENCOUNTER: Code = snomed("390906007", "Follow-up encounter");
pub(crate) const WELL_CHILD_VISIT: Code = snomed("410620009", "Well child visit");
pub(crate) const EMERGENCY_ROOM_ADMISSION: Code = snomed("50849002", "Emergency room admission");
pub(crate) const EMERGENCY_HOSPITAL_ADMISSION: Code =
    snomed("183452005", "Emergency hospital admission");
pub(crate) const HOME_VISIT: Code = snomed("439708006", "Home visit");

// --- Encounter classes (FHIR R4 v3-ActCode).
pub(crate) const AMBULATORY: Code = Code::new(V3_ACT_CODE, "AMB", "ambulatory");
pub(crate) const EMERGENCY: Code = Code::new(V3_ACT_CODE, "EMER", "emergency");
pub(crate) const INPATIENT: Code = Code::new(V3_ACT_CODE, "IMP", "inpatient encounter");
pub(crate) const HOME_HEALTH: Code = Code::new(V3_ACT_CODE, "HH", "home health");
pub(crate) const PRIMARY_PERFORMER: Code =
    Code::new(V3_PARTICIPATION_TYPE, "PPRF", "primary performer");
pub(crate) const FROM_EMERGENCY_DEPARTMENT: Code =
    Code::new(ADMIT_SOURCE, "emd", "From accident/emergency department");
pub(crate) const DISCHARGED_HOME: Code = Code::new(DISCHARGE_DISPOSITION, "home", "Home");

// --- Medication dispense types (v3-ActCode).
pub(crate) const FIRST_FILL: Code = Code::new(V3_ACT_CODE, "FF", "First Fill");
pub(crate) const REFILL: Code = Code::new(V3_ACT_CODE, "RF", "Refill");

// --- Procedures (SNOMED CT).
pub(crate) const ELECTROCARDIOGRAM: Code = snomed("29303009", "Electrocardiographic procedure");
pub(crate) const SPIROMETRY: Code = snomed("127783003", "Spirometry");
pub(crate) const MEDICATION_RECONCILIATION: Code = snomed("430193006", "Medication reconciliation");
pub(crate) const DEPRESSION_SCREENING: Code = snomed("171207006", "Depression screening");
pub(crate) const PLAIN_CHEST_X_RAY: Code = snomed("399208008", "Plain chest X-ray");
pub(crate) const TOTAL_HIP_REPLACEMENT: Code = snomed("52734007", "Total replacement of hip");
pub(crate) const SOCIAL_CARE_ASSESSMENT: Code =
    snomed("710824005", "Assessment of health and social care needs");

// --- Routes of administration (SNOMED CT qualifiers).
pub(crate) const ORAL_ROUTE: Code = snomed("26643006", "Oral route");
pub(crate) const SUBCUTANEOUS_ROUTE: Code = snomed("34206005", "Subcutaneous route");
pub(crate) const RESPIRATORY_ROUTE: Code = snomed("447694001", "Respiratory tract route");

// --- Medications (RxNorm clinical drugs).
pub(crate) const METFORMIN_ER_500: Code = rxnorm(
    "860975",
    "24 HR metformin hydrochloride 500 MG Extended Release Oral Tablet",
);
pub(crate) const INSULIN_70_30: Code = rxnorm(
    "106892",
    "insulin isophane, human 70 UNT/ML / insulin, regular, human 30 UNT/ML Injectable Suspension [Humulin]",
);
pub(crate) const LISINOPRIL_10: Code = rxnorm("314076", "lisinopril 10 MG Oral Tablet");
pub(crate) const AMLODIPINE_5: Code = rxnorm("197361", "amlodipine 5 MG Oral Tablet");
pub(crate) const HYDROCHLOROTHIAZIDE_25: Code =
    rxnorm("310798", "hydrochlorothiazide 25 MG Oral Tablet");
pub(crate) const ATORVASTATIN_80: Code = rxnorm("259255", "atorvastatin 80 MG Oral Tablet");
pub(crate) const SIMVASTATIN_10: Code = rxnorm("314231", "simvastatin 10 MG Oral Tablet");
pub(crate) const ALBUTEROL_INHALER: Code = rxnorm(
    "745679",
    "200 ACTUAT albuterol 0.09 MG/ACTUAT Metered Dose Inhaler",
);
pub(crate) const FLUTICASONE_INHALER: Code = rxnorm(
    "895994",
    "120 ACTUAT fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler",
);
pub(crate) const WARFARIN_5: Code = rxnorm("855332", "warfarin sodium 5 MG Oral Tablet");
pub(crate) const APIXABAN_5: Code = rxnorm("1364445", "apixaban 5 MG Oral Tablet");
pub(crate) const METOPROLOL_ER_100: Code = rxnorm(
    "866412",
    "24 HR metoprolol succinate 100 MG Extended Release Oral Tablet",
);
pub(crate) const FUROSEMIDE_40: Code = rxnorm("313988", "furosemide 40 MG Oral Tablet");
pub(crate) const SERTRALINE_100: Code = rxnorm("312938", "sertraline 100 MG Oral Tablet");
pub(crate) const LEVOTHYROXINE_75_MCG: Code =
    rxnorm("966222", "levothyroxine sodium 0.075 MG Oral Tablet");
pub(crate) const ACETAMINOPHEN_325: Code = rxnorm("313782", "acetaminophen 325 MG Oral Tablet");
pub(crate) const NAPROXEN_220: Code = rxnorm("849574", "naproxen sodium 220 MG Oral Tablet");
pub(crate) const AMOXICILLIN_250: Code = rxnorm("308182", "amoxicillin 250 MG Oral Capsule");

// --- Observation categories and codes (LOINC).
pub(crate) const VITAL_SIGNS: Code = Code::new(OBSERVATION_CATEGORY, "vital-signs", "Vital Signs");
pub(crate) const LABORATORY: Code = Code::new(OBSERVATION_CATEGORY, "laboratory", "Laboratory");
pub(crate) const BLOOD_PRESSURE_PANEL: Code =
    loinc("85354-9", "Blood pressure panel with all children optional");
pub(crate) const SYSTOLIC_BLOOD_PRESSURE: Code = loinc("8480-6", "Systolic blood pressure");
pub(crate) const DIASTOLIC_BLOOD_PRESSURE: Code = loinc("8462-4", "Diastolic blood pressure");
pub(crate) const HEART_RATE: Code = loinc("8867-4", "Heart rate");
pub(crate) const BODY_WEIGHT: Code = loinc("29463-7", "Body weight");
pub(crate) const BODY_HEIGHT: Code = loinc("8302-2", "Body height");
pub(crate) const BODY_MASS_INDEX: Code = loinc("39156-5", "Body mass index (BMI) [Ratio]");
pub(crate) const BODY_TEMPERATURE: Code = loinc("8310-5", "Body temperature");
pub(crate) const OXYGEN_SATURATION: Code = loinc(
    "59408-5",
    "Oxygen saturation in Arterial blood by Pulse oximetry",
);
/// The FHIR R4 vital-signs profile also requires this code on oxygen saturation.
pub(crate) const OXYGEN_SATURATION_ARTERIAL: Code =
    loinc("2708-6", "Oxygen saturation in Arterial blood");
pub(crate) const HBA1C: Code = loinc("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood");
pub(crate) const GLUCOSE: Code = loinc("2339-0", "Glucose [Mass/volume] in Blood");
pub(crate) const CREATININE: Code = loinc("2160-0", "Creatinine [Mass/volume] in Serum or Plasma");
pub(crate) const EGFR: Code = loinc(
    "33914-3",
    "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)",
);
pub(crate) const CHOLESTEROL: Code =
    loinc("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma");
pub(crate) const POTASSIUM: Code = loinc("2823-3", "Potassium [Moles/volume] in Serum or Plasma");
pub(crate) const BASIC_METABOLIC_PANEL: Code = loinc("51990-0", "Basic metabolic panel - Blood");
pub(crate) const LAB_SERVICE: Code = Code::new(V2_DIAGNOSTIC_SERVICE, "LAB", "Laboratory");
pub(crate) const PROGRESS_NOTE: Code = loinc("11506-3", "Progress note");
pub(crate) const CLINICAL_NOTE: Code =
    Code::new(DOCUMENT_CATEGORY, "clinical-note", "Clinical Note");
pub(crate) const LONGITUDINAL_CARE_TEAM: Code = loinc(
    "LA28865-6",
    "Longitudinal care-coordination focused care team",
);

// --- Interpretations (v3-ObservationInterpretation).
pub(crate) const NORMAL: Code = Code::new(V3_INTERPRETATION, "N", "Normal");
pub(crate) const HIGH: Code = Code::new(V3_INTERPRETATION, "H", "High");
pub(crate) const LOW: Code = Code::new(V3_INTERPRETATION, "L", "Low");
pub(crate) const CRITICAL_HIGH: Code = Code::new(V3_INTERPRETATION, "HH", "Critical high");
pub(crate) const CRITICAL_LOW: Code = Code::new(V3_INTERPRETATION, "LL", "Critical low");

// --- Condition status and category.
pub(crate) const ACTIVE: Code = Code::new(CONDITION_CLINICAL, "active", "Active");
pub(crate) const RESOLVED: Code = Code::new(CONDITION_CLINICAL, "resolved", "Resolved");
pub(crate) const CONFIRMED: Code = Code::new(CONDITION_VERIFICATION, "confirmed", "Confirmed");
pub(crate) const PROBLEM_LIST_ITEM: Code =
    Code::new(CONDITION_CATEGORY, "problem-list-item", "Problem List Item");
pub(crate) const ENCOUNTER_DIAGNOSIS: Code = Code::new(
    CONDITION_CATEGORY,
    "encounter-diagnosis",
    "Encounter Diagnosis",
);

// --- Immunisations (CDC CVX).
pub(crate) const INFLUENZA_VACCINE: Code =
    cvx("140", "Influenza, seasonal, injectable, preservative free");
pub(crate) const COVID_19_VACCINE: Code = cvx(
    "208",
    "SARS-COV-2 (COVID-19) vaccine, mRNA, spike protein, LNP, preservative free, 30 mcg/0.3mL dose",
);
/// CVX 115 is the adult/adolescent tetanus, diphtheria and pertussis booster.
pub(crate) const TDAP_VACCINE: Code = cvx("115", "Tdap");
pub(crate) const PNEUMOCOCCAL_POLYSACCHARIDE_VACCINE: Code =
    cvx("33", "pneumococcal polysaccharide vaccine, 23 valent");
pub(crate) const PNEUMOCOCCAL_CONJUGATE_VACCINE: Code = cvx("133", "Pneumococcal conjugate PCV 13");
pub(crate) const MMR_VACCINE: Code = cvx("03", "MMR");
pub(crate) const DTAP_VACCINE: Code = cvx("20", "DTaP");
pub(crate) const IPV_VACCINE: Code = cvx("10", "IPV");
pub(crate) const HEPATITIS_B_VACCINE: Code = cvx("08", "Hep B, adolescent or pediatric");
pub(crate) const HIB_VACCINE: Code = cvx("49", "Hib (PRP-OMP)");
pub(crate) const VARICELLA_VACCINE: Code = cvx("21", "varicella");
pub(crate) const HEPATITIS_A_VACCINE: Code = cvx("83", "Hep A, ped/adol, 2 dose");
pub(crate) const HPV_VACCINE: Code = cvx("62", "HPV, quadrivalent");
pub(crate) const MENINGOCOCCAL_VACCINE: Code = cvx("114", "meningococcal MCV4P");
pub(crate) const ZOSTER_VACCINE: Code = cvx("187", "zoster vaccine recombinant");

// --- Appointments (FHIR R4 service-type, v2-0276).
pub(crate) const GENERAL_PRACTICE_SERVICE: Code =
    Code::new(SERVICE_TYPE, "124", "General Practice");
pub(crate) const ROUTINE_APPOINTMENT: Code = Code::new(
    V2_APPOINTMENT_REASON,
    "ROUTINE",
    "Routine appointment - default if not valued",
);
pub(crate) const CHECKUP_APPOINTMENT: Code = Code::new(
    V2_APPOINTMENT_REASON,
    "CHECKUP",
    "A routine check-up, such as an annual physical",
);
pub(crate) const FOLLOW_UP_APPOINTMENT: Code = Code::new(
    V2_APPOINTMENT_REASON,
    "FOLLOWUP",
    "A follow up visit from a previous appointment",
);

// --- People: identifiers, relationships, marital status.
pub(crate) const MEDICAL_RECORD_NUMBER: Code =
    Code::new(V2_IDENTIFIER_TYPE, "MR", "Medical record number");
pub(crate) const EMERGENCY_CONTACT: Code = Code::new(V2_CONTACT_ROLE, "C", "Emergency Contact");
pub(crate) const SPOUSE: Code = Code::new(V3_ROLE_CODE, "SPS", "spouse");
pub(crate) const MOTHER: Code = Code::new(V3_ROLE_CODE, "MTH", "mother");
pub(crate) const FATHER: Code = Code::new(V3_ROLE_CODE, "FTH", "father");
pub(crate) const CHILD: Code = Code::new(V3_ROLE_CODE, "CHILD", "child");
pub(crate) const SIBLING: Code = Code::new(V3_ROLE_CODE, "SIB", "sibling");
pub(crate) const GUARDIAN: Code = Code::new(V3_ROLE_CODE, "GUARD", "guardian");
pub(crate) const FRIEND: Code = Code::new(V3_ROLE_CODE, "FRND", "unrelated friend");
pub(crate) const NEIGHBOR: Code = Code::new(V3_ROLE_CODE, "NBOR", "neighbor");
pub(crate) const EMERGENCY_CONTACT_ROLE: Code =
    Code::new(V3_ROLE_CODE, "ECON", "emergency contact");
pub(crate) const MARRIED: Code = Code::new(V3_MARITAL_STATUS, "M", "Married");
pub(crate) const NEVER_MARRIED: Code = Code::new(V3_MARITAL_STATUS, "S", "Never Married");
pub(crate) const DIVORCED: Code = Code::new(V3_MARITAL_STATUS, "D", "Divorced");
pub(crate) const WIDOWED: Code = Code::new(V3_MARITAL_STATUS, "W", "Widowed");
