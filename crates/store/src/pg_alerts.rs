//! PostgreSQL side of [`AlertStore`] and [`AlertTx`] (schema in migrations/postgres/0010_alerts.sql).

use postgres::Row;

use crate::alerts::{
    plan_sync, status, AlertAction, AlertCandidate, AlertStore, AlertTx, StoredAlert, SweepState,
    SyncOp, SyncSummary,
};
use crate::pg::{PgStore, PgTx};
use crate::Result;

const COLUMNS: &str = "alert_id, patient_key, rule, cause, status, severity::bigint, title, why, focus, due_at, raised_at, updated_at, snoozed_until, reason, assigned_to, resolved_at";

fn alert_from_row(r: &Row) -> StoredAlert {
    StoredAlert {
        alert_id: r.get(0),
        patient_key: r.get(1),
        candidate: AlertCandidate {
            rule: r.get(2),
            cause: r.get(3),
            severity: r.get(5),
            title: r.get(6),
            why: r.get(7),
            focus: r.get(8),
            due_ms: r.get(9),
        },
        status: r.get(4),
        raised_ms: r.get(10),
        updated_ms: r.get(11),
        snoozed_until_ms: r.get(12),
        reason: r.get(13),
        assigned_to: r.get(14),
        resolved_ms: r.get(15),
    }
}

/// Mark the patients of versions being written as needing re-evaluation (the writer's flush,
/// same transaction): one statement for all of them.
pub(crate) fn mark_dirty(tx: &mut postgres::Transaction<'_>, patients: &[&str]) -> Result<()> {
    if patients.is_empty() {
        return Ok(());
    }
    tx.execute(
        "INSERT INTO alert_dirty (patient_key, marks) SELECT p, 1 FROM UNNEST($1::text[]) AS p
         ON CONFLICT (patient_key) DO UPDATE SET marks = alert_dirty.marks + 1",
        &[&patients],
    )?;
    Ok(())
}

impl AlertTx for PgTx<'_> {
    fn sync_alerts(
        &mut self,
        patient_key: &str,
        candidates: &[AlertCandidate],
        now_ms: i64,
        marks: Option<i64>,
    ) -> Result<SyncSummary> {
        let existing: Vec<StoredAlert> = self
            .tx
            .query(
                &format!("SELECT {COLUMNS} FROM alert WHERE patient_key = $1 FOR UPDATE"),
                &[&patient_key],
            )?
            .iter()
            .map(alert_from_row)
            .collect();
        let mut summary = SyncSummary::default();
        for op in plan_sync(&existing, candidates, now_ms) {
            match op {
                SyncOp::Insert(c) => {
                    self.tx.execute(
                        "INSERT INTO alert (patient_key, rule, cause, status, severity, title, why, focus, due_at, raised_at, updated_at)
                         VALUES ($1, $2, $3, 'new', $4::bigint::int, $5, $6, $7, $8, $9, $9)",
                        &[&patient_key, &c.rule, &c.cause, &c.severity, &c.title, &c.why, &c.focus, &c.due_ms, &now_ms],
                    )?;
                    summary.raised += 1;
                }
                SyncOp::Refresh {
                    alert_id,
                    candidate: c,
                    reopen,
                    wake,
                } => {
                    self.tx.execute(
                        "UPDATE alert SET severity = $3::bigint::int, title = $4, why = $5, focus = $6, due_at = $7, updated_at = $8,
                           status = CASE WHEN $9 OR $10 THEN 'new' ELSE status END,
                           raised_at = CASE WHEN $9 THEN $8 ELSE raised_at END,
                           resolved_at = CASE WHEN $9 THEN NULL ELSE resolved_at END,
                           reason = CASE WHEN $9 THEN NULL ELSE reason END,
                           snoozed_until = CASE WHEN $9 OR $10 THEN NULL ELSE snoozed_until END
                         WHERE patient_key = $1 AND alert_id = $2",
                        &[&patient_key, &alert_id, &c.severity, &c.title, &c.why, &c.focus, &c.due_ms, &now_ms, &reopen, &wake],
                    )?;
                    if reopen {
                        summary.reopened += 1;
                    } else {
                        summary.refreshed += 1;
                    }
                }
                SyncOp::Resolve { alert_id } => {
                    self.tx.execute(
                        "UPDATE alert SET status = 'resolved', resolved_at = $3, updated_at = $3, reason = 'its cause went away' WHERE patient_key = $1 AND alert_id = $2",
                        &[&patient_key, &alert_id, &now_ms],
                    )?;
                    summary.resolved += 1;
                }
            }
        }
        if let Some(marks) = marks {
            self.tx.execute(
                "DELETE FROM alert_dirty WHERE patient_key = $1 AND marks = $2",
                &[&patient_key, &marks],
            )?;
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
            .query(
                &format!("SELECT {COLUMNS} FROM alert WHERE alert_id = $1 FOR UPDATE"),
                &[&alert_id],
            )?
            .first()
            .map(alert_from_row);
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
        let row = self.tx.query_one(
            &format!(
                "UPDATE alert SET status = $3, snoozed_until = $4, reason = $5, updated_at = $6,
                   assigned_to = CASE WHEN $7 THEN $8 ELSE assigned_to END
                 WHERE patient_key = $1 AND alert_id = $2 RETURNING {COLUMNS}"
            ),
            &[
                &found.patient_key,
                &alert_id,
                &st,
                &until,
                &reason,
                &now_ms,
                &assign.is_some(),
                &assign.flatten(),
            ],
        )?;
        Ok(Some(alert_from_row(&row)))
    }

    fn set_sweep(
        &mut self,
        cursor: &str,
        started_ms: i64,
        finished_ms: Option<i64>,
        evaluated: i64,
    ) -> Result<()> {
        self.tx.execute(
            "INSERT INTO alert_sweep (id, cursor, started_at, finished_at, evaluated) VALUES (1, $1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET cursor = excluded.cursor, started_at = excluded.started_at,
               finished_at = excluded.finished_at, evaluated = excluded.evaluated",
            &[&cursor, &started_ms, &finished_ms, &evaluated],
        )?;
        Ok(())
    }
}

