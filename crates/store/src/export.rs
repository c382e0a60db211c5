//! Bulk Data export jobs (schema 7): the request, its owner and its state. The NDJSON files a job
//! writes are kept by the caller, outside the database.

use crate::Result;

/// One export job.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportJob {
    pub job_id: String,
    pub user_id: i64,
    /// The kick-off request URL (the manifest repeats it).
    pub request: String,
    /// `running`, `done`, `failed` or `cancelled`.
    pub status: String,
    /// Milliseconds since the epoch: the data is exported as of this moment.
    pub transaction_time_ms: i64,
    pub created_ms: i64,
    pub finished_ms: Option<i64>,
    pub error: Option<String>,
    /// JSON `[{"type": "Patient", "count": 12}, …]` once done.
    pub outputs: Option<String>,
}

/// Export jobs in the store.
pub trait ExportStore {
    fn insert_export(&self, job: &ExportJob) -> Result<()>;
    fn export_job(&self, job_id: &str) -> Result<Option<ExportJob>>;
    /// Record how a running job ended (`done` with its outputs, `failed` with the reason,
    /// `cancelled`, which also withdraws a finished job); a job that has ended otherwise is left
    /// as it is. Returns whether the job changed.
    fn finish_export(
        &self,
        job_id: &str,
        status: &str,
        outputs: Option<&str>,
        error: Option<&str>,
        now_ms: i64,
    ) -> Result<bool>;
    /// Jobs still `running` when the server starts were cut off by a stop: mark them failed.
    fn fail_running_exports(&self, now_ms: i64) -> Result<u64>;
}
