//! Rule parameters: the defaults in `defaults.toml` (compiled in), overridden key by key by an
//! administrator's file. Unknown keys are refused with the key named, so a typo does not
//! silently leave a default in place.

use serde::Deserialize;

use crate::codes::CodeSet;
use crate::AlertError;

/// The defaults, as an administrator would write them (shown at /admin/alerts).
pub const DEFAULTS_TOML: &str = include_str!("defaults.toml");

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub utc_offset_minutes: i64,
    pub missed_appointment: MissedAppointment,
    pub unconfirmed_appointment: Toggle,
    pub refill_due: RefillDue,
    pub discharge_follow_up: DischargeFollowUp,
    pub abnormal_result: AbnormalResult,
    pub overdue_task: Toggle,
    pub care_plan_tasks: CarePlanTasks,
    #[serde(default)]
    pub care_gap: Vec<CareGap>,
    #[serde(default)]
    pub immunization_gap: Vec<ImmunizationGap>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Toggle {
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MissedAppointment {
    pub enabled: bool,
    pub grace_hours: i64,
    pub lookback_days: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RefillDue {
    pub enabled: bool,
    pub warn_days: i64,
    pub stale_days: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct DischargeFollowUp {
    pub enabled: bool,
    pub within_days: i64,
    pub lookback_days: i64,
    pub inpatient_classes: Vec<String>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AbnormalResult {
    pub enabled: bool,
    pub window_days: i64,
    pub abnormal_codes: Vec<String>,
    pub critical_codes: Vec<String>,
}

/// Care plan activities that become tasks when due (crate::plans).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CarePlanTasks {
    pub enabled: bool,
    pub days_ahead: i64,
    pub lookback_days: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CareGap {
    pub id: String,
    pub title: String,
    pub conditions: CodeSet,
    pub required: CodeSet,
    pub within_days: i64,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ImmunizationGap {
    pub id: String,
    pub title: String,
    pub min_age_years: i64,
    #[serde(default)]
    pub max_age_years: Option<i64>,
    pub vaccines: CodeSet,
    #[serde(default)]
    pub every_days: Option<i64>,
}

impl Default for Config {
    fn default() -> Self {
        Config::from_toml("").expect("the compiled-in defaults are valid")
    }
}

impl Config {
    /// The defaults with `text` (an administrator's TOML) laid over them: tables merge key by
    /// key; a value (an array included) replaces the default. `[[care_gap]]` and
    /// `[[immunization_gap]]` given in the file replace the default lists.
    pub fn from_toml(text: &str) -> Result<Config, AlertError> {
        let mut merged: toml::Table = DEFAULTS_TOML.parse().map_err(|e: toml::de::Error| {
            AlertError::Config(format!("compiled-in defaults: {e}"))
        })?;
        let given: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| AlertError::Config(e.to_string()))?;
        merge(&mut merged, given);
        let config: Config = toml::Value::Table(merged)
            .try_into()
            .map_err(|e: toml::de::Error| AlertError::Config(e.to_string()))?;
        config.check()?;
        Ok(config)
    }

    fn check(&self) -> Result<(), AlertError> {
        let windows = [
            (
                "missed_appointment.grace_hours",
                self.missed_appointment.grace_hours,
            ),
            (
                "missed_appointment.lookback_days",
                self.missed_appointment.lookback_days,
            ),
            ("refill_due.warn_days", self.refill_due.warn_days),
            ("refill_due.stale_days", self.refill_due.stale_days),
            (
                "discharge_follow_up.within_days",
                self.discharge_follow_up.within_days,
            ),
            (
                "discharge_follow_up.lookback_days",
                self.discharge_follow_up.lookback_days,
            ),
            (
                "abnormal_result.window_days",
                self.abnormal_result.window_days,
            ),
            (
                "care_plan_tasks.days_ahead",
                self.care_plan_tasks.days_ahead,
            ),
            (
                "care_plan_tasks.lookback_days",
                self.care_plan_tasks.lookback_days,
            ),
        ];
        for (key, value) in windows {
            if value < 0 {
                return Err(AlertError::Config(format!("{key} must not be negative")));
            }
        }
        let mut ids = std::collections::BTreeSet::new();
        for id in self
            .care_gap
            .iter()
            .map(|g| &g.id)
            .chain(self.immunization_gap.iter().map(|g| &g.id))
        {
            if !ids.insert(id) {
                return Err(AlertError::Config(format!(
                    "the gap id {id:?} is used twice"
                )));
            }
        }
        Ok(())
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(a)), toml::Value::Table(b)) => merge(a, b),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_parse() {
        let c = Config::default();
        assert_eq!(c.refill_due.warn_days, 7);
        assert_eq!(c.discharge_follow_up.within_days, 2);
        assert_eq!(c.care_gap.len(), 2);
        assert_eq!(c.care_gap[0].within_days, 183);
    }

    #[test]
    fn a_file_overrides_key_by_key() {
        let c = Config::from_toml("[refill_due]\nwarn_days = 3\n").unwrap();
        assert_eq!(c.refill_due.warn_days, 3);
        assert_eq!(c.refill_due.stale_days, 60);
        assert!(c.missed_appointment.enabled);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let e = Config::from_toml("[refill_due]\nwarn_dayz = 3\n").unwrap_err();
        assert!(e.to_string().contains("warn_dayz"), "{e}");
        let e = Config::from_toml("[refill_due]\nwarn_days = -1\n").unwrap_err();
        assert!(e.to_string().contains("refill_due.warn_days"), "{e}");
        let e = Config::from_toml("[[care_gap]]\nid = \"x\"\ntitle = \"t\"\nconditions = [\"nocode\"]\nrequired = []\nwithin_days = 1\n").unwrap_err();
        assert!(e.to_string().contains("SYSTEM|CODE"), "{e}");
    }
}
