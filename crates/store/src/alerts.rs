//! Care-team alerts as stored: one row per patient, rule and cause, with its lifecycle (schema
//! 10). The rules themselves live in `rapport-alerts`; this layer keeps what they said and what
//! people did about it. [`plan_sync`] decides, for both backends, what an evaluation changes.

use crate::Result;

/// What a rule reports for a patient now (rapport_alerts::Alert, as the store keeps it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertCandidate {
    pub rule: String,
    pub cause: String,
    /// 0 critical, 1 high, 2 normal, 3 low.
    pub severity: i64,
    pub title: String,
    pub why: String,
    pub due_ms: Option<i64>,
    pub focus: Option<String>,
}

/// The lifecycle states (alert lifecycle of the Today screen).
pub mod status {
    pub const NEW: &str = "new";
    pub const ACKNOWLEDGED: &str = "acknowledged";
    pub const SNOOZED: &str = "snoozed";
    pub const DISMISSED: &str = "dismissed";
    pub const RESOLVED: &str = "resolved";
    /// States in which an alert is still someone's to deal with.
    pub const OPEN: [&str; 3] = [NEW, ACKNOWLEDGED, SNOOZED];
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAlert {
    pub alert_id: i64,
    pub patient_key: String,
    pub candidate: AlertCandidate,
    pub status: String,
    pub raised_ms: i64,
    pub updated_ms: i64,
    pub snoozed_until_ms: Option<i64>,
    /// Why it was dismissed, or what resolved it.
    pub reason: Option<String>,
    pub assigned_to: Option<i64>,
    pub resolved_ms: Option<i64>,
}

impl StoredAlert {
    /// Whether it is on someone's list at `now`: new or acknowledged, or snoozed until a time
    /// that has come.
    pub fn is_showing(&self, now_ms: i64) -> bool {
        match self.status.as_str() {
            status::NEW | status::ACKNOWLEDGED => true,
            status::SNOOZED => self.snoozed_until_ms.is_none_or(|t| t <= now_ms),
            _ => false,
        }
    }
}

/// One change an evaluation makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOp {
    /// A cause never seen for this patient: a new alert.
    Insert(AlertCandidate),
    /// A known alert whose cause is still there: its text, severity or due date may have
    /// moved; `reopen` when it had been resolved (the cause came back), `wake` when its snooze
    /// has ended (it is new again).
    Refresh {
        alert_id: i64,
        candidate: AlertCandidate,
        reopen: bool,
        wake: bool,
    },
    /// An open alert whose cause went away.
    Resolve { alert_id: i64 },
}

/// What an evaluation changed, for the audit trail and the live Today page.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncSummary {
    pub raised: usize,
    pub reopened: usize,
    pub resolved: usize,
    pub refreshed: usize,
    /// Tasks made from care plan activities that came due (written before the alerts).
    pub tasks_made: usize,
}

impl SyncSummary {
    /// Whether anyone's list changed (refreshed text included).
    pub fn changed(&self) -> bool {
        self.raised + self.reopened + self.resolved + self.refreshed + self.tasks_made > 0
    }
}

/// The changes that bring a patient's stored alerts in line with what the rules report now.
/// A dismissed alert stays dismissed while its cause lasts (someone decided it needs nothing);
/// a resolved one whose cause comes back is reopened. Unchanged alerts are left alone.
pub fn plan_sync(existing: &[StoredAlert], now: &[AlertCandidate], now_ms: i64) -> Vec<SyncOp> {
    let mut ops = Vec::new();
    for c in now {
        match existing
            .iter()
            .find(|e| e.candidate.rule == c.rule && e.candidate.cause == c.cause)
        {
            None => ops.push(SyncOp::Insert(c.clone())),
            Some(e) if e.status == status::DISMISSED => {}
            Some(e) => {
                let reopen = e.status == status::RESOLVED;
                let wake =
                    e.status == status::SNOOZED && e.snoozed_until_ms.is_some_and(|t| t <= now_ms);
                if reopen || wake || e.candidate != *c {
                    ops.push(SyncOp::Refresh {
                        alert_id: e.alert_id,
                        candidate: c.clone(),
                        reopen,
                        wake,
                    });
                }
            }
        }
    }
    for e in existing {
        let open = status::OPEN.contains(&e.status.as_str());
        let reported = now
            .iter()
            .any(|c| c.rule == e.candidate.rule && c.cause == e.candidate.cause);
        if open && !reported {
            ops.push(SyncOp::Resolve {
                alert_id: e.alert_id,
            });
        }
    }
    ops
}

/// Where the sweep stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SweepState {
    /// The last patient id evaluated.
    pub cursor: String,
    pub started_ms: i64,
    /// `None` while it runs (or was cut short: the next sweep resumes after `cursor`).
    pub finished_ms: Option<i64>,
    pub evaluated: i64,
}

/// A person's change to an alert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AlertAction {
    Acknowledge,
    /// Off the list until then.
    Snooze {
        until_ms: i64,
    },
    Dismiss {
        reason: String,
    },
    /// Back on the list (a snooze or dismissal undone).
    Reopen,
    /// Someone's to deal with (a user id), or nobody's.
    Assign {
        user_id: Option<i64>,
    },
}

