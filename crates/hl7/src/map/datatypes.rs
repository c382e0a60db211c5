//! HL7 v2 datatypes (chapter 2A, v2.8 numbering) as FHIR R4 datatypes, following the
//! v2-to-FHIR guide's datatype maps (<https://build.fhir.org/ig/HL7/v2-to-fhir/datatype_maps.html>):
//! CX → Identifier, HD/EI → identifier systems, XPN → HumanName, XAD → Address,
//! XTN → ContactPoint, CWE/CE → CodeableConcept, XCN → Practitioner, DTM → date/dateTime/instant,
//! NM → decimal, SN → Quantity/Range/Ratio, CQ → Quantity, PL → a display, TQ → a timing text.
//!
//! Every reader treats the HL7 null `""` as not sent: a FHIR resource has no "delete this
//! element" value, and leaving the element out of a full update removes it anyway.

use serde_json::{json, Value};

use super::codes;
use super::{Ctx, Seg};
use crate::{Component, Field, Repetition};

/// A business identifier: system and value (FHIR Identifier).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Ident {
    pub(crate) system: String,
    pub(crate) value: String,
}

impl Ident {
    pub(crate) fn new(system: impl Into<String>, value: impl Into<String>) -> Self {
        Ident {
            system: system.into(),
            value: value.into(),
        }
    }

    /// The search that finds it: `identifier=system|value`, percent-encoded
    /// (search.html#token).
    pub(crate) fn query(&self) -> String {
        format!(
            "identifier={}|{}",
            encode_query(&self.system),
            encode_query(&self.value)
        )
    }

    /// `system|value`, percent-encoded, as one token of a search.
    pub(crate) fn token(&self) -> String {
        format!(
            "{}|{}",
            encode_query(&self.system),
            encode_query(&self.value)
        )
    }

    pub(crate) fn json(&self) -> Value {
        json!({ "system": self.system, "value": self.value })
    }

    /// A conditional reference to a resource of type `ty` with this identifier.
    pub(crate) fn conditional_reference(&self, ty: &str) -> String {
        format!("{ty}?{}", self.query())
    }
}

/// A stable opaque value for identifiers Rapport derives from several parts (allergy, problem,
/// related person): the first 16 bytes of SHA-256 over the parts, in hex.
pub(crate) fn derived_value(parts: &[&str]) -> String {
    use sha2::{Digest, Sha256};
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part.as_bytes());
        hasher.update([0x1f]);
    }
    hex::encode(&hasher.finalize()[..16])
}

