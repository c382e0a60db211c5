//! The integration tests of rapport-hl7: the hard cases from `shared/hard-cases.md` (each
//! test cites its id), the real sample files in `shared/fixtures/hl7v2`, edge cases, and the
//! acknowledgment builder.

mod ack;
mod edge_cases;
mod escaping;
mod fixtures;
mod hard_cases;
mod map;
mod map_cases;
mod map_support;
mod support;
