//! End-to-end tests of the `rapport` application: the real HTTP app on port 0 against a fresh
//! store (SQLite, or PostgreSQL when `RAPPORT_TEST_DATABASE_URL` is set), the real binary's
//! commands, and the console in headless Chromium.

mod access;
mod browser;
mod cli;
mod clients;
mod console;
mod fhir;
mod helpers;
mod hl7;
mod plans;
mod smart;
mod today;