fn encode(s: &str, keep: impl Fn(u8) -> bool) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if keep(b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a search value: everything but letters, digits and `-._~:/`.
pub(crate) fn encode_query(s: &str) -> String {
    encode(s, |b| b.is_ascii_alphanumeric() || b"-._~:/".contains(&b))
}

/// Percent-encodes a part of a URN (RFC 8141): everything but letters, digits and `-._~`.
pub(crate) fn encode_urn_part(s: &str) -> String {
    encode(s, |b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// A trimmed value, with the HL7 null `""` read as empty.
pub(crate) fn clean(s: &str) -> String {
    let s = s.trim();
    if s == "\"\"" {
        String::new()
    } else {
        s.to_owned()
    }
}

/// Component `n` of a repetition, decoded and cleaned.
pub(crate) fn comp(rep: &Repetition<'_>, n: usize) -> String {
    clean(&rep.component(n).value())
}

/// Subcomponent `n` of a component, decoded and cleaned.
pub(crate) fn sub(c: &Component<'_>, n: usize) -> String {
    clean(&c.subcomponent(n).value())
}

/// The first value of a field, decoded and cleaned.
pub(crate) fn first(field: &Field<'_>) -> String {
    clean(&field.value())
}

/// A code element's value: trimmed, inner whitespace collapsed (datatypes.html#code).
pub(crate) fn code(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// True for an ISO object identifier (`2.16.840.1.113883`).
fn is_oid(s: &str) -> bool {
    let mut arcs = s.split('.');
    matches!(arcs.next(), Some("0" | "1" | "2"))
        && s.contains('.')
        && s.split('.')
            .all(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()))
}

/// The identifier system an assigning authority (HD: namespace id, universal id, universal id
/// type; or EI-2..4) stands for: `urn:oid:` for ISO OIDs, `urn:uuid:` for UUIDs, a URI as is,
/// else `urn:rapport:hl7v2:authority:<namespace id>` (the v2-to-fhir guide leaves the namespace
/// lookup to the implementer; hard case B39: two authorities are two systems).
pub(crate) fn authority_system(namespace: &str, universal: &str, kind: &str) -> Option<String> {
    let (namespace, universal) = (namespace.trim(), universal.trim());
    let kind = kind.trim().to_ascii_uppercase();
    if !universal.is_empty() {
        match kind.as_str() {
            "ISO" if is_oid(universal) => return Some(format!("urn:oid:{universal}")),
            "UUID" | "GUID" => return Some(format!("urn:uuid:{}", universal.to_lowercase())),
            "URI" | "URL" if !universal.contains(char::is_whitespace) => {
                return Some(universal.to_owned())
            }
            _ if namespace.is_empty() && is_oid(universal) => {
                return Some(format!("urn:oid:{universal}"))
            }
            _ => {}
        }
    }
    let name = if namespace.is_empty() {
        universal
    } else {
        namespace
    };
    if name.is_empty() {
        return None;
    }
    if is_oid(name) {
        return Some(format!("urn:oid:{name}"));
    }
    let lower = name.to_ascii_lowercase();
    if (lower.starts_with("http://") || lower.starts_with("https://") || lower.starts_with("urn:"))
        && !name.contains(char::is_whitespace)
    {
        return Some(name.to_owned());
    }
    Some(format!(
        "urn:rapport:hl7v2:authority:{}",
        encode_urn_part(name)
    ))
}

/// An HD component (namespace & universal id & type as subcomponents) as a system.
pub(crate) fn hd_system(c: &Component<'_>) -> Option<String> {
    authority_system(&sub(c, 1), &sub(c, 2), &sub(c, 3))
}

/// An EI repetition (entity id ^ namespace ^ universal id ^ type): value and system.
pub(crate) fn entity_identifier(rep: &Repetition<'_>, default_system: &str) -> Option<Ident> {
    let value = comp(rep, 1);
    if value.is_empty() {
        return None;
    }
    let system = authority_system(&comp(rep, 2), &comp(rep, 3), &comp(rep, 4))
        .unwrap_or_else(|| default_system.to_owned());
    Some(Ident::new(system, value))
}

/// A FHIR decimal from an HL7 NM: sign, digits and one point (`+5` → `5`, `.5` → `0.5`,
/// `007` → `7`, `5.` → `5`), digits after the point kept as sent (json.html#decimal).
pub(crate) fn decimal(s: &str) -> Option<Value> {
    let s = s.trim();
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty()
        || !int.bytes().all(|b| b.is_ascii_digit())
        || !frac.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let int = int.trim_start_matches('0');
    let mut out = String::new();
    if negative && (int.bytes().any(|b| b != b'0') || frac.bytes().any(|b| b != b'0')) {
        out.push('-');
    }
    out.push_str(if int.is_empty() { "0" } else { int });
    if !frac.is_empty() {
        out.push('.');
        out.push_str(frac);
    }
    serde_json::from_str(&out).ok()
}

/// A non-negative integer (unsignedInt).
pub(crate) fn unsigned(s: &str) -> Option<Value> {
    let n: u32 = s.trim().parse().ok()?;
    Some(json!(n))
}

/// An HL7 DTM: `YYYY[MM[DD[HH[MM[SS[.S[S[S[S]]]]]]]]][+/-ZZZZ]` (chapter 2A.22).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Dtm {
    /// The digits before any fraction: 4 (year) to 14 (seconds).
    digits: String,
    fraction: String,
    /// Minutes east of UTC, when the value has an offset.
    offset: Option<i32>,
}

impl Dtm {
    /// Reads a DTM, `None` when it is not one or names an impossible date or time.
    pub(crate) fn parse(raw: &str) -> Option<Dtm> {
        let raw = raw.trim();
        let (main, offset) = match raw.get(4..).and_then(|r| r.find(['+', '-'])) {
            Some(i) => {
                let (main, zone) = raw.split_at(i + 4);
                (main, Some(parse_offset(zone)?))
            }
            None => (raw, None),
        };
        let (digits, fraction) = main.split_once('.').unwrap_or((main, ""));
        if !digits.bytes().all(|b| b.is_ascii_digit())
            || !fraction.bytes().all(|b| b.is_ascii_digit())
            || ![4, 6, 8, 10, 12, 14].contains(&digits.len())
            || (!fraction.is_empty() && digits.len() != 14)
            || main.ends_with('.')
        {
            return None;
        }
        let num = |from: usize, len: usize| -> Option<u32> {
            digits.get(from..from + len).map(|d| d.parse().unwrap_or(0))
        };
        let year = num(0, 4)?;
        if year == 0 {
            return None;
        }
        if let Some(month) = num(4, 2) {
            if !(1..=12).contains(&month) {
                return None;
            }
            if let Some(day) = num(6, 2) {
                if day == 0 || day > days_in_month(year, month) {
                    return None;
                }
            }
        }
        if num(8, 2).is_some_and(|h| h > 23)
            || num(10, 2).is_some_and(|m| m > 59)
            || num(12, 2).is_some_and(|s| s > 59)
        {
            return None;
        }
        Some(Dtm {
            digits: digits.to_owned(),
            fraction: fraction.to_owned(),
            offset,
        })
    }

    /// The date part at its precision: `YYYY`, `YYYY-MM` or `YYYY-MM-DD` (datatypes.html#date).
    pub(crate) fn date(&self) -> String {
        let d = &self.digits;
        match d.len() {
            4 => d.clone(),
            6 => format!("{}-{}", &d[..4], &d[4..6]),
            _ => format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..8]),
        }
    }

    /// A FHIR dateTime at the same precision; a time gets seconds (FHIR requires them) and
    /// the value's offset, else `default_offset` minutes.
    pub(crate) fn date_time(&self, default_offset: i32) -> String {
        if self.digits.len() <= 8 {
            return self.date();
        }
        self.with_time(default_offset)
    }

    /// A FHIR instant: always to the second with an offset (a date alone becomes midnight).
    pub(crate) fn instant(&self, default_offset: i32) -> String {
        let mut padded = self.clone();
        while padded.digits.len() < 8 {
            padded.digits.push_str("01");
        }
        padded.with_time(default_offset)
    }

    fn with_time(&self, default_offset: i32) -> String {
        let d = &self.digits;
        let part = |from: usize| d.get(from..from + 2).unwrap_or("00");
        let mut out = format!("{}T{}:{}:{}", self.date_full(), part(8), part(10), part(12));
        if !self.fraction.is_empty() {
            out.push('.');
            out.push_str(&self.fraction);
        }
        out.push_str(&format_offset(self.offset.unwrap_or(default_offset)));
        out
    }

    fn date_full(&self) -> String {
        let d = &self.digits;
        let part = |from: usize| d.get(from..from + 2).unwrap_or("01");
        format!("{}-{}-{}", &d[..4], part(4), part(6))
    }

    /// The same local time `minutes` later (at least minute precision; the offset kept).
    pub(crate) fn plus_minutes(&self, minutes: i64) -> Option<Dtm> {
        let d = format!("{:0<12}", self.digits);
        let num = |from: usize, len: usize| d[from..from + len].parse::<i64>().ok();
        let (mut year, mut month, mut day) = (num(0, 4)?, num(4, 2)?.max(1), num(6, 2)?.max(1));
        let total = num(8, 2)? * 60 + num(10, 2)? + minutes;
        let mut days = total.div_euclid(1440);
        let in_day = total.rem_euclid(1440);
        while days > 0 {
            day += 1;
            if day > i64::from(days_in_month(year as u32, month as u32)) {
                day = 1;
                month += 1;
                if month > 12 {
                    month = 1;
                    year += 1;
                }
            }
            days -= 1;
        }
        if days < 0 {
            return None;
        }
        let mut digits = format!(
            "{year:04}{month:02}{day:02}{:02}{:02}",
            in_day / 60,
            in_day % 60
        );
        if self.digits.len() == 14 {
            digits.push_str(&self.digits[12..14]);
        }
        Some(Dtm {
            digits,
            fraction: if self.digits.len() == 14 {
                self.fraction.clone()
            } else {
                String::new()
            },
            offset: self.offset,
        })
    }

    /// The digits, for keys made of a time.
    pub(crate) fn digits(&self) -> &str {
        &self.digits
    }
}

