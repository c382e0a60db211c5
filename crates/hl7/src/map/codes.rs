//! The small code tables of the mapping: HL7 v2 tables to FHIR codes, after the v2-to-FHIR
//! guide's ConceptMaps (<https://build.fhir.org/ig/HL7/v2-to-fhir/terminology.html>), and the
//! unit aliases that become UCUM codes. Codes not in a table are kept as text by the callers.

/// HL7 table 0396 (coding system names) → FHIR code system URIs (terminology.html#external).
pub(crate) fn coding_system_uri(name: &str) -> Option<String> {
    let upper = name.trim().to_ascii_uppercase();
    let uri = match upper.as_str() {
        "" => return None,
        "LN" | "LOINC" => "http://loinc.org",
        "SCT" | "SNM" | "SNM3" | "SNOMED" | "SNOMED-CT" | "SNOMEDCT" => "http://snomed.info/sct",
        "I10" | "I10C" | "ICD10CM" | "ICD-10-CM" => "http://hl7.org/fhir/sid/icd-10-cm",
        "I10P" | "ICD10PCS" => "http://www.cms.gov/Medicare/Coding/ICD10",
        "ICD10" | "I10WHO" => "http://hl7.org/fhir/sid/icd-10",
        "I9" | "I9C" | "I9CDX" | "ICD9" | "ICD9CM" => "http://hl7.org/fhir/sid/icd-9-cm",
        "CPT" | "C4" | "CPT4" => "http://www.ama-assn.org/go/cpt",
        "CVX" => "http://hl7.org/fhir/sid/cvx",
        "MVX" => "http://terminology.hl7.org/CodeSystem/MVX",
        "NDC" => "http://hl7.org/fhir/sid/ndc",
        "RXNORM" | "RXN" => "http://www.nlm.nih.gov/research/umls/rxnorm",
        "UCUM" => "http://unitsofmeasure.org",
        "NCIT" => "http://ncimeta.nci.nih.gov",
        "CDCREC" => "urn:oid:2.16.840.1.113883.6.238",
        "ISO3166_1" => "urn:iso:std:iso:3166",
        "ISO+" | "ISO" | "ANSI" | "L" | "LOCAL" | "99ZZZ" => return None,
        _ => {
            // HL7nnnn and HL7-nnnn: the v2 tables as FHIR code systems.
            let digits = upper
                .strip_prefix("HL7")
                .map(|d| d.trim_start_matches('-'))
                .filter(|d| d.len() == 4 && d.bytes().all(|b| b.is_ascii_digit()));
            return digits.map(|d| format!("http://terminology.hl7.org/CodeSystem/v2-{d}"));
        }
    };
    Some(uri.to_owned())
}

/// Table 0001 (administrative sex) → administrative-gender (ConceptMap sex).
pub(crate) fn gender(code: &str) -> Option<&'static str> {
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "M" => "male",
        "F" => "female",
        "O" | "A" | "N" => "other",
        "U" => "unknown",
        _ => return None,
    })
}

/// Table 0200 (name type) → HumanName.use.
pub(crate) fn name_use(code: &str) -> Option<&'static str> {
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "L" | "B" => "official",
        "D" | "A" | "I" => "usual",
        "M" => "maiden",
        "N" => "nickname",
        "S" => "anonymous",
        "T" | "C" => "temp",
        "BAD" => "old",
        _ => return None,
    })
}

/// Table 0190 (address type) → Address.use and Address.type.
pub(crate) fn address_use(code: &str) -> (Option<&'static str>, Option<&'static str>) {
    match code.trim().to_ascii_uppercase().as_str() {
        "H" | "P" => (Some("home"), None),
        "B" | "O" => (Some("work"), None),
        "C" | "V" => (Some("temp"), None),
        "BA" | "OLD" => (Some("old"), None),
        "BI" => (Some("billing"), None),
        "M" => (None, Some("postal")),
        "SH" => (None, Some("physical")),
        _ => (None, None),
    }
}

/// Table 0202 (telecommunication equipment type) → ContactPoint.system.
pub(crate) fn telecom_system(equipment: &str) -> &'static str {
    match equipment {
        "FX" => "fax",
        "BP" => "pager",
        "INTERNET" | "X.400" => "email",
        "TDD" | "TTY" | "MD" => "other",
        _ => "phone",
    }
}

