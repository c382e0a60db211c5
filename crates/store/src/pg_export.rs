//! PostgreSQL side of [`ExportStore`] (schema in migrations/postgres/0007_bulk_export.sql).

use postgres::types::Type;
use postgres::Row;

use crate::export::{ExportJob, ExportStore};
use crate::pg::PgStore;
use crate::Result;

const COLUMNS: &str =
    "job_id, user_id, request, status, transaction_time, created_at, finished_at, error, outputs";

fn job_from_row(r: &Row) -> ExportJob {
    ExportJob {
        job_id: r.get(0),
        user_id: r.get(1),
        request: r.get(2),
        status: r.get(3),
        transaction_time_ms: r.get(4),
        created_ms: r.get(5),
        finished_ms: r.get(6),
        error: r.get(7),
        outputs: r.get(8),
    }
}

impl ExportStore for PgStore {
    fn insert_export(&self, job: &ExportJob) -> Result<()> {
        let mut c = self.pool.get()?;
        c.execute_typed(
            &format!(
                "INSERT INTO export_job ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
            ),
            &[
                (&job.job_id, Type::TEXT),
                (&job.user_id, Type::INT8),
                (&job.request, Type::TEXT),
                (&job.status, Type::TEXT),
                (&job.transaction_time_ms, Type::INT8),
                (&job.created_ms, Type::INT8),
                (&job.finished_ms, Type::INT8),
                (&job.error, Type::TEXT),
                (&job.outputs, Type::TEXT),
            ],
        )?;
        Ok(())
    }

    fn export_job(&self, job_id: &str) -> Result<Option<ExportJob>> {
        let mut c = self.pool.get()?;
        Ok(c.query_typed_opt(
            &format!("SELECT {COLUMNS} FROM export_job WHERE job_id = $1"),
            &[(&job_id, Type::TEXT)],
        )?
        .map(|r| job_from_row(&r)))
    }

    fn finish_export(
        &self,
        job_id: &str,
        status: &str,
        outputs: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool> {
        let mut c = self.pool.get()?;
        let n = c.execute_typed(
            "UPDATE export_job SET status = $2, outputs = $3, error = $4, finished_at = $5
             WHERE job_id = $1 AND (status = 'running' OR ($2 = 'cancelled' AND status = 'done'))",
            &[
                (&job_id, Type::TEXT),
                (&status, Type::TEXT),
                (&outputs, Type::TEXT),
                (&error, Type::TEXT),
                (&now_ms, Type::INT8),
            ],
        )?;
        Ok(n > 0)
    }

    fn fail_running_exports(&self, now_ms: i64) -> Result<u64> {
        let mut c = self.pool.get()?;
        Ok(c.execute_typed(
            "UPDATE export_job SET status = 'failed', error = 'the server stopped before the export finished', finished_at = $1
             WHERE status = 'running'",
            &[(&now_ms, Type::INT8)],
        )?)
    }
}