fn days_in_month(year: u32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year.is_multiple_of(4) && !year.is_multiple_of(100)) || year.is_multiple_of(400) => {
            29
        }
        2 => 28,
        _ => 31,
    }
}

/// `+HHMM` / `-HHMM` as minutes east of UTC, within FHIR's -14:00..+14:00.
fn parse_offset(zone: &str) -> Option<i32> {
    let sign = match zone.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let digits = &zone[1..];
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let hours: i32 = digits[..2].parse().ok()?;
    let minutes: i32 = digits[2..].parse().ok()?;
    if minutes > 59 || hours * 60 + minutes > 14 * 60 {
        return None;
    }
    Some(sign * (hours * 60 + minutes))
}

fn format_offset(minutes: i32) -> String {
    let sign = if minutes < 0 { '-' } else { '+' };
    let m = minutes.abs().min(14 * 60);
    format!("{sign}{:02}:{:02}", m / 60, m % 60)
}

/// Standard Base64 (RFC 4648 section 4) with padding, as FHIR base64Binary is written.
pub(crate) fn base64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Base64 text as a sender wrote it, without line breaks or spaces; `None` when it is not
/// Base64 (datatypes.html#base64Binary).
pub(crate) fn clean_base64(text: &str) -> Option<String> {
    let out: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let body = out.trim_end_matches('=');
    let valid = !out.is_empty()
        && out.len() - body.len() <= 2
        && body
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/');
    valid.then_some(out)
}