/// Table 0201 (telecommunication use) and 0202 → ContactPoint.use.
pub(crate) fn telecom_use(use_code: &str, equipment: &str) -> Option<&'static str> {
    if equipment == "CP" {
        return Some("mobile");
    }
    Some(match use_code {
        "PRN" | "ORN" => "home",
        "WPN" => "work",
        "VHN" => "temp",
        "PRS" => "mobile",
        _ => return None,
    })
}

/// Table 0002 (marital status) → v3 MaritalStatus (or NullFlavor) system and code.
pub(crate) fn marital_status(code: &str) -> Option<(&'static str, &'static str)> {
    const V3: &str = "http://terminology.hl7.org/CodeSystem/v3-MaritalStatus";
    const NULL: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "A" | "E" => (V3, "L"),
        "D" => (V3, "D"),
        "M" => (V3, "M"),
        "S" => (V3, "S"),
        "W" => (V3, "W"),
        "C" | "G" | "P" | "R" | "T" => (V3, "T"),
        "N" => (V3, "A"),
        "I" => (V3, "I"),
        "B" => (V3, "U"),
        "U" => (NULL, "UNK"),
        "O" => (NULL, "OTH"),
        _ => return None,
    })
}

/// Table 0004 (patient class) → v3 ActCode encounter class (ConceptMap PatientClass).
pub(crate) fn encounter_class(code: &str) -> (&'static str, &'static str, &'static str) {
    const ACT: &str = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
    const NULL: &str = "http://terminology.hl7.org/CodeSystem/v3-NullFlavor";
    match code.trim().to_ascii_uppercase().as_str() {
        "E" => (ACT, "EMER", "emergency"),
        "I" | "B" => (ACT, "IMP", "inpatient encounter"),
        "O" | "R" | "C" => (ACT, "AMB", "ambulatory"),
        "P" => (ACT, "PRENC", "pre-admission"),
        "H" => (ACT, "HH", "home health"),
        "V" => (ACT, "VR", "virtual"),
        "S" => (ACT, "SS", "short stay"),
        _ => (NULL, "UNK", "unknown"),
    }
}

/// Table 0063 (relationship) → the FHIR patient-contact relationship codes: v3 RoleCode where
/// it has one, v2 table 0131 for contact roles (EMC → C, emergency contact).
pub(crate) fn relationship(code: &str) -> Option<(&'static str, &'static str, &'static str)> {
    const ROLE: &str = "http://terminology.hl7.org/CodeSystem/v3-RoleCode";
    const CONTACT: &str = "http://terminology.hl7.org/CodeSystem/v2-0131";
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "SPO" => (ROLE, "SPS", "spouse"),
        "HUSB" => (ROLE, "HUSB", "husband"),
        "WIFE" => (ROLE, "WIFE", "wife"),
        "DOM" => (ROLE, "DOMPART", "domestic partner"),
        "MTH" => (ROLE, "MTH", "mother"),
        "FTH" => (ROLE, "FTH", "father"),
        "PAR" | "PRN" => (ROLE, "PRN", "parent"),
        "CHD" | "CHILD" => (ROLE, "CHILD", "child"),
        "NCH" => (ROLE, "NCHILD", "natural child"),
        "SCH" => (ROLE, "STPCHLD", "step child"),
        "FCH" => (ROLE, "CHLDFOST", "foster child"),
        "GCH" => (ROLE, "GRNDCHILD", "grandchild"),
        "GRP" => (ROLE, "GRPRN", "grandparent"),
        "GRD" => (ROLE, "GUARD", "guardian"),
        "SIB" => (ROLE, "SIB", "sibling"),
        "BRO" => (ROLE, "BRO", "brother"),
        "SIS" => (ROLE, "SIS", "sister"),
        "FND" => (ROLE, "FRND", "unrelated friend"),
        "EXF" => (ROLE, "EXT", "extended family member"),
        "SEL" => (ROLE, "ONESELF", "self"),
        "EMC" => (CONTACT, "C", "Emergency Contact"),
        "EMR" => (CONTACT, "E", "Employer"),
        _ => return None,
    })
}

