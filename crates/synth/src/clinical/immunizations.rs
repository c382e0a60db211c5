//! Immunisations, by CVX code.
//!
//! Children get the main doses of the routine schedule from birth (roughly the CDC childhood
//! schedule: hepatitis B at birth; DTaP, IPV, Hib and pneumococcal from two months; MMR,
//! varicella and hepatitis A at a year; boosters at four; Tdap, HPV and meningococcal at
//! eleven to sixteen). Adults get what falls inside the story window: seasonal influenza (more often
//! when older or chronically ill), COVID-19 boosters, a Tdap booster every ten years, and
//! pneumococcal and zoster vaccines when old enough.

use chrono::{Datelike, NaiveDate};
use serde_json::json;

use super::{add_days, at, random_day, Story};
use crate::codes::{self, Code};
use crate::fhir::{self, Transaction};
use crate::random::{self, SynthRng};

/// (age in days, vaccines given at that age): the main doses of the schedule, leaving out
/// the optional and catch-up ones.
const CHILDHOOD_SCHEDULE: &[(i64, &[Code])] = &[
    (0, &[codes::HEPATITIS_B_VACCINE]),
    (
        61,
        &[
            codes::DTAP_VACCINE,
            codes::IPV_VACCINE,
            codes::HIB_VACCINE,
            codes::PNEUMOCOCCAL_CONJUGATE_VACCINE,
        ],
    ),
    (
        122,
        &[
            codes::DTAP_VACCINE,
            codes::IPV_VACCINE,
            codes::HIB_VACCINE,
            codes::PNEUMOCOCCAL_CONJUGATE_VACCINE,
        ],
    ),
    (
        183,
        &[
            codes::DTAP_VACCINE,
            codes::PNEUMOCOCCAL_CONJUGATE_VACCINE,
            codes::HEPATITIS_B_VACCINE,
        ],
    ),
    (
        365,
        &[
            codes::MMR_VACCINE,
            codes::VARICELLA_VACCINE,
            codes::HEPATITIS_A_VACCINE,
        ],
    ),
    (
        1_461,
        &[
            codes::DTAP_VACCINE,
            codes::IPV_VACCINE,
            codes::MMR_VACCINE,
            codes::VARICELLA_VACCINE,
        ],
    ),
    (
        4_018,
        &[
            codes::TDAP_VACCINE,
            codes::HPV_VACCINE,
            codes::MENINGOCOCCAL_VACCINE,
        ],
    ),
    (5_844, &[codes::MENINGOCOCCAL_VACCINE]),
];

pub(super) fn write(rng: &mut SynthRng, story: &Story, transaction: &mut Transaction) {
    let today = story.today();
    let birth = story.person().birth_date;
    let age = story.age_today();
    let mut given: Vec<(NaiveDate, Code)> = Vec::new();

    if age < 18 {
        for (age_days, vaccines) in CHILDHOOD_SCHEDULE {
            // Given on time or up to a few weeks late.
            let date = add_days(birth, age_days + random::between(rng, 0, 21));
            if date < today {
                given.extend(vaccines.iter().map(|vaccine| (date, *vaccine)));
            }
        }
    } else {
        // The last ten-yearly Tdap booster, whenever it fell.
        if random::chance(rng, 0.7) {
            let date = random_day(
                rng,
                add_days(today, -3_650).max(add_days(birth, 18 * 365)),
                today,
            );
            given.push((date, codes::TDAP_VACCINE));
        }
        if age >= 65 && random::chance(rng, 0.7) {
            let date = random_day(rng, add_days(birth, 65 * 365), today);
            given.push((date, codes::PNEUMOCOCCAL_POLYSACCHARIDE_VACCINE));
        }
        if age >= 50 && random::chance(rng, 0.35) {
            let date = random_day(
                rng,
                add_days(birth, 50 * 365).max(add_days(today, -5 * 365)),
                today,
            );
            given.push((date, codes::ZOSTER_VACCINE));
        }
    }

    // Autumn campaigns (October and November) for influenza and COVID-19.
    let at_risk = age >= 65 || !story.chronic.is_empty();
    let flu_chance = match age {
        0 => 0.0,
        1..=17 => 0.45,
        _ if at_risk => 0.75,
        _ => 0.35,
    };
    let covid_chance = match age {
        ..=17 => 0.0,
        65.. => 0.6,
        _ if at_risk => 0.4,
        _ => 0.2,
    };
    for year in story.window_start.year()..=today.year() {
        let season_start = NaiveDate::from_ymd_opt(year, 10, 1).expect("1 October exists");
        let season_end = NaiveDate::from_ymd_opt(year, 12, 1).expect("1 December exists");
        if season_start >= today || season_end <= story.window_start {
            continue;
        }
        let window = |rng: &mut SynthRng| {
            random_day(
                rng,
                season_start.max(story.window_start),
                season_end.min(today),
            )
        };
        if random::chance(rng, flu_chance) {
            let date = window(rng);
            given.push((date, codes::INFLUENZA_VACCINE));
        }
        if random::chance(rng, covid_chance) {
            let date = window(rng);
            given.push((date, codes::COVID_19_VACCINE));
        }
    }

    given.sort_by_key(|(date, _)| *date);
    let nurse = story
        .clinician(story.context.care.practice_nurse)
        .reference();
    for (date, vaccine) in given {
        if date >= today || date < birth {
            continue;
        }
        let lot = format!(
            "{}{:05}",
            (b'A' + random::between(rng, 0, 25) as u8) as char,
            random::between(rng, 0, 99_999)
        );
        let given_at = at(date, random::between(rng, 9, 16) as u32, 0);
        transaction.add(
            "Immunization",
            random::uuid(rng),
            json!({
                "status": "completed",
                "vaccineCode": fhir::concept(vaccine),
                "patient": story.subject(),
                "occurrenceDateTime": fhir::instant(given_at),
                "primarySource": true,
                "lotNumber": lot,
                "performer": [{ "actor": nurse }],
            }),
        );
    }
}
