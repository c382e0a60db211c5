//! HL7 v2 messages as received (feeds over MLLP, files): the raw bytes, where they came from,
//! and what became of them. Kept so that an acknowledged message is never lost, a duplicate is
//! recognised (hard cases B45, B46), an error can be reviewed and the message re-processed.

use crate::Result;

/// A message to record, with its outcome.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHl7Message {
    /// Where it came from: `mllp 127.0.0.1:51234`, or a file name.
    pub feed: String,
    /// MSH-3, MSH-4 and MSH-10: with the content hash, the key that recognises a resend.
    pub sending_application: String,
    pub sending_facility: String,
    pub control_id: String,
    /// MSH-9 as `ADT^A01` (empty when the message could not be parsed).
    pub message_type: String,
    pub content_sha256: [u8; 32],
    /// The bytes as received (a message need not be UTF-8: MSH-18).
    pub raw: Vec<u8>,
    pub received_at_ms: i64,
    pub outcome: Hl7Outcome,
}

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Outcome {
    /// `applied` (its data is stored), `ignored` (nothing to store: an ACK), `error` (parsed
    /// but not mapped or not written: kept for review and re-processing), `rejected` (could
    /// not be parsed).
    pub status: String,
    /// The acknowledgement code sent: AA, AE or AR.
    pub ack_code: String,
    /// Why it failed, or a warning (never patient data: segment and field positions).
    pub detail: Option<String>,
    /// The patient the message is about, once mapped.
    pub patient_key: Option<String>,
    pub processed_at_ms: i64,
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hl7Message {
    pub message_id: i64,
    pub message: NewHl7Message,
}

/// Recording messages, inside the write transaction that stores what they say.
pub trait Hl7Tx {
    /// Messages already received with this MSH-3, MSH-4 and MSH-10: id, content hash, status.
    fn hl7_by_control_id(
        &mut self,
        sending_application: &str,
        sending_facility: &str,
        control_id: &str,
    ) -> Result<Vec<(i64, [u8; 32], String)>>;
    fn insert_hl7_message(&mut self, message: &NewHl7Message) -> Result<i64>;
    /// A new outcome for a stored message (a re-processing).
    fn set_hl7_outcome(&mut self, message_id: i64, outcome: &Hl7Outcome) -> Result<()>;
}

/// Reading recorded messages (the Interfaces page).
pub trait Hl7Store {
    /// The newest messages first, at most `limit`, only those with `status` if given, only
    /// those received before `before_id` if given.
    fn hl7_messages(
        &self,
        status: Option<&str>,
        before_id: Option<i64>,
        limit: u64,
    ) -> Result<Vec<Hl7Message>>;
    fn hl7_message(&self, message_id: i64) -> Result<Option<Hl7Message>>;
    /// The messages about one patient, newest first, at most `limit`.
    fn hl7_messages_of_patient(&self, patient_key: &str, limit: u64) -> Result<Vec<Hl7Message>>;
    /// Messages by status, per feed: `(feed, status, count)`.
    fn hl7_counts(&self) -> Result<Vec<(String, String, u64)>>;
}