/// Table 0131 (contact role) codes that RelatedPerson.relationship takes as they are.
pub(crate) fn contact_role(code: &str) -> Option<&'static str> {
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "C" => "Emergency Contact",
        "E" => "Employer",
        "F" => "Federal Agency",
        "I" => "Insurance Company",
        "N" => "Next-of-Kin",
        "S" => "State Agency",
        "O" => "Other",
        "U" => "Unknown",
        _ => return None,
    })
}

/// Table 0078 (interpretation codes) → v3 ObservationInterpretation, which took them over.
pub(crate) fn interpretation(code: &str) -> Option<&'static str> {
    Some(match code.trim() {
        "L" => "L",
        "H" => "H",
        "LL" => "LL",
        "HH" => "HH",
        "<" => "<",
        ">" => ">",
        "N" => "N",
        "A" => "A",
        "AA" => "AA",
        "U" => "U",
        "D" => "D",
        "B" => "B",
        "W" => "W",
        "S" => "S",
        "R" => "R",
        "I" => "I",
        "MS" => "MS",
        "VS" => "VS",
        "POS" => "POS",
        "NEG" => "NEG",
        "IND" => "IND",
        "DET" => "DET",
        "ND" => "ND",
        "NR" => "NR",
        "E" => "E",
        "EX" => "EX",
        "HU" => "HU",
        "LU" => "LU",
        "SDD" => "SDD",
        "NS" => "NS",
        _ => return None,
    })
}

/// Table 0085 (observation result status) → Observation.status (ConceptMap
/// ObservationResultStatus).
pub(crate) fn observation_status(code: &str) -> &'static str {
    match code.trim().to_ascii_uppercase().as_str() {
        "F" | "U" => "final",
        "P" | "R" | "S" => "preliminary",
        "C" => "corrected",
        "A" | "B" => "amended",
        "D" | "W" => "entered-in-error",
        "X" | "N" => "cancelled",
        "I" | "O" => "registered",
        _ => "unknown",
    }
}

/// Table 0123 (result status) → DiagnosticReport.status.
pub(crate) fn report_status(code: &str) -> &'static str {
    match code.trim().to_ascii_uppercase().as_str() {
        "O" | "I" | "S" => "registered",
        "A" => "partial",
        "P" | "R" => "preliminary",
        "C" => "corrected",
        "M" => "amended",
        "F" => "final",
        "X" => "cancelled",
        "D" | "W" => "entered-in-error",
        _ => "unknown",
    }
}

/// Table 0127 (allergen type) → AllergyIntolerance.category and type.
pub(crate) fn allergy_category(code: &str) -> (Option<&'static str>, Option<&'static str>) {
    match code.trim().to_ascii_uppercase().as_str() {
        "DA" => (Some("medication"), Some("allergy")),
        "FA" => (Some("food"), Some("allergy")),
        "EA" | "AA" | "PA" | "LA" => (Some("environment"), Some("allergy")),
        "MA" => (None, Some("allergy")),
        "DI" => (Some("medication"), Some("intolerance")),
        "FI" => (Some("food"), Some("intolerance")),
        "MI" | "MC" => (None, Some("intolerance")),
        _ => (None, None),
    }
}

/// Table 0128 (allergy severity) → reaction severity and criticality.
pub(crate) fn allergy_severity(code: &str) -> (Option<&'static str>, Option<&'static str>) {
    match code.trim().to_ascii_uppercase().as_str() {
        "SV" => (Some("severe"), Some("high")),
        "MO" => (Some("moderate"), Some("low")),
        "MI" => (Some("mild"), Some("low")),
        "U" => (None, Some("unable-to-assess")),
        _ => (None, None),
    }
}

/// Table 0052 / DG1-6 (diagnosis type) → Condition.verificationStatus.
pub(crate) fn diagnosis_verification(code: &str) -> Option<&'static str> {
    Some(match code.trim().to_ascii_uppercase().as_str() {
        "A" | "W" => "provisional",
        "F" => "confirmed",
        _ => return None,
    })
}

/// Table 0119 (order control) and 0038 (order status) → MedicationRequest.status.
pub(crate) fn medication_request_status(control: &str, status: &str) -> &'static str {
    match status.trim().to_ascii_uppercase().as_str() {
        "CA" => return "cancelled",
        "CM" => return "completed",
        "DC" => return "stopped",
        "HD" => return "on-hold",
        "IP" | "SC" | "A" => return "active",
        "ER" => return "entered-in-error",
        _ => {}
    }
    match control.trim().to_ascii_uppercase().as_str() {
        "NW" | "OK" | "SN" | "XO" | "XX" | "RP" | "RL" | "RO" | "RE" | "SC" | "PA" | "RF" => {
            "active"
        }
        "CA" | "CR" | "OC" => "cancelled",
        "DC" | "DR" | "OD" => "stopped",
        "HD" | "HR" | "OH" => "on-hold",
        "RU" => "active",
        _ => "unknown",
    }
}

