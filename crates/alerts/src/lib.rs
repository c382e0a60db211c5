//! Care-team alerts as pure functions: each rule looks at one patient's FHIR R4 data and the
//! time `now` (passed in, so tests can travel in time) and says what needs doing, why, and by
//! when. The rules are declared in one place, [`RULES`]; adding a rule is one function and one
//! entry there, its parameters one table in `defaults.toml`.
//!
//! An alert is named by its rule and its *cause* (`Appointment/12`, `MedicationRequest/7@2026-12-02`,
//! `gap:diabetes-hba1c`): the store raises it once per cause and resolves it when the rule no
//! longer reports that cause (the appointment was rebooked, the refill dispensed). No I/O here.
#![forbid(unsafe_code)]

pub mod codes;
pub mod config;
mod data;
pub mod plans;
mod rules;

pub use config::Config;
pub use data::PatientData;

/// How urgent an alert is; the Today page shows the most urgent first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Severity {
    Critical,
    High,
    Normal,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Normal => "normal",
            Severity::Low => "low",
        }
    }

    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s {
            "critical" => Severity::Critical,
            "high" => Severity::High,
            "normal" => Severity::Normal,
            "low" => Severity::Low,
            _ => return None,
        })
    }

    /// The FHIR Flag/DetectedIssue-style rank: 0 is the most urgent.
    pub fn rank(self) -> i64 {
        self as i64
    }
}

/// One thing that needs doing for a patient, as a rule reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Alert {
    /// The rule's id ([`Rule::id`]).
    pub rule: &'static str,
    /// What the alert is about, stable across evaluations: the same cause is the same alert.
    pub cause: String,
    pub severity: Severity,
    /// A short heading: "Missed appointment".
    pub title: String,
    /// Why it is there, with the facts: "Metformin 500 mg: 30 tablets dispensed on 2 Nov 2026,
    /// runs out 2 Dec 2026".
    pub why: String,
    /// When it must be dealt with by (ms since the epoch), if the rule knows.
    pub due_ms: Option<i64>,
    /// The resource it is about (`Appointment/12`), for the link on the Today page.
    pub focus: Option<String>,
}

/// A rule: a name people read and the function that evaluates it.
pub struct Rule {
    pub id: &'static str,
    /// Shown as the group heading on the Today page.
    pub name: &'static str,
    /// What it looks for, shown on the admin page.
    pub description: &'static str,
    /// The FHIR Flag category of its alerts (flag.html; CodeSystem flag-category: `lab`,
    /// `drug`, `admin`, `contact`, `clinical`…), for the API's Flag view of an alert.
    pub flag_category: &'static str,
    pub eval: fn(&PatientData, &Config, i64) -> Vec<Alert>,
}

/// Every rule, in the order the Today page groups them.
pub const RULES: &[Rule] = &[
    Rule {
        id: "abnormal-result",
        name: "Abnormal results",
        description: "An Observation flagged abnormal or critical (interpretation H/L/HH/LL/A/AA…) or outside its reference range, issued within the window; stays until acknowledged.",
        flag_category: "lab",
        eval: rules::abnormal_result,
    },
    Rule {
        id: "missed-appointment",
        name: "Missed appointments",
        description: "An Appointment marked no-show, or a booked one past its end plus the grace period with no encounter for it; cleared when a later appointment is booked.",
        flag_category: "admin",
        eval: rules::missed_appointment,
    },
    Rule {
        id: "discharge-follow-up",
        name: "Discharges to follow up",
        description: "An inpatient encounter finished within the look-back with no contact (encounter or communication) since; due within the configured days of discharge.",
        flag_category: "contact",
        eval: rules::discharge_follow_up,
    },
    Rule {
        id: "refill-due",
        name: "Refills due",
        description: "An active MedicationRequest whose supply runs out within the warning days: from the last dispense (days' supply, or the expected supply duration for the quantity), else from the prescription's dispense request and validity period; escalated after run-out; cleared by a new dispense or by stopping the medication.",
        flag_category: "drug",
        eval: rules::refill_due,
    },
    Rule {
        id: "overdue-task",
        name: "Overdue tasks",
        description: "A Task not completed, cancelled or failed past its due date (restriction.period.end), or a care plan activity not done past its scheduled end.",
        flag_category: "admin",
        eval: rules::overdue_task,
    },
    Rule {
        id: "unconfirmed-appointment",
        name: "Appointments to confirm",
        description: "An appointment tomorrow that is proposed or pending, or whose patient participant has not accepted.",
        flag_category: "admin",
        eval: rules::unconfirmed_appointment,
    },
    Rule {
        id: "care-gap",
        name: "Care gaps",
        description: "Configured gaps: a condition with no required result or procedure within the window; routine immunizations due by age.",
        flag_category: "clinical",
        eval: rules::care_gaps,
    },
];

/// The resource types the rules read: the rest of a patient's record need not be parsed to
/// evaluate them (kept beside the rules; a rule reading a new type adds it here).
pub const READS: &[&str] = &[
    "Appointment",
    "CarePlan",
    "Communication",
    "Condition",
    "DiagnosticReport",
    "Encounter",
    "Immunization",
    "MedicationDispense",
    "MedicationRequest",
    "Observation",
    "Patient",
    "Procedure",
    "Task",
];

/// The rule with this id.
pub fn rule(id: &str) -> Option<&'static Rule> {
    RULES.iter().find(|r| r.id == id)
}

/// Every alert the rules report for `data` at `now`, each cause once. A deceased patient has
/// none: nothing on their record needs chasing.
pub fn evaluate(data: &PatientData, config: &Config, now_ms: i64) -> Vec<Alert> {
    if data.deceased() {
        return Vec::new();
    }
    let mut out: Vec<Alert> = Vec::new();
    for rule in RULES {
        for alert in (rule.eval)(data, config, now_ms) {
            if !out
                .iter()
                .any(|a| a.rule == alert.rule && a.cause == alert.cause)
            {
                out.push(alert);
            }
        }
    }
    out
}

#[derive(Debug, thiserror::Error)]
pub enum AlertError {
    #[error("alert rules configuration: {0}")]
    Config(String),
}
