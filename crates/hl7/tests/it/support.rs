//! Helpers shared by the tests.

use std::path::PathBuf;

use rapport_hl7::{escape, parse, Message, Parsed};

/// Joins segments with CR, the standard terminator, and ends the last one with CR too.
pub fn cr(segments: &[&str]) -> String {
    let mut out = segments.join("\r");
    out.push('\r');
    out
}

/// Parses text that must parse, printing the error otherwise.
pub fn parse_ok(input: &str) -> Parsed<'_> {
    match parse(input) {
        Ok(parsed) => parsed,
        Err(error) => panic!("parse failed: {error}\ninput: {input:?}"),
    }
}

/// The folder of the shared HL7 v2 fixtures: `RAPPORT_HL7_FIXTURES` if set, else
/// `shared/fixtures/hl7v2` found above the crate (standalone or inside the workspace),
/// else `/work/shared/fixtures/hl7v2`. `None` (and a message) when absent, so that the
/// fixture tests skip rather than fail on a checkout without `shared/`.
pub fn fixtures_dir() -> Option<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let candidates = std::env::var_os("RAPPORT_HL7_FIXTURES")
        .map(PathBuf::from)
        .into_iter()
        .chain([
            manifest.join("../../shared/fixtures/hl7v2"),
            manifest.join("../../../shared/fixtures/hl7v2"),
            PathBuf::from("/work/shared/fixtures/hl7v2"),
        ]);
    for candidate in candidates {
        if candidate.is_dir() {
            return Some(candidate);
        }
    }
    eprintln!(
        "SKIPPED: the HL7 v2 fixture folder (shared/fixtures/hl7v2) was not found; \
         set RAPPORT_HL7_FIXTURES to its path"
    );
    None
}

/// Every decoded leaf value (subcomponent) of every field of every segment, with its
/// position, MSH-1 and MSH-2 excepted.
pub fn leaf_values(message: &Message<'_>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for segment in message.segments() {
        for (f, field) in segment.fields().enumerate() {
            if segment.id() == "MSH" && f < 2 {
                continue;
            }
            for (r, repetition) in field.repetitions().enumerate() {
                for (c, component) in repetition.components().enumerate() {
                    for (s, sub) in component.subcomponents().enumerate() {
                        let at = format!(
                            "{}({})-{}({}).{}.{}",
                            segment.id(),
                            segment.position(),
                            f + 1,
                            r + 1,
                            c + 1,
                            s + 1
                        );
                        out.push((at, sub.value().into_owned()));
                    }
                }
            }
        }
    }
    out
}

/// Writes the message again from its decoded leaf values, escaping each with [`escape`]:
/// parsing the result must give the same values (B01's re-encoding rule).
pub fn reencode(message: &Message<'_>) -> String {
    let d = message.delimiters();
    let text = |c: Option<char>| c.map(String::from).unwrap_or_default();
    let mut segments = Vec::new();
    for segment in message.segments() {
        let mut fields = vec![segment.id().to_owned()];
        for (f, field) in segment.fields().enumerate() {
            if segment.id() == "MSH" && f == 0 {
                continue; // MSH-1 is the separator between "MSH" and MSH-2
            }
            if segment.id() == "MSH" && f == 1 {
                fields.push(field.raw().to_owned());
                continue;
            }
            let repetitions: Vec<String> = field
                .repetitions()
                .map(|repetition| {
                    let components: Vec<String> = repetition
                        .components()
                        .map(|component| {
                            let subs: Vec<String> = component
                                .subcomponents()
                                .map(|sub| escape(&sub.value(), d))
                                .collect();
                            subs.join(&text(d.subcomponent()))
                        })
                        .collect();
                    components.join(&d.component().to_string())
                })
                .collect();
            fields.push(repetitions.join(&text(d.repetition())));
        }
        segments.push(fields.join(&d.field().to_string()));
    }
    segments.join("\r")
}