/// Administrations a day of a common repeat pattern (table 0335), for the days a dispensed
/// quantity lasts.
pub(crate) fn doses_per_day(pattern: &str) -> Option<f64> {
    let p = pattern.trim().to_ascii_uppercase();
    let fixed = match p.as_str() {
        "QD" | "QAM" | "QPM" | "QHS" | "QDAY" | "DAILY" | "Q24H" => Some(1.0),
        "BID" | "Q12H" => Some(2.0),
        "TID" | "Q8H" => Some(3.0),
        "QID" | "Q6H" => Some(4.0),
        "Q4H" => Some(6.0),
        "Q3H" => Some(8.0),
        "Q2H" => Some(12.0),
        "Q1H" | "QH" => Some(24.0),
        "QOD" => Some(0.5),
        "QW" | "QWK" => Some(1.0 / 7.0),
        _ => None,
    };
    if fixed.is_some() {
        return fixed;
    }
    // Q<n>H and Q<n>D.
    let rest = p.strip_prefix('Q')?;
    if let Some(hours) = rest.strip_suffix('H').and_then(|n| n.parse::<f64>().ok()) {
        return (hours > 0.0).then(|| 24.0 / hours);
    }
    if let Some(days) = rest.strip_suffix('D').and_then(|n| n.parse::<f64>().ok()) {
        return (days > 0.0).then(|| 1.0 / days);
    }
    None
}

/// A time unit (of TQ1-6, RXE-22, CQ units) → UCUM code, for durations.
pub(crate) fn time_unit(unit: &str) -> Option<&'static str> {
    Some(match unit.trim().to_ascii_lowercase().as_str() {
        "s" | "sec" | "second" | "seconds" => "s",
        "min" | "minute" | "minutes" | "m" => "min",
        "h" | "hr" | "hour" | "hours" => "h",
        "d" | "day" | "days" => "d",
        "wk" | "w" | "week" | "weeks" => "wk",
        "mo" | "month" | "months" => "mo",
        "a" | "y" | "yr" | "year" | "years" => "a",
        _ => return None,
    })
}

