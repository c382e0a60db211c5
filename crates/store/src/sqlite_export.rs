//! SQLite side of [`ExportStore`] (schema in migrations/sqlite/0007_bulk_export.sql).

use rusqlite::{params, OptionalExtension, Row};

use crate::export::{ExportJob, ExportStore};
use crate::sqlite::SqliteStore;
use crate::Result;

const COLUMNS: &str =
    "job_id, user_id, request, status, transaction_time, created_at, finished_at, error, outputs";

fn job_from_row(r: &Row<'_>) -> rusqlite::Result<ExportJob> {
    Ok(ExportJob {
        job_id: r.get(0)?,
        user_id: r.get(1)?,
        request: r.get(2)?,
        status: r.get(3)?,
        transaction_time_ms: r.get(4)?,
        created_ms: r.get(5)?,
        finished_ms: r.get(6)?,
        error: r.get(7)?,
        outputs: r.get(8)?,
    })
}

impl ExportStore for SqliteStore {
    fn insert_export(&self, job: &ExportJob) -> Result<()> {
        let conn = self.writer.lock().expect("writer lock");
        conn.prepare_cached(&format!(
            "INSERT INTO export_job ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"
        ))?
        .execute(params![
            job.job_id,
            job.user_id,
            job.request,
            job.status,
            job.transaction_time_ms,
            job.created_ms,
            job.finished_ms,
            job.error,
            job.outputs
        ])?;
        Ok(())
    }

    fn export_job(&self, job_id: &str) -> Result<Option<ExportJob>> {
        let conn = self.readers.get()?;
        let job = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM export_job WHERE job_id = ?1"
            ))?
            .query_row([job_id], job_from_row)
            .optional()?;
        Ok(job)
    }

    fn finish_export(
        &self,
        job_id: &str,
        status: &str,
        outputs: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let conn = self.writer.lock().expect("writer lock");
        let n = conn
            .prepare_cached(
                "UPDATE export_job SET status = ?2, outputs = ?3, error = ?4, finished_at = ?5
                 WHERE job_id = ?1 AND (status = 'running' OR (?2 = 'cancelled' AND status = 'done'))",
            )?
            .execute(params![job_id, status, outputs, error, now_ms])?;
        Ok(n > 0)
    }

    fn fail_running_exports(&self, now_ms: i64) -> Result<u64> {
        let conn = self.writer.lock().expect("writer lock");
        let n = conn.execute(
            "UPDATE export_job SET status = 'failed', error = 'the server stopped before the export finished', finished_at = ?1
             WHERE status = 'running'",
            [now_ms],
        )?;
        Ok(n as u64)
    }
}