/// The parts of a CWE/CE (identifier, text, coding system, alternate identifier, text and
/// system, system version, alternate version, original text).
#[derive(Debug, Default, Clone)]
pub(crate) struct Cwe {
    pub(crate) code: String,
    pub(crate) text: String,
    pub(crate) system: String,
    pub(crate) alt_code: String,
    pub(crate) alt_text: String,
    pub(crate) alt_system: String,
    pub(crate) version: String,
    pub(crate) original_text: String,
}

impl Cwe {
    /// A CWE written as the components of a repetition.
    pub(crate) fn from_rep(rep: &Repetition<'_>) -> Cwe {
        Cwe {
            code: comp(rep, 1),
            text: comp(rep, 2),
            system: comp(rep, 3),
            alt_code: comp(rep, 4),
            alt_text: comp(rep, 5),
            alt_system: comp(rep, 6),
            version: comp(rep, 7),
            original_text: comp(rep, 9),
        }
    }

    /// A CWE written as the subcomponents of one component (CQ units, for instance).
    pub(crate) fn from_component(c: &Component<'_>) -> Cwe {
        Cwe {
            code: sub(c, 1),
            text: sub(c, 2),
            system: sub(c, 3),
            alt_code: sub(c, 4),
            alt_text: sub(c, 5),
            alt_system: sub(c, 6),
            version: sub(c, 7),
            original_text: sub(c, 9),
        }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.code.is_empty() && self.text.is_empty() && self.original_text.is_empty()
    }

    /// The CodeableConcept (v2-to-fhir CWE[CodeableConcept]): a coding per identifier with
    /// its system from the coding system name, text from CWE-9 else CWE-2.
    pub(crate) fn concept(&self) -> Option<Value> {
        if self.is_empty() {
            return None;
        }
        // Free text in CWE-1 alone (RXE-7 instructions, OBX-5 of careless senders) is text,
        // not a code.
        if self.text.is_empty() && self.system.is_empty() && self.code.contains(char::is_whitespace)
        {
            return Some(json!({ "text": self.code }));
        }
        let mut codings = Vec::new();
        if let Some(c) = coding(&self.code, &self.text, &self.system, &self.version) {
            codings.push(c);
        }
        if let Some(c) = coding(&self.alt_code, &self.alt_text, &self.alt_system, "") {
            codings.push(c);
        }
        let text = if self.original_text.is_empty() {
            self.text.clone()
        } else {
            self.original_text.clone()
        };
        Some(json!({ "coding": codings, "text": text }))
    }

    /// The first coding alone (for elements of type Coding).
    pub(crate) fn coding(&self) -> Option<Value> {
        coding(&self.code, &self.text, &self.system, &self.version)
    }

    /// The best display text: original text, text, else the code.
    pub(crate) fn display(&self) -> String {
        [&self.original_text, &self.text, &self.code, &self.alt_text]
            .into_iter()
            .find(|s| !s.is_empty())
            .cloned()
            .unwrap_or_default()
    }
}

/// A Coding; the system from the HL7 coding system name (table 0396) when it is known.
pub(crate) fn coding(
    code_value: &str,
    display: &str,
    system: &str,
    version: &str,
) -> Option<Value> {
    let code_value = code(code_value);
    if code_value.is_empty() {
        return None;
    }
    let uri = codes::coding_system_uri(system);
    Some(json!({
        "system": uri,
        "version": if uri.is_some() { version } else { "" },
        "code": code_value,
        "display": display,
    }))
}

/// A coding in a known system.
pub(crate) fn fixed_coding(system: &str, code_value: &str, display: &str) -> Value {
    json!({ "system": system, "code": code_value, "display": display })
}