/// UCUM codes and the common aliases labs send for them (OBX-6, RXE-5). Matching is exact
/// first, then case-insensitive on the aliases.
pub(crate) fn ucum(unit: &str) -> Option<&'static str> {
    const UNITS: &[(&str, &str)] = &[
        ("mg/dL", "mg/dL"),
        ("mg/dl", "mg/dL"),
        ("g/dL", "g/dL"),
        ("g/dl", "g/dL"),
        ("g/L", "g/L"),
        ("mg/L", "mg/L"),
        ("ug/L", "ug/L"),
        ("ug/mL", "ug/mL"),
        ("ng/mL", "ng/mL"),
        ("ng/dL", "ng/dL"),
        ("pg/mL", "pg/mL"),
        ("mmol/L", "mmol/L"),
        ("umol/L", "umol/L"),
        ("µmol/L", "umol/L"),
        ("μmol/L", "umol/L"),
        ("nmol/L", "nmol/L"),
        ("pmol/L", "pmol/L"),
        ("mol/L", "mol/L"),
        ("mEq/L", "meq/L"),
        ("meq/L", "meq/L"),
        ("mosm/kg", "mosm/kg"),
        ("U/L", "U/L"),
        ("IU/L", "[IU]/L"),
        ("[IU]/L", "[IU]/L"),
        ("mIU/mL", "m[IU]/mL"),
        ("uIU/mL", "u[IU]/mL"),
        ("%", "%"),
        ("/min", "/min"),
        ("beats/min", "/min"),
        ("bpm", "/min"),
        ("breaths/min", "/min"),
        ("/uL", "/uL"),
        ("/mm3", "/mm3"),
        ("10*3/uL", "10*3/uL"),
        ("10^3/uL", "10*3/uL"),
        ("x10E3/uL", "10*3/uL"),
        ("K/uL", "10*3/uL"),
        ("thou/uL", "10*3/uL"),
        ("10*6/uL", "10*6/uL"),
        ("10^6/uL", "10*6/uL"),
        ("x10E6/uL", "10*6/uL"),
        ("M/uL", "10*6/uL"),
        ("10*9/L", "10*9/L"),
        ("10^9/L", "10*9/L"),
        ("giga.l-1", "10*9/L"),
        ("10*12/L", "10*12/L"),
        ("10^12/L", "10*12/L"),
        ("tera.l-1", "10*12/L"),
        ("fL", "fL"),
        ("pg", "pg"),
        ("mm[Hg]", "mm[Hg]"),
        ("mmHg", "mm[Hg]"),
        ("mm Hg", "mm[Hg]"),
        ("kg", "kg"),
        ("g", "g"),
        ("mg", "mg"),
        ("ug", "ug"),
        ("mcg", "ug"),
        ("ng", "ng"),
        ("lb", "[lb_av]"),
        ("lbs", "[lb_av]"),
        ("[lb_av]", "[lb_av]"),
        ("oz", "[oz_av]"),
        ("cm", "cm"),
        ("mm", "mm"),
        ("m", "m"),
        ("in", "[in_i]"),
        ("[in_i]", "[in_i]"),
        ("kg/m2", "kg/m2"),
        ("kg/m^2", "kg/m2"),
        ("m2", "m2"),
        ("L", "L"),
        ("mL", "mL"),
        ("dL", "dL"),
        ("mL/min", "mL/min"),
        ("mL/min/{1.73_m2}", "mL/min/{1.73_m2}"),
        ("mL/min/1.73m2", "mL/min/{1.73_m2}"),
        ("mL/h", "mL/h"),
        ("mL/hr", "mL/h"),
        ("mg/h", "mg/h"),
        ("mg/hr", "mg/h"),
        ("Cel", "Cel"),
        ("degC", "Cel"),
        ("°C", "Cel"),
        ("[degF]", "[degF]"),
        ("degF", "[degF]"),
        ("°F", "[degF]"),
        ("s", "s"),
        ("sec", "s"),
        ("min", "min"),
        ("h", "h"),
        ("hr", "h"),
        ("d", "d"),
        ("wk", "wk"),
        ("mo", "mo"),
        ("a", "a"),
        ("[ppm]", "[ppm]"),
        ("ppm", "[ppm]"),
        ("mL/kg", "mL/kg"),
        ("mg/kg", "mg/kg"),
        ("{ratio}", "{ratio}"),
        ("1", "1"),
    ];
    let unit = unit.trim();
    if unit.is_empty() {
        return None;
    }
    UNITS
        .iter()
        .find(|(alias, _)| *alias == unit)
        .or_else(|| {
            UNITS
                .iter()
                .find(|(alias, _)| alias.len() > 2 && alias.eq_ignore_ascii_case(unit))
        })
        .map(|(_, code)| *code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_unit_aliases_become_ucum_codes() {
        assert_eq!(ucum("µmol/L"), Some("umol/L"));
        assert_eq!(ucum("umol/L"), Some("umol/L"));
        assert_eq!(ucum("mmHg"), Some("mm[Hg]"));
        assert_eq!(ucum("MG/DL"), Some("mg/dL"));
        assert_eq!(ucum("beats/min"), Some("/min"));
        assert_eq!(ucum("furlongs"), None);
        assert_eq!(ucum("M"), None);
    }

    #[test]
    fn repeat_patterns_give_doses_per_day() {
        assert_eq!(doses_per_day("TID"), Some(3.0));
        assert_eq!(doses_per_day("q6h"), Some(4.0));
        assert_eq!(doses_per_day("Q2D"), Some(0.5));
        assert_eq!(doses_per_day("PRN"), None);
    }

    #[test]
    fn coding_system_names_become_uris() {
        assert_eq!(
            coding_system_uri("I10").as_deref(),
            Some("http://hl7.org/fhir/sid/icd-10-cm")
        );
        assert_eq!(
            coding_system_uri("HL70078").as_deref(),
            Some("http://terminology.hl7.org/CodeSystem/v2-0078")
        );
        assert_eq!(coding_system_uri("L"), None);
    }
}
