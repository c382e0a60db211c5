//! SQLite side of [`AlertStore`] and [`AlertTx`] (schema in migrations/sqlite/0010_alerts.sql).

use rusqlite::{params, OptionalExtension, Row};

use crate::alerts::{
    plan_sync, status, AlertAction, AlertCandidate, AlertStore, AlertTx, StoredAlert, SweepState,
    SyncOp, SyncSummary,
};
use crate::sqlite::{SqliteStore, SqliteTx};
use crate::Result;

pub(crate) const COLUMNS: &str = "alert_id, patient_key, rule, cause, status, severity, title, why, focus, due_at, raised_at, updated_at, snoozed_until, reason, assigned_to, resolved_at";

fn alert_from_row(r: &Row<'_>) -> rusqlite::Result<StoredAlert> {
    Ok(StoredAlert {
        alert_id: r.get(0)?,
        patient_key: r.get(1)?,
        candidate: AlertCandidate {
            rule: r.get(2)?,
            cause: r.get(3)?,
            severity: r.get(5)?,
            title: r.get(6)?,
            why: r.get(7)?,
            focus: r.get(8)?,
            due_ms: r.get(9)?,
        },
        status: r.get(4)?,
        raised_ms: r.get(10)?,
        updated_ms: r.get(11)?,
        snoozed_until_ms: r.get(12)?,
        reason: r.get(13)?,
        assigned_to: r.get(14)?,
        resolved_ms: r.get(15)?,
    })
}

/// Mark the patients of versions being written as needing re-evaluation (called by the
/// writer's flush, in the same transaction).
pub(crate) fn mark_dirty<'a>(
    tx: &rusqlite::Connection,
    patients: impl IntoIterator<Item = &'a str>,
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT INTO alert_dirty (patient_key, marks) VALUES (?1, 1)
         ON CONFLICT (patient_key) DO UPDATE SET marks = marks + 1",
    )?;
    for p in patients {
        stmt.execute([p])?;
    }
    Ok(())
}

impl AlertTx for SqliteTx<'_> {
    fn sync_alerts(
        &mut self,
        patient_key: &str,
        candidates: &[AlertCandidate],
        now_ms: i64,
        marks: Option<i64>,
    ) -> Result<SyncSummary> {
        let existing = self
            .tx
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM alert WHERE patient_key = ?1"
            ))?
            .query_map([patient_key], alert_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        let mut summary = SyncSummary::default();
        for op in plan_sync(&existing, candidates, now_ms) {
            match op {
                SyncOp::Insert(c) => {
                    self.tx.prepare_cached(
                        "INSERT INTO alert (patient_key, rule, cause, status, severity, title, why, focus, due_at, raised_at, updated_at)
                         VALUES (?1, ?2, ?3, 'new', ?4, ?5, ?6, ?7, ?8, ?9, ?9)",
                    )?
                    .execute(params![patient_key, c.rule, c.cause, c.severity, c.title, c.why, c.focus, c.due_ms, now_ms])?;
                    summary.raised += 1;
                }
                SyncOp::Refresh {
                    alert_id,
                    candidate: c,
                    reopen,
                    wake,
                } => {
                    self.tx.prepare_cached(
                        "UPDATE alert SET severity = ?2, title = ?3, why = ?4, focus = ?5, due_at = ?6, updated_at = ?7,
                           status = CASE WHEN ?8 OR ?9 THEN 'new' ELSE status END,
                           raised_at = CASE WHEN ?8 THEN ?7 ELSE raised_at END,
                           resolved_at = CASE WHEN ?8 THEN NULL ELSE resolved_at END,
                           reason = CASE WHEN ?8 THEN NULL ELSE reason END,
                           snoozed_until = CASE WHEN ?8 OR ?9 THEN NULL ELSE snoozed_until END
                         WHERE alert_id = ?1",
                    )?
                    .execute(params![alert_id, c.severity, c.title, c.why, c.focus, c.due_ms, now_ms, reopen, wake])?;
                    if reopen {
                        summary.reopened += 1;
                    } else {
                        summary.refreshed += 1;
                    }
                }
                SyncOp::Resolve { alert_id } => {
                    self.tx.prepare_cached(
                        "UPDATE alert SET status = 'resolved', resolved_at = ?2, updated_at = ?2, reason = 'its cause went away' WHERE alert_id = ?1",
                    )?
                    .execute(params![alert_id, now_ms])?;
                    summary.resolved += 1;
                }
            }
        }
        if let Some(marks) = marks {
            self.tx
                .prepare_cached("DELETE FROM alert_dirty WHERE patient_key = ?1 AND marks = ?2")?
                .execute(params![patient_key, marks])?;
        }
        Ok(summary)
    }

    fn change_alert(
        &mut self,
        alert_id: i64,
        action: &AlertAction,
        now_ms: i64,
    ) -> Result<Option<StoredAlert>> {
        let found = self
            .tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM alert WHERE alert_id = ?1"))?
            .query_row([alert_id], alert_from_row)
            .optional()?;
        let Some(found) = found else { return Ok(None) };
        if found.status == status::RESOLVED {
            return Ok(Some(found));
        }
        let (st, until, reason, assign): (&str, Option<i64>, Option<&str>, Option<Option<i64>>) =
            match action {
                AlertAction::Acknowledge => (status::ACKNOWLEDGED, None, None, None),
                AlertAction::Snooze { until_ms } => (status::SNOOZED, Some(*until_ms), None, None),
                AlertAction::Dismiss { reason } => (status::DISMISSED, None, Some(reason), None),
                AlertAction::Reopen => (status::NEW, None, None, None),
                AlertAction::Assign { user_id } => (
                    found.status.as_str(),
                    found.snoozed_until_ms,
                    found.reason.as_deref(),
                    Some(*user_id),
                ),
            };
        self.tx
            .prepare_cached(
                "UPDATE alert SET status = ?2, snoozed_until = ?3, reason = ?4, updated_at = ?5,
                   assigned_to = CASE WHEN ?6 THEN ?7 ELSE assigned_to END
                 WHERE alert_id = ?1",
            )?
            .execute(params![
                alert_id,
                st,
                until,
                reason,
                now_ms,
                assign.is_some(),
                assign.flatten()
            ])?;
        let changed = self
            .tx
            .prepare_cached(&format!("SELECT {COLUMNS} FROM alert WHERE alert_id = ?1"))?
            .query_row([alert_id], alert_from_row)
            .optional()?;
        Ok(changed)
    }

    fn set_sweep(
        &mut self,
        cursor: &str,
        started_ms: i64,
        finished_ms: Option<i64>,
        evaluated: i64,
    ) -> Result<()> {
        self.tx
            .prepare_cached(
                "INSERT INTO alert_sweep (id, cursor, started_at, finished_at, evaluated) VALUES (1, ?1, ?2, ?3, ?4)
                 ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, started_at = excluded.started_at,
                   finished_at = excluded.finished_at, evaluated = excluded.evaluated",
            )?
            .execute(params![cursor, started_ms, finished_ms, evaluated])?;
        Ok(())
    }
}

