//! PostgreSQL side of [`Hl7Store`] and [`Hl7Tx`] (schema in migrations/postgres/0009_hl7_messages.sql).

use postgres::Row;

use crate::hl7::{Hl7Message, Hl7Outcome, Hl7Store, Hl7Tx, NewHl7Message};
use crate::pg::{PgStore, PgTx};
use crate::Result;

const COLUMNS: &str = "message_id, feed, sending_application, sending_facility, control_id, message_type, content_sha256, raw, received_at, status, ack_code, detail, patient_key, processed_at";

fn message_from_row(r: &Row) -> Hl7Message {
    let hash: Vec<u8> = r.get(6);
    Hl7Message {
        message_id: r.get(0),
        message: NewHl7Message {
            feed: r.get(1),
            sending_application: r.get(2),
            sending_facility: r.get(3),
            control_id: r.get(4),
            message_type: r.get(5),
            content_sha256: hash.try_into().unwrap_or([0; 32]),
            raw: r.get(7),
            received_at_ms: r.get(8),
            outcome: Hl7Outcome {
                status: r.get(9),
                ack_code: r.get(10),
                detail: r.get(11),
                patient_key: r.get(12),
                processed_at_ms: r.get(13),
            },
        },
    }
}

impl Hl7Tx for PgTx<'_> {
    fn hl7_by_control_id(
        &mut self,
        sending_application: &str,
        sending_facility: &str,
        control_id: &str,
    ) -> Result<Vec<(i64, [u8; 32], String)>> {
        let rows = self.tx.query(
            "SELECT message_id, content_sha256, status FROM hl7_message WHERE sending_application = $1 AND sending_facility = $2 AND control_id = $3 ORDER BY message_id",
            &[&sending_application, &sending_facility, &control_id],
        )?;
        Ok(rows
            .iter()
            .map(|r| {
                let hash: Vec<u8> = r.get(1);
                (r.get(0), hash.try_into().unwrap_or([0; 32]), r.get(2))
            })
            .collect())
    }

    fn insert_hl7_message(&mut self, m: &NewHl7Message) -> Result<i64> {
        let row = self.tx.query_one(
            "INSERT INTO hl7_message (feed, sending_application, sending_facility, control_id, message_type, content_sha256, raw, received_at, status, ack_code, detail, patient_key, processed_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) RETURNING message_id",
            &[
                &m.feed,
                &m.sending_application,
                &m.sending_facility,
                &m.control_id,
                &m.message_type,
                &&m.content_sha256[..],
                &m.raw,
                &m.received_at_ms,
                &m.outcome.status,
                &m.outcome.ack_code,
                &m.outcome.detail,
                &m.outcome.patient_key,
                &m.outcome.processed_at_ms,
            ],
        )?;
        Ok(row.get(0))
    }

    fn set_hl7_outcome(&mut self, message_id: i64, o: &Hl7Outcome) -> Result<()> {
        self.tx.execute(
            "UPDATE hl7_message SET status = $2, ack_code = $3, detail = $4, patient_key = $5, processed_at = $6 WHERE message_id = $1",
            &[&message_id, &o.status, &o.ack_code, &o.detail, &o.patient_key, &o.processed_at_ms],
        )?;
        Ok(())
    }
}

impl Hl7Store for PgStore {
    fn hl7_messages(
        &self,
        status: Option<&str>,
        before_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Hl7Message>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            &format!("SELECT {COLUMNS} FROM hl7_message WHERE ($1::text IS NULL OR status = $1) AND message_id < $2 ORDER BY message_id DESC LIMIT $3"),
            &[&status, &before_id.unwrap_or(i64::MAX), &(limit as i64)],
        )?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    fn hl7_message(&self, message_id: i64) -> Result<Option<Hl7Message>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            &format!("SELECT {COLUMNS} FROM hl7_message WHERE message_id = $1"),
            &[&message_id],
        )?;
        Ok(rows.first().map(message_from_row))
    }

    fn hl7_messages_of_patient(&self, patient_key: &str, limit: u64) -> Result<Vec<Hl7Message>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            &format!("SELECT {COLUMNS} FROM hl7_message WHERE patient_key = $1 ORDER BY message_id DESC LIMIT $2"),
            &[&patient_key, &(limit as i64)],
        )?;
        Ok(rows.iter().map(message_from_row).collect())
    }

    fn hl7_counts(&self) -> Result<Vec<(String, String, u64)>> {
        let mut c = self.pool.get()?;
        let rows = c.query(
            "SELECT feed, status, COUNT(*) FROM hl7_message GROUP BY feed, status ORDER BY feed, status",
            &[],
        )?;
        Ok(rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get::<_, i64>(2) as u64))
            .collect())
    }
}
