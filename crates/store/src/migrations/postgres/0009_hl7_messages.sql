-- Rapport schema 9 (PostgreSQL): HL7 v2 messages as received (crates/store/src/hl7.rs).
-- A message is recorded in the same transaction as the data mapped from it, and only then
-- acknowledged AA; one that fails is recorded with the reason and acknowledged AE (or AR), so
-- nothing a sender was told about is ever lost. The raw bytes are patient data: the row carries
-- the patient key once the message is mapped (NULL for messages that could not be).
CREATE TABLE hl7_message (
    message_id          BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_key         TEXT,
    feed                TEXT NOT NULL,
    sending_application TEXT NOT NULL,
    sending_facility    TEXT NOT NULL,
    control_id          TEXT NOT NULL,
    message_type        TEXT NOT NULL,
    content_sha256      BYTEA NOT NULL,
    raw                 BYTEA NOT NULL,
    received_at         BIGINT NOT NULL,
    status              TEXT NOT NULL,
    ack_code            TEXT NOT NULL,
    detail              TEXT,
    processed_at        BIGINT NOT NULL
);
CREATE INDEX hl7_message_by_control_id ON hl7_message (sending_application, sending_facility, control_id);
CREATE INDEX hl7_message_by_status ON hl7_message (status, message_id);
CREATE INDEX hl7_message_by_patient ON hl7_message (patient_key) WHERE patient_key IS NOT NULL;
