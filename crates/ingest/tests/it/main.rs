//! Integration tests of the importer against a real store: a temporary SQLite file, or a fresh
//! PostgreSQL database when `RAPPORT_TEST_DATABASE_URL` is set (the same suite runs on both).

mod fixtures;
mod hard_cases;
mod helpers;
mod hl7;
mod semantics;