impl AlertStore for SqliteStore {
    fn dirty_patients(&self, limit: u64) -> Result<Vec<(String, i64)>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached("SELECT patient_key, marks FROM alert_dirty LIMIT ?1")?
            .query_map([limit as i64], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn showing_alerts(
        &self,
        patients: &[String],
        now_ms: i64,
        limit: u64,
    ) -> Result<Vec<StoredAlert>> {
        let conn = self.readers.get()?;
        // The patients go in as one JSON array (json_each), not thousands of parameters.
        let keys = serde_json::to_string(patients).unwrap_or_else(|_| "[]".into());
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM alert
                 WHERE patient_key IN (SELECT value FROM json_each(?1))
                   AND status IN ('new', 'acknowledged', 'snoozed')
                   AND (status <> 'snoozed' OR snoozed_until IS NULL OR snoozed_until <= ?2)
                 ORDER BY severity, due_at IS NULL, due_at, raised_at DESC, alert_id
                 LIMIT ?3"
            ))?
            .query_map(params![keys, now_ms, limit as i64], alert_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn patient_alerts(&self, patient_key: &str, closed: bool) -> Result<Vec<StoredAlert>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM alert WHERE patient_key = ?1
                   AND (?2 OR status IN ('new', 'acknowledged', 'snoozed'))
                 ORDER BY status IN ('dismissed', 'resolved'), severity, updated_at DESC, alert_id"
            ))?
            .query_map(params![patient_key, closed], alert_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn alert(&self, alert_id: i64) -> Result<Option<StoredAlert>> {
        let conn = self.readers.get()?;
        let found = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM alert WHERE alert_id = ?1"))?
            .query_row([alert_id], alert_from_row)
            .optional()?;
        Ok(found)
    }

    fn patient_ids_after(&self, after: &str, limit: u64) -> Result<Vec<String>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached(
                "SELECT id FROM resource WHERE resource_type = 'Patient' AND deleted = 0 AND id > ?1 ORDER BY id LIMIT ?2",
            )?
            .query_map(params![after, limit as i64], |r| r.get(0))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn sweep_state(&self) -> Result<Option<SweepState>> {
        let conn = self.readers.get()?;
        let found = conn
            .prepare_cached(
                "SELECT cursor, started_at, finished_at, evaluated FROM alert_sweep WHERE id = 1",
            )?
            .query_row([], |r| {
                Ok(SweepState {
                    cursor: r.get(0)?,
                    started_ms: r.get(1)?,
                    finished_ms: r.get(2)?,
                    evaluated: r.get(3)?,
                })
            })
            .optional()?;
        Ok(found)
    }

    fn alert_counts(&self) -> Result<Vec<(String, u64)>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached("SELECT status, COUNT(*) FROM alert GROUP BY status ORDER BY status")?
            .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