impl AlertAction {
    pub fn label(&self) -> &'static str {
        match self {
            AlertAction::Acknowledge => "acknowledged",
            AlertAction::Snooze { .. } => "snoozed",
            AlertAction::Dismiss { .. } => "dismissed",
            AlertAction::Reopen => "reopened",
            AlertAction::Assign { .. } => "assigned",
        }
    }
}

/// Alert changes inside a write transaction (audited with them).
pub trait AlertTx {
    /// Apply an evaluation's result for one patient; `marks` is the dirty mark the evaluation
    /// started from (cleared only if no change arrived since).
    fn sync_alerts(
        &mut self,
        patient_key: &str,
        candidates: &[AlertCandidate],
        now_ms: i64,
        marks: Option<i64>,
    ) -> Result<SyncSummary>;
    /// A person's change; `None` if there is no such alert. A resolved alert cannot be
    /// changed (its cause is gone) except by being reopened by the rules.
    fn change_alert(
        &mut self,
        alert_id: i64,
        action: &AlertAction,
        now_ms: i64,
    ) -> Result<Option<StoredAlert>>;
    /// Where the sweep stands: the last patient evaluated (`None`: start over).
    fn set_sweep(
        &mut self,
        cursor: &str,
        started_ms: i64,
        finished_ms: Option<i64>,
        evaluated: i64,
    ) -> Result<()>;
}

/// Reading alerts.
pub trait AlertStore {
    /// Patients whose data changed since their last evaluation, with their marks, at most
    /// `limit`.
    fn dirty_patients(&self, limit: u64) -> Result<Vec<(String, i64)>>;
    /// The alerts on the lists of `patients` at `now_ms` (new, acknowledged, snoozed until a
    /// time that has come), most urgent first; at most `limit`.
    fn showing_alerts(
        &self,
        patients: &[String],
        now_ms: i64,
        limit: u64,
    ) -> Result<Vec<StoredAlert>>;
    /// Every alert of a patient, open first, newest first; closed ones only if `closed`.
    fn patient_alerts(&self, patient_key: &str, closed: bool) -> Result<Vec<StoredAlert>>;
    fn alert(&self, alert_id: i64) -> Result<Option<StoredAlert>>;
    /// Patient ids after `after`, in order, at most `limit` (the sweep's batches).
    fn patient_ids_after(&self, after: &str, limit: u64) -> Result<Vec<String>>;
    /// Where the sweep stands, if one ever ran.
    fn sweep_state(&self) -> Result<Option<SweepState>>;
    /// How many alerts are in each status.
    fn alert_counts(&self) -> Result<Vec<(String, u64)>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cand(cause: &str, why: &str) -> AlertCandidate {
        AlertCandidate {
            rule: "r".into(),
            cause: cause.into(),
            severity: 2,
            title: "t".into(),
            why: why.into(),
            due_ms: None,
            focus: None,
        }
    }

    fn stored(id: i64, cause: &str, status: &str, snoozed: Option<i64>) -> StoredAlert {
        StoredAlert {
            alert_id: id,
            patient_key: "p".into(),
            candidate: cand(cause, "w"),
            status: status.into(),
            raised_ms: 0,
            updated_ms: 0,
            snoozed_until_ms: snoozed,
            reason: None,
            assigned_to: None,
            resolved_ms: None,
        }
    }

    #[test]
    fn the_same_cause_again_changes_nothing() {
        let e = [stored(1, "a", status::ACKNOWLEDGED, None)];
        assert!(plan_sync(&e, &[cand("a", "w")], 10).is_empty());
    }

    #[test]
    fn new_causes_are_inserted_and_gone_ones_resolved() {
        let e = [
            stored(1, "a", status::NEW, None),
            stored(2, "b", status::RESOLVED, None),
        ];
        let ops = plan_sync(&e, &[cand("c", "w")], 10);
        assert_eq!(
            ops,
            vec![
                SyncOp::Insert(cand("c", "w")),
                SyncOp::Resolve { alert_id: 1 }
            ]
        );
    }

    #[test]
    fn dismissed_stays_dismissed_and_resolved_reopens() {
        let e = [
            stored(1, "a", status::DISMISSED, None),
            stored(2, "b", status::RESOLVED, None),
        ];
        let ops = plan_sync(&e, &[cand("a", "w"), cand("b", "w")], 10);
        assert_eq!(
            ops,
            vec![SyncOp::Refresh {
                alert_id: 2,
                candidate: cand("b", "w"),
                reopen: true,
                wake: false
            }]
        );
    }

    #[test]
    fn a_snooze_ends_at_its_time() {
        let e = [stored(1, "a", status::SNOOZED, Some(100))];
        assert!(plan_sync(&e, &[cand("a", "w")], 99).is_empty());
        assert!(!e[0].is_showing(99));
        assert!(e[0].is_showing(100));
        let ops = plan_sync(&e, &[cand("a", "w")], 100);
        assert!(matches!(ops[..], [SyncOp::Refresh { wake: true, .. }]));
    }
}
