//! SQLite side of [`Hl7Store`] and [`Hl7Tx`] (schema in migrations/sqlite/0009_hl7_messages.sql).

use rusqlite::{params, OptionalExtension, Row};

use crate::hl7::{Hl7Message, Hl7Outcome, Hl7Store, Hl7Tx, NewHl7Message};
use crate::sqlite::{SqliteStore, SqliteTx};
use crate::Result;

const COLUMNS: &str = "message_id, feed, sending_application, sending_facility, control_id, message_type, content_sha256, raw, received_at, status, ack_code, detail, patient_key, processed_at";

fn message_from_row(r: &Row<'_>) -> rusqlite::Result<Hl7Message> {
    let hash: Vec<u8> = r.get(6)?;
    Ok(Hl7Message {
        message_id: r.get(0)?,
        message: NewHl7Message {
            feed: r.get(1)?,
            sending_application: r.get(2)?,
            sending_facility: r.get(3)?,
            control_id: r.get(4)?,
            message_type: r.get(5)?,
            content_sha256: hash.try_into().unwrap_or([0; 32]),
            raw: r.get(7)?,
            received_at_ms: r.get(8)?,
            outcome: Hl7Outcome {
                status: r.get(9)?,
                ack_code: r.get(10)?,
                detail: r.get(11)?,
                patient_key: r.get(12)?,
                processed_at_ms: r.get(13)?,
            },
        },
    })
}

impl Hl7Tx for SqliteTx<'_> {
    fn hl7_by_control_id(
        &mut self,
        sending_application: &str,
        sending_facility: &str,
        control_id: &str,
    ) -> Result<Vec<(i64, [u8; 32], String)>> {
        let rows = self
            .tx
            .prepare_cached("SELECT message_id, content_sha256, status FROM hl7_message WHERE sending_application = ?1 AND sending_facility = ?2 AND control_id = ?3 ORDER BY message_id")?
            .query_map(params![sending_application, sending_facility, control_id], |r| {
                let hash: Vec<u8> = r.get(1)?;
                Ok((r.get(0)?, hash.try_into().unwrap_or([0; 32]), r.get(2)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn insert_hl7_message(&mut self, m: &NewHl7Message) -> Result<i64> {
        self.tx
            .prepare_cached(
                "INSERT INTO hl7_message (feed, sending_application, sending_facility, control_id, message_type, content_sha256, raw, received_at, status, ack_code, detail, patient_key, processed_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                m.feed,
                m.sending_application,
                m.sending_facility,
                m.control_id,
                m.message_type,
                &m.content_sha256[..],
                m.raw,
                m.received_at_ms,
                m.outcome.status,
                m.outcome.ack_code,
                m.outcome.detail,
                m.outcome.patient_key,
                m.outcome.processed_at_ms
            ])?;
        Ok(self.tx.last_insert_rowid())
    }

    fn set_hl7_outcome(&mut self, message_id: i64, o: &Hl7Outcome) -> Result<()> {
        self.tx
            .prepare_cached("UPDATE hl7_message SET status = ?2, ack_code = ?3, detail = ?4, patient_key = ?5, processed_at = ?6 WHERE message_id = ?1")?
            .execute(params![message_id, o.status, o.ack_code, o.detail, o.patient_key, o.processed_at_ms])?;
        Ok(())
    }
}

impl Hl7Store for SqliteStore {
    fn hl7_messages(
        &self,
        status: Option<&str>,
        before_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Hl7Message>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM hl7_message WHERE (?1 IS NULL OR status = ?1) AND message_id < ?2 ORDER BY message_id DESC LIMIT ?3"
            ))?
            .query_map(
                params![status, before_id.unwrap_or(i64::MAX), limit as i64],
                message_from_row,
            )?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn hl7_message(&self, message_id: i64) -> Result<Option<Hl7Message>> {
        let conn = self.readers.get()?;
        let found = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM hl7_message WHERE message_id = ?1"
            ))?
            .query_row([message_id], message_from_row)
            .optional()?;
        Ok(found)
    }

    fn hl7_messages_of_patient(&self, patient_key: &str, limit: u64) -> Result<Vec<Hl7Message>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached(&format!(
                "SELECT {COLUMNS} FROM hl7_message WHERE patient_key = ?1 ORDER BY message_id DESC LIMIT ?2"
            ))?
            .query_map(params![patient_key, limit as i64], message_from_row)?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }

    fn hl7_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let conn = self.readers.get()?;
        let rows = conn
            .prepare_cached("SELECT feed, status, COUNT(*) FROM hl7_message GROUP BY feed, status ORDER BY feed, status")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get::<_, i64>(2)? as u64)))?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(rows)
    }
}