impl AlertStore for PgStore {
    fn dirty_patients(&self, limit: u64) -> Result<Vec<(String, i64)>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            "SELECT patient_key, marks FROM alert_dirty LIMIT $1",
            &[&(limit as i64)],
        )?;
        Ok(rows.iter().map(|r| (r.get(0), r.get(1))).collect())
    }

    fn showing_alerts(
        &self,
        patients: &[String],
        now_ms: i64,
        limit: u64,
    ) -> Result<Vec<StoredAlert>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            &format!(
                "SELECT {COLUMNS} FROM alert
                 WHERE patient_key = ANY($1)
                   AND status IN ('new', 'acknowledged', 'snoozed')
                   AND (status <> 'snoozed' OR snoozed_until IS NULL OR snoozed_until <= $2)
                 ORDER BY severity, due_at IS NULL, due_at, raised_at DESC, alert_id
                 LIMIT $3"
            ),
            &[&patients, &now_ms, &(limit as i64)],
        )?;
        Ok(rows.iter().map(alert_from_row).collect())
    }

    fn patient_alerts(&self, patient_key: &str, closed: bool) -> Result<Vec<StoredAlert>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            &format!(
                "SELECT {COLUMNS} FROM alert WHERE patient_key = $1
                   AND ($2 OR status IN ('new', 'acknowledged', 'snoozed'))
                 ORDER BY status IN ('dismissed', 'resolved'), severity, updated_at DESC, alert_id"
            ),
            &[&patient_key, &closed],
        )?;
        Ok(rows.iter().map(alert_from_row).collect())
    }

    fn alert(&self, alert_id: i64) -> Result<Option<StoredAlert>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            &format!("SELECT {COLUMNS} FROM alert WHERE alert_id = $1"),
            &[&alert_id],
        )?;
        Ok(rows.first().map(alert_from_row))
    }

    fn patient_ids_after(&self, after: &str, limit: u64) -> Result<Vec<String>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            "SELECT id FROM resource WHERE resource_type = 'Patient' AND NOT deleted AND id > $1 ORDER BY id LIMIT $2",
            &[&after, &(limit as i64)],
        )?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    fn sweep_state(&self) -> Result<Option<SweepState>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            "SELECT cursor, started_at, finished_at, evaluated FROM alert_sweep WHERE id = 1",
            &[],
        )?;
        Ok(rows.first().map(|r| SweepState {
            cursor: r.get(0),
            started_ms: r.get(1),
            finished_ms: r.get(2),
            evaluated: r.get(3),
        }))
    }

    fn alert_counts(&self) -> Result<Vec<(String, u64)>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            "SELECT status, COUNT(*) FROM alert GROUP BY status ORDER BY status",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect())
    }
}
