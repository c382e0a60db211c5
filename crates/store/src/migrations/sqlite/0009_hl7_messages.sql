-- Rapport schema 9 (SQLite): HL7 v2 messages as received (crates/store/src/hl7.rs).
-- A message is recorded in the same transaction as the data mapped from it, and only then
-- acknowledged AA; one that fails is recorded with the reason and acknowledged AE (or AR), so
-- nothing a sender was told about is ever lost. The raw bytes are patient data: the row carries
-- the patient key once the message is mapped (NULL for messages that could not be).
CREATE TABLE hl7_message (
    message_id          INTEGER PRIMARY KEY,
    patient_key         TEXT,
    feed                TEXT NOT NULL,    -- "mllp 127.0.0.1:51234", or a file name
    sending_application TEXT NOT NULL,    -- MSH-3
    sending_facility    TEXT NOT NULL,    -- MSH-4
    control_id          TEXT NOT NULL,    -- MSH-10
    message_type        TEXT NOT NULL,    -- MSH-9, e.g. ADT^A01
    content_sha256      BLOB NOT NULL,
    raw                 BLOB NOT NULL,    -- the bytes as received (MSH-18 says their encoding)
    received_at         INTEGER NOT NULL,
    status              TEXT NOT NULL,    -- applied, ignored, error, rejected
    ack_code            TEXT NOT NULL,    -- AA, AE, AR
    detail              TEXT,             -- why it failed; positions, never values
    processed_at        INTEGER NOT NULL
);
-- A resend is the same (MSH-3, MSH-4, MSH-10) with the same content (hard case B45).
CREATE INDEX hl7_message_by_control_id ON hl7_message (sending_application, sending_facility, control_id);
CREATE INDEX hl7_message_by_status ON hl7_message (status, message_id);
CREATE INDEX hl7_message_by_patient ON hl7_message (patient_key) WHERE patient_key IS NOT NULL;
