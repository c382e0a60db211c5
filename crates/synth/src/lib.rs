//! Deterministic synthetic population for `rapport demo`, written as FHIR R4 transaction bundles.
//!
//! The generator gives a fresh installation something realistic to look at: a small care
//! directory (practices, a hospital with departments, a pharmacy, a community nursing service
//! and the people who work there) and then households of patients, each with a coherent
//! clinical story (chronic conditions and their medication, visits, vitals, labs, notes,
//! immunisations, appointments past and future).
//!
//! Three properties shape the design:
//!
//! * **Pure and reproducible.** No I/O and no clock: the caller passes `today`, and every
//!   random choice comes from a seeded [`rand_chacha::ChaCha8Rng`], so the same
//!   `(patients, seed, today)` always yields byte-identical bundles. Each household draws
//!   from its own ChaCha stream, so one household's story never shifts another's.
//! * **Streaming.** [`generate`] returns a lazy iterator: household bundles are built one at
//!   a time, so `rapport demo --patients 100000` needs memory for one household, not for the
//!   population.
//! * **Importable in any order.** Household bundles reach the directory only through
//!   conditional references (`Practitioner?identifier=…`, `Organization?identifier=…`), and
//!   everything inside a household uses `urn:uuid:` references to entries of the same bundle
//!   (FHIR R4 http.html#trules, bundle.html#references).
//!
//! Everything is invented: names are drawn from built-in lists of common given names and
//! surnames from many cultures, towns and streets are made up, telephone numbers use the
//! 555-01xx range reserved for fiction, e-mail addresses use `example.com` and NPIs start
//! with 9, which the NPPES has never issued.
#![forbid(unsafe_code)]

mod clinical;
mod codes;
mod directory;
mod fhir;
mod household;
mod names;
mod random;

use chrono::NaiveDate;
use serde_json::Value;

use crate::directory::Directory;

/// What to generate: how many patients, from which seed, as seen on which day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoConfig {
    pub patients: usize,
    pub seed: u64,
    pub today: NaiveDate,
}

/// One generated file: a name like "practitioners.json" or "household-000042.json", and a FHIR Bundle (serde_json::Value).
#[derive(Debug, Clone, PartialEq)]
pub struct DemoBundle {
    pub name: String,
    pub bundle: Value,
}

/// Streams bundles; must work for patients = 100_000 without holding the population in memory.
///
/// The first two bundles are the directory (`organizations.json`, then `practitioners.json`);
/// every following bundle is one household (`household-000001.json`, …). The households hold
/// exactly `config.patients` Patient resources between them.
pub fn generate(config: &DemoConfig) -> impl Iterator<Item = DemoBundle> {
    let directory = Directory::generate(config.patients, config.seed);
    let head = [
        DemoBundle {
            name: "organizations.json".to_owned(),
            bundle: directory.organizations_bundle(),
        },
        DemoBundle {
            name: "practitioners.json".to_owned(),
            bundle: directory.practitioners_bundle(),
        },
    ];
    head.into_iter().chain(Households {
        config: *config,
        directory,
        next_number: 1,
        patients_written: 0,
    })
}

/// The lazy part of [`generate`]: builds one household bundle per call to `next`.
struct Households {
    config: DemoConfig,
    directory: Directory,
    next_number: u64,
    patients_written: usize,
}

impl Iterator for Households {
    type Item = DemoBundle;

    fn next(&mut self) -> Option<DemoBundle> {
        let remaining = self.config.patients - self.patients_written;
        if remaining == 0 {
            return None;
        }
        let number = self.next_number;
        // Stream 0 belongs to the directory; household n draws from stream n, so its story
        // depends only on (seed, n) and on how many patients are still to be placed.
        let mut rng = random::stream(self.config.seed, number);
        let household = household::generate(
            &household::HouseholdInput {
                first_patient_ordinal: self.patients_written,
                max_members: remaining,
                seed: self.config.seed,
                today: self.config.today,
                directory: &self.directory,
            },
            &mut rng,
        );
        self.patients_written += household.patients;
        self.next_number += 1;
        Some(DemoBundle {
            name: format!("household-{number:06}.json"),
            bundle: household.bundle,
        })
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let remaining = self.config.patients - self.patients_written;
        (remaining.div_ceil(household::MAX_MEMBERS), Some(remaining))
    }
}