/// A person's name and identifier as an XCN (v2.8: 1 id, 2 family, 3 given, 4 further given,
/// 5 suffix, 6 prefix, 7 degree, 9 assigning authority, 13 identifier type) or a CNN.
#[derive(Debug, Default, Clone)]
pub(crate) struct Person {
    pub(crate) id: String,
    pub(crate) family: String,
    pub(crate) given: Vec<String>,
    pub(crate) prefix: String,
    pub(crate) suffix: Vec<String>,
    pub(crate) system: Option<String>,
}

impl Person {
    pub(crate) fn from_xcn(rep: &Repetition<'_>) -> Person {
        Person {
            id: comp(rep, 1),
            family: clean(&rep.component(2).subcomponent(1).value()),
            given: [comp(rep, 3), comp(rep, 4)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            prefix: comp(rep, 6),
            suffix: [comp(rep, 5), comp(rep, 7)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            system: hd_system(&rep.component(9)),
        }
    }

    /// A CNN written as subcomponents of one component (OBR-32.1): id & family & given &
    /// further given & suffix & prefix & degree & source table & namespace & universal id & type.
    pub(crate) fn from_cnn(c: &Component<'_>) -> Person {
        Person {
            id: sub(c, 1),
            family: sub(c, 2),
            given: [sub(c, 3), sub(c, 4)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            prefix: sub(c, 6),
            suffix: [sub(c, 5), sub(c, 7)]
                .into_iter()
                .filter(|s| !s.is_empty())
                .collect(),
            system: authority_system(&sub(c, 9), &sub(c, 10), &sub(c, 11)),
        }
    }

    pub(crate) fn has_name(&self) -> bool {
        !self.family.is_empty() || !self.given.is_empty()
    }

    pub(crate) fn name(&self) -> Value {
        json!({
            "family": self.family,
            "given": self.given,
            "prefix": [self.prefix],
            "suffix": self.suffix,
        })
    }

    pub(crate) fn display(&self) -> String {
        let mut parts: Vec<&str> = Vec::new();
        if !self.prefix.is_empty() {
            parts.push(&self.prefix);
        }
        parts.extend(self.given.iter().map(String::as_str));
        if !self.family.is_empty() {
            parts.push(&self.family);
        }
        parts.join(" ")
    }
}

/// The numbers of a structured numeric (SN, chapter 2A): comparator, first number,
/// separator or suffix, second number.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Sn {
    /// `>` `5` → a Quantity with a comparator (or none for `=`).
    Quantity {
        comparator: Option<&'static str>,
        value: Value,
    },
    /// `1` `-` `5`.
    Range { low: Value, high: Value },
    /// `1` `:` `128` or `1` `/` `2`.
    Ratio {
        numerator: Value,
        denominator: Value,
    },
    /// Anything else (`2` `+`, `<>`), as text.
    Text(String),
}

impl Sn {
    pub(crate) fn from_rep(rep: &Repetition<'_>) -> Option<Sn> {
        let (cmp, n1, sep, n2) = (comp(rep, 1), comp(rep, 2), comp(rep, 3), comp(rep, 4));
        if cmp.is_empty() && n1.is_empty() && sep.is_empty() && n2.is_empty() {
            return None;
        }
        let text = || Sn::Text(format!("{cmp}{n1}{sep}{n2}"));
        let comparator = match cmp.as_str() {
            "" | "=" => None,
            "<" => Some("<"),
            ">" => Some(">"),
            "<=" => Some("<="),
            ">=" => Some(">="),
            _ => return Some(text()),
        };
        let (Some(first), second) = (decimal(&n1), decimal(&n2)) else {
            return Some(text());
        };
        Some(match (sep.as_str(), second) {
            ("", None) if n2.is_empty() => Sn::Quantity {
                comparator,
                value: first,
            },
            ("-", Some(high)) if comparator.is_none() => Sn::Range { low: first, high },
            (":" | "/", Some(denominator)) if comparator.is_none() => Sn::Ratio {
                numerator: first,
                denominator,
            },
            _ => text(),
        })
    }
}

impl Ctx<'_, '_> {
    fn date_warning(&mut self, at: &str) {
        self.warn(format!("{at}: not a valid HL7 date/time, left out"));
    }

    /// An optional DTM as a FHIR dateTime; an invalid one is left out with a warning.
    pub(crate) fn date_time(&mut self, raw: &str, at: &str) -> Option<String> {
        let raw = clean(raw);
        if raw.is_empty() {
            return None;
        }
        match Dtm::parse(&raw) {
            Some(d) => Some(d.date_time(self.options.default_offset_minutes)),
            None => {
                self.date_warning(at);
                None
            }
        }
    }

    /// An optional DTM as a FHIR date (the time, if any, dropped).
    pub(crate) fn date(&mut self, raw: &str, at: &str) -> Option<String> {
        let raw = clean(raw);
        if raw.is_empty() {
            return None;
        }
        match Dtm::parse(&raw) {
            Some(d) => Some(d.date()),
            None => {
                self.date_warning(at);
                None
            }
        }
    }

    /// An optional DTM as a FHIR instant.
    pub(crate) fn instant(&mut self, raw: &str, at: &str) -> Option<String> {
        let raw = clean(raw);
        if raw.is_empty() {
            return None;
        }
        match Dtm::parse(&raw) {
            Some(d) => Some(d.instant(self.options.default_offset_minutes)),
            None => {
                self.date_warning(at);
                None
            }
        }
    }

    /// A required DTM field as a dateTime: 101 when absent, 102 when not a date.
    pub(crate) fn required_date_time(
        &self,
        seg: Seg<'_>,
        field: usize,
    ) -> Result<String, super::MapError> {
        self.required_dtm(seg, field)
            .map(|d| d.date_time(self.options.default_offset_minutes))
    }

    /// A required DTM field as an instant: 101 when absent, 102 when not a date.
    pub(crate) fn required_instant(
        &self,
        seg: Seg<'_>,
        field: usize,
    ) -> Result<String, super::MapError> {
        self.required_dtm(seg, field)
            .map(|d| d.instant(self.options.default_offset_minutes))
    }

    fn required_dtm(&self, seg: Seg<'_>, field: usize) -> Result<Dtm, super::MapError> {
        use crate::ErrorCode;
        let raw = first(&seg.field(field));
        if raw.is_empty() {
            return Err(seg.error(
                field,
                ErrorCode::RequiredFieldMissing,
                &format!("{} is required", seg.at(field)),
            ));
        }
        Dtm::parse(&raw).ok_or_else(|| {
            seg.error(
                field,
                ErrorCode::DataTypeError,
                &format!("{} is not a valid HL7 date/time", seg.at(field)),
            )
        })
    }

    /// A FHIR Period from two DTMs.
    pub(crate) fn period(&mut self, start: &str, end: &str, at: &str) -> Value {
        json!({ "start": self.date_time(start, at), "end": self.date_time(end, at) })
    }

    /// XPN → HumanName (v2-to-fhir XPN[HumanName]): 1.1 family, 2 and 3 given, 4 suffix,
    /// 5 prefix, 6 degree as suffix, 7 name type (table 0200) → use, 10 or 12/13 → period.
    pub(crate) fn human_name(&mut self, rep: &Repetition<'_>, at: &str) -> Option<Value> {
        let family = clean(&rep.component(1).subcomponent(1).value());
        let given: Vec<String> = [comp(rep, 2), comp(rep, 3)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        if family.is_empty() && given.is_empty() {
            return None;
        }
        let validity = rep.component(10);
        let period = json!({
            "start": self.date_time(&first_non_empty(&sub(&validity, 1), &comp(rep, 12)), at),
            "end": self.date_time(&first_non_empty(&sub(&validity, 2), &comp(rep, 13)), at),
        });
        Some(json!({
            "use": codes::name_use(&comp(rep, 7)),
            "family": family,
            "given": given,
            "prefix": [comp(rep, 5)],
            "suffix": [comp(rep, 4), comp(rep, 6)],
            "period": period,
        }))
    }

    /// XAD → Address (v2-to-fhir XAD[Address]): 1.1 and 2 lines, 3 city, 4 state, 5 postal
    /// code, 6 country, 7 address type (table 0190) → use/type, 9 county → district,
    /// 12 or 13/14 → period.
    pub(crate) fn address(&mut self, rep: &Repetition<'_>, at: &str) -> Option<Value> {
        let street = clean(&rep.component(1).subcomponent(1).value());
        let lines: Vec<String> = [street, comp(rep, 2)]
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect();
        let (city, state, postal, country) =
            (comp(rep, 3), comp(rep, 4), comp(rep, 5), comp(rep, 6));
        if lines.is_empty() && city.is_empty() && state.is_empty() && postal.is_empty() {
            return None;
        }
        let (use_, type_) = codes::address_use(&comp(rep, 7));
        let validity = rep.component(12);
        let period = json!({
            "start": self.date_time(&first_non_empty(&sub(&validity, 1), &comp(rep, 13)), at),
            "end": self.date_time(&first_non_empty(&sub(&validity, 2), &comp(rep, 14)), at),
        });
        Some(json!({
            "use": use_,
            "type": type_,
            "line": lines,
            "city": city,
            "district": comp(rep, 9),
            "state": state,
            "postalCode": postal,
            "country": country,
            "period": period,
        }))
    }

    /// XTN → ContactPoint (v2-to-fhir XTN[ContactPoint]): 2 use (table 0201), 3 equipment
    /// (table 0202) → system, value from 4 (e-mail), else 12, else 1, else 5-8 assembled.
    pub(crate) fn contact_point(&mut self, rep: &Repetition<'_>, at: &str) -> Option<Value> {
        let use_code = comp(rep, 2).to_ascii_uppercase();
        let equipment = comp(rep, 3).to_ascii_uppercase();
        let email = comp(rep, 4);
        let is_email = equipment == "INTERNET" || equipment == "X.400" || use_code == "NET";
        let value = if is_email && !email.is_empty() {
            email
        } else {
            let assembled = {
                let (country, area, local, ext) =
                    (comp(rep, 5), comp(rep, 6), comp(rep, 7), comp(rep, 8));
                let mut s = String::new();
                if !country.is_empty() {
                    s.push_str(&format!("+{country} "));
                }
                if !area.is_empty() {
                    s.push_str(&format!("({area}) "));
                }
                s.push_str(&local);
                if !ext.is_empty() && !local.is_empty() {
                    s.push_str(&format!(" ext. {ext}"));
                }
                if local.is_empty() {
                    String::new()
                } else {
                    s.trim().to_owned()
                }
            };
            [comp(rep, 12), comp(rep, 1), assembled]
                .into_iter()
                .find(|s| !s.is_empty())
                .unwrap_or_default()
        };
        if value.is_empty() {
            return None;
        }
        let system = if is_email {
            "email"
        } else {
            codes::telecom_system(&equipment)
        };
        let period = self.period(&comp(rep, 13), &comp(rep, 14), at);
        Some(json!({
            "system": system,
            "value": value,
            "use": codes::telecom_use(&use_code, &equipment),
            "period": period,
        }))
    }

    /// CX → Identifier (v2-to-fhir CX[Identifier]): 1 value, 4 assigning authority → system
    /// (default `default_system`), 5 identifier type (table 0203) → type.
    pub(crate) fn cx_identifier(
        &mut self,
        rep: &Repetition<'_>,
        default_system: &str,
        at: &str,
    ) -> Option<(Ident, Value)> {
        let value = comp(rep, 1);
        if value.is_empty() {
            return None;
        }
        let system = hd_system(&rep.component(4)).unwrap_or_else(|| default_system.to_owned());
        let id_type = comp(rep, 5);
        let period = self.period(&comp(rep, 7), &comp(rep, 8), at);
        let ident = Ident::new(system, value);
        let type_ = if id_type.is_empty() {
            Value::Null
        } else {
            json!({ "coding": [fixed_coding(
                "http://terminology.hl7.org/CodeSystem/v2-0203", &code(&id_type), "")] })
        };
        let json = json!({
            "type": type_,
            "system": ident.system,
            "value": ident.value,
            "period": period,
        });
        Some((ident, json))
    }

    /// XCN → a Practitioner entry (conditional update on its identifier: XCN-1 with the
    /// system of XCN-9, else `urn:rapport:hl7v2:<facility>:staff`) and a reference to it; a
    /// name without an id is a display-only reference (no resource to match it to later).
    pub(crate) fn practitioner(&mut self, person: &Person) -> Option<Value> {
        if person.id.is_empty() {
            return person
                .has_name()
                .then(|| json!({ "display": person.display() }));
        }
        let system = person
            .system
            .clone()
            .unwrap_or_else(|| self.local_system("staff"));
        let ident = Ident::new(system, person.id.clone());
        let resource = json!({
            "resourceType": "Practitioner",
            "identifier": [ident.json()],
            "name": [if person.has_name() { person.name() } else { Value::Null }],
        });
        let full_url = self.bundle.put(resource, &ident);
        Some(json!({ "reference": full_url, "display": person.display() }))
    }

    /// A Practitioner from an XCN repetition.
    pub(crate) fn xcn_practitioner(&mut self, rep: &Repetition<'_>) -> Option<Value> {
        self.practitioner(&Person::from_xcn(rep))
    }

    /// The unit of an OBX-6 / RXE-5 style CWE as Quantity parts: UCUM when the code is UCUM
    /// (CWE-3 `UCUM`) or a common alias of one (`codes::ucum`), else the unit text alone.
    pub(crate) fn quantity(&self, value: Value, unit: &Cwe) -> Value {
        let written = if unit.code.is_empty() {
            &unit.text
        } else {
            &unit.code
        };
        let ucum = if unit.system.eq_ignore_ascii_case("UCUM") && !unit.code.is_empty() {
            Some(unit.code.clone())
        } else {
            codes::ucum(written)
                .or_else(|| codes::ucum(&unit.text))
                .map(str::to_owned)
        };
        let shown = if unit.text.is_empty() || unit.text == unit.code {
            written.clone()
        } else {
            unit.text.clone()
        };
        match ucum {
            Some(ucum) => json!({
                "value": value,
                "unit": shown,
                "system": "http://unitsofmeasure.org",
                "code": ucum,
            }),
            None => json!({ "value": value, "unit": shown }),
        }
    }
}

/// `a` unless empty, else `b`.
pub(crate) fn first_non_empty(a: &str, b: &str) -> String {
    if a.is_empty() {
        b.to_owned()
    } else {
        a.to_owned()
    }
}

/// PL → a display text (v2-to-fhir PL[Location]: point of care, room, bed, facility,
/// building, floor, description).
pub(crate) fn location_display(rep: &Repetition<'_>) -> String {
    let parts: Vec<String> = [
        sub(&rep.component(1), 1),
        sub(&rep.component(2), 1),
        sub(&rep.component(3), 1),
        sub(&rep.component(4), 1),
        comp(rep, 7),
        comp(rep, 8),
    ]
    .into_iter()
    .filter(|s| !s.is_empty())
    .collect();
    let description = comp(rep, 9);
    match (parts.is_empty(), description.is_empty()) {
        (true, _) => description,
        (false, true) => parts.join(", "),
        (false, false) => format!("{} ({description})", parts.join(", ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dtm_keeps_its_precision_and_gets_seconds_and_an_offset_when_it_has_a_time() {
        let d = |s: &str| Dtm::parse(s).map(|d| d.date_time(60));
        assert_eq!(d("2023"), Some("2023".into()));
        assert_eq!(d("202302"), Some("2023-02".into()));
        assert_eq!(d("20230228"), Some("2023-02-28".into()));
        assert_eq!(d("2023022812"), Some("2023-02-28T12:00:00+01:00".into()));
        assert_eq!(d("202302281230"), Some("2023-02-28T12:30:00+01:00".into()));
        assert_eq!(
            d("20230228123005.1234-0500"),
            Some("2023-02-28T12:30:05.1234-05:00".into())
        );
        assert_eq!(
            d("198808181126+0215"),
            Some("1988-08-18T11:26:00+02:15".into())
        );
        assert_eq!(d("20230228-0500"), Some("2023-02-28".into()));
        for bad in [
            "",
            "2023022",
            "20230230",
            "20231301",
            "2023022825",
            "abc",
            "2023-02-28",
            "20230228+9900",
        ] {
            assert_eq!(d(bad), None, "{bad}");
        }
        assert_eq!(
            Dtm::parse("20230228").unwrap().instant(0),
            "2023-02-28T00:00:00+00:00"
        );
    }

    #[test]
    fn decimals_are_normalised_to_fhir_json_numbers_keeping_their_digits() {
        let d = |s: &str| decimal(s).map(|v| v.to_string());
        assert_eq!(d("5.0"), Some("5.0".into()));
        assert_eq!(d("+007.50"), Some("7.50".into()));
        assert_eq!(d(".5"), Some("0.5".into()));
        assert_eq!(d("-0"), Some("0".into()));
        assert_eq!(d("-1.25"), Some("-1.25".into()));
        assert_eq!(d("5."), Some("5".into()));
        for bad in ["", ".", "1e5", "1,5", "abc", "--1", "1.2.3"] {
            assert_eq!(d(bad), None, "{bad}");
        }
    }

    #[test]
    fn base64_follows_rfc_4648() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foo"), "Zm9v");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert_eq!(clean_base64("Zm9v\nYmFy"), Some("Zm9vYmFy".into()));
        assert_eq!(clean_base64("Zm9v!"), None);
    }

    #[test]
    fn assigning_authorities_become_uri_systems() {
        assert_eq!(
            authority_system("", "2.16.840.1.113883.19", "ISO").as_deref(),
            Some("urn:oid:2.16.840.1.113883.19")
        );
        assert_eq!(
            authority_system("HOSP_A", "", "").as_deref(),
            Some("urn:rapport:hl7v2:authority:HOSP_A")
        );
        assert_eq!(
            authority_system("IA PHIMS", "", "").as_deref(),
            Some("urn:rapport:hl7v2:authority:IA%20PHIMS")
        );
        assert_eq!(authority_system("", "", ""), None);
    }
}
