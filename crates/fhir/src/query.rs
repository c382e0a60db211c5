//! Search queries (FHIR R4 search.html), as the API's searches and the importer's conditional
//! references, `ifNoneExist` and conditional updates (http.html#ccreate) use them: token (with
//! `system|`, `:not`), uri, string (with `:contains`, `:exact`), reference, date, number and
//! quantity parameters with their prefixes, `_id`, `_lastUpdated`, `:missing`, and
//! comma-separated alternatives. Chains, `_has` and result parameters are the API's.

use percent_encoding::percent_decode_str;

use crate::search_param::{self, ParamKind};
use crate::FhirError;

/// One `name=value` condition of a query, parsed against the parameter's type.
#[derive(Debug, Clone, PartialEq)]
pub enum Clause {
    /// `_id=…`
    Id(String),
    /// Token `system|code`, `|code` (no system) or `code` (any system); uri parameters too
    /// (indexed as tokens without a system).
    Token {
        param: &'static str,
        system: Option<String>,
        code: String,
    },
    /// Token `system|` (search.html#token): any code of that system.
    TokenSystem { param: &'static str, system: String },
    /// Token `:not` (search.html#modifiers): resources with no value matching the token,
    /// including those with no value at all.
    TokenNot {
        param: &'static str,
        system: Option<String>,
        code: String,
    },
    /// String, matched at the start of the normalised value (search.html#string).
    String { param: &'static str, prefix: String },
    /// String `:contains`: anywhere in the normalised value.
    StringContains { param: &'static str, text: String },
    /// String `:exact`: the whole value, with case and accents (search.html#modifiers). Values
    /// are indexed normalised, so the index finds the candidates by `value` (normalised) and
    /// each candidate's own strings are compared with `written`, the value as searched.
    StringExact {
        param: &'static str,
        value: String,
        written: String,
    },
    /// Reference `Type/id`.
    Reference {
        param: &'static str,
        target_type: String,
        target_id: String,
    },
    /// Date with a prefix; the value is the range its precision covers, `[start, end)` in ms.
    Date {
        param: &'static str,
        prefix: DatePrefix,
        start: i64,
        end: i64,
    },
    /// `_lastUpdated` with a prefix, as a date (search.html#lastUpdated).
    LastUpdated {
        prefix: DatePrefix,
        start: i64,
        end: i64,
    },
    /// Number or quantity with a prefix (search.html#number, #quantity): `[low, high)` is the
    /// range the search value's precision implies (`5.4` is `[5.35, 5.45)`); for a quantity, the
    /// system and code (or unit) when given.
    Quantity {
        param: &'static str,
        prefix: DatePrefix,
        low: f64,
        high: f64,
        system: Option<String>,
        code: Option<String>,
    },
    /// `:missing=true|false` (search.html#missing): whether the resource has any value for it.
    Missing {
        param: &'static str,
        kind: ParamKind,
        missing: bool,
    },
    /// Comma-separated values (search.html#combining): any of them.
    Any(Vec<Clause>),
}

impl Clause {
    /// The parameter the clause is about (`_id`, `_lastUpdated` or the parameter's code).
    pub fn param(&self) -> &str {
        match self {
            Clause::Id(_) => "_id",
            Clause::LastUpdated { .. } => "_lastUpdated",
            Clause::Token { param, .. }
            | Clause::TokenSystem { param, .. }
            | Clause::TokenNot { param, .. }
            | Clause::String { param, .. }
            | Clause::StringContains { param, .. }
            | Clause::StringExact { param, .. }
            | Clause::Reference { param, .. }
            | Clause::Date { param, .. }
            | Clause::Quantity { param, .. }
            | Clause::Missing { param, .. } => param,
            Clause::Any(clauses) => clauses.first().map_or("", Clause::param),
        }
    }
}

/// Comparison prefixes of date search (FHIR R4 search.html#prefix and #date). Both the search
/// value and the stored value are ranges given by their precision (`2020` is the whole year).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DatePrefix {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
    Sa,
    Eb,
    Ap,
}

impl DatePrefix {
    /// Split a leading prefix off a date search value (`ge2020-01` → Ge, `2020-01`).
    pub fn split(value: &str) -> (DatePrefix, &str) {
        let prefixes = [
            ("eq", DatePrefix::Eq),
            ("ne", DatePrefix::Ne),
            ("gt", DatePrefix::Gt),
            ("lt", DatePrefix::Lt),
            ("ge", DatePrefix::Ge),
            ("le", DatePrefix::Le),
            ("sa", DatePrefix::Sa),
            ("eb", DatePrefix::Eb),
            ("ap", DatePrefix::Ap),
        ];
        for (text, prefix) in prefixes {
            if let Some(rest) = value.strip_prefix(text) {
                return (prefix, rest);
            }
        }
        (DatePrefix::Eq, value)
    }

    /// Whether a stored range `[rs, re)` matches the search range `[vs, ve)` under this prefix.
    /// - eq: the stored range lies within the search range; ne: it does not.
    /// - gt / lt: some of the stored range lies after / before the search range.
    /// - ge / le: gt / lt, or eq.
    /// - sa / eb: the stored range starts after / ends before the search range.
    /// - ap: the ranges overlap (Rapport's reading of "approximately").
    pub fn holds(self, rs: i64, re: i64, vs: i64, ve: i64) -> bool {
        let eq = rs >= vs && re <= ve;
        match self {
            DatePrefix::Eq => eq,
            DatePrefix::Ne => !eq,
            DatePrefix::Gt => re > ve,
            DatePrefix::Lt => rs < vs,
            DatePrefix::Ge => re > ve || eq,
            DatePrefix::Le => rs < vs || eq,
            DatePrefix::Sa => rs >= ve,
            DatePrefix::Eb => re <= vs,
            DatePrefix::Ap => rs < ve && re > vs,
        }
    }
}

/// A query on one resource type: all clauses must hold.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    pub resource_type: String,
    pub clauses: Vec<Clause>,
}

/// Parse `query` (`identifier=…&…`, optionally prefixed with `Type?`) for `resource_type`.
/// Both spellings of ifNoneExist are accepted and mean the same (hard case B13).
pub fn parse(resource_type: &str, query: &str) -> Result<Query, FhirError> {
    let query = query.strip_prefix('?').unwrap_or(query);
    let query = match query.split_once('?') {
        Some((ty, rest)) if ty == resource_type => rest,
        Some((ty, _)) => {
            return Err(FhirError::invalid(
                "query",
                format!("query is for '{ty}' but applies to '{resource_type}'"),
            ))
        }
        None => query,
    };
    let mut clauses = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, raw) = pair.split_once('=').ok_or_else(|| {
            FhirError::invalid("query", format!("'{pair}' is not of the form name=value"))
        })?;
        let name = percent_decode_str(name).decode_utf8_lossy();
        clauses.push(parse_clause(resource_type, &name, raw)?);
    }
    if clauses.is_empty() {
        return Err(FhirError::invalid("query", "the query has no criteria"));
    }
    Ok(Query {
        resource_type: resource_type.to_owned(),
        clauses,
    })
}

/// Split a search value on the commas that separate alternatives (search.html#combining); `\,`
/// is a literal comma. Each part is percent-decoded.
fn alternatives(raw: &str) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&',') => {
                out.last_mut().expect("never empty").push(',');
                chars.next();
            }
            ',' => out.push(String::new()),
            c => out.last_mut().expect("never empty").push(c),
        }
    }
    out.into_iter()
        .map(|v| percent_decode_str(&v).decode_utf8_lossy().into_owned())
        .collect()
}

/// The `[low, high)` range a decimal search value stands for: half a unit of its last digit on
/// either side (search.html#number: "100" is [99.5, 100.5), "1e2" likewise).
pub fn decimal_range(value: &str) -> Option<(f64, f64)> {
    let number: f64 = value.parse().ok().filter(|n: &f64| n.is_finite())?;
    let (mantissa, exponent) = match value.split_once(['e', 'E']) {
        Some((m, e)) => (m, e.parse::<i32>().ok()?),
        None => (value, 0),
    };
    let decimals = mantissa.split_once('.').map_or(0, |(_, d)| d.len() as i32);
    let half = 0.5 * 10f64.powi(exponent - decimals);
    Some((number - half, number + half))
}

/// Parse one search parameter, `name` possibly with a modifier (`code:not`, `name:exact`,
/// `value-quantity:missing`), against `resource_type`'s parameters; `raw` is the undecoded value,
/// whose commas separate alternatives.
pub fn parse_clause(resource_type: &str, name: &str, raw: &str) -> Result<Clause, FhirError> {
    let (code, modifier) = match name.split_once(':') {
        Some((c, m)) => (c, Some(m)),
        None => (name, None),
    };
    let bad = |m: String| FhirError::invalid("query", m);
    if code == "_id" || code == "_lastUpdated" {
        if let Some(m) = modifier {
            return Err(bad(format!("'{code}' takes no modifier, got ':{m}'")));
        }
    }
    let def = match code {
        "_id" | "_lastUpdated" => None,
        _ => Some(search_param::param(resource_type, code).ok_or_else(|| {
            bad(format!(
                "'{code}' is not a search parameter of {resource_type} that Rapport supports here"
            ))
        })?),
    };
    if modifier == Some("missing") {
        let def = def.ok_or_else(|| bad(format!("'{code}' takes no :missing")))?;
        let missing = match percent_decode_str(raw).decode_utf8_lossy().as_ref() {
            "true" => true,
            "false" => false,
            other => return Err(bad(format!("{name} takes true or false, not '{other}'"))),
        };
        return Ok(Clause::Missing {
            param: def.code,
            kind: def.kind,
            missing,
        });
    }
    let values = alternatives(raw);
    let mut clauses = Vec::with_capacity(values.len());
    for value in values {
        clauses.push(parse_value(code, def, modifier, value)?);
    }
    if modifier == Some("not") && clauses.len() > 1 {
        // `code:not=a,b`: none of them.
        return Err(bad(format!(
            "{name}: give one value per :not parameter (repeat the parameter for several)"
        )));
    }
    Ok(if clauses.len() == 1 {
        clauses.pop().expect("one clause")
    } else {
        Clause::Any(clauses)
    })
}

fn parse_value(
    code: &str,
    def: Option<&'static search_param::SearchParamDef>,
    modifier: Option<&str>,
    value: String,
) -> Result<Clause, FhirError> {
    let bad = |m: String| FhirError::invalid("query", m);
    let unsupported = |m: &str| bad(format!("modifier ':{m}' is not supported on '{code}'"));
    let date = |value: &str| -> Result<(DatePrefix, i64, i64), FhirError> {
        let (prefix, rest) = DatePrefix::split(value);
        let range = crate::date::parse_range(rest).ok_or_else(|| {
            bad(format!(
                "'{value}' is not a date for '{code}' (e.g. 2020, 2020-05, ge2020-05-01)"
            ))
        })?;
        Ok((prefix, range.start, range.end))
    };
    let Some(def) = def else {
        return match code {
            "_id" => Ok(Clause::Id(value)),
            _ => {
                let (prefix, start, end) = date(&value)?;
                Ok(Clause::LastUpdated { prefix, start, end })
            }
        };
    };
    let param = def.code;
    Ok(match (def.kind, modifier) {
        (ParamKind::Token, None | Some("not")) => {
            let (system, code) = match value.split_once('|') {
                Some((system, code)) => (Some(system.to_owned()), code.to_owned()),
                None => (None, value),
            };
            match (modifier, system, code.is_empty()) {
                (Some(_), system, _) => Clause::TokenNot {
                    param,
                    system,
                    code,
                },
                (None, Some(system), true) if !system.is_empty() => {
                    Clause::TokenSystem { param, system }
                }
                (None, system, _) => Clause::Token {
                    param,
                    system,
                    code,
                },
            }
        }
        (ParamKind::Uri, None) => Clause::Token {
            param,
            system: None,
            code: value,
        },
        (ParamKind::String, None) => Clause::String {
            param,
            prefix: crate::text::normalize(&value),
        },
        (ParamKind::String, Some("contains")) => Clause::StringContains {
            param,
            text: crate::text::normalize(&value),
        },
        (ParamKind::String, Some("exact")) => Clause::StringExact {
            param,
            value: crate::text::normalize(&value),
            written: value.to_string(),
        },
        (ParamKind::Reference, None) => {
            // `Type/id`, an absolute URL ending in Type/id, or a bare id when the parameter
            // allows one target type only (search.html#reference).
            let trimmed = value.trim_end_matches('/');
            let parts: Vec<&str> = trimmed.rsplitn(3, '/').collect();
            match parts.as_slice() {
                [id, ty, ..] if search_param::is_resource_type(ty) => Clause::Reference {
                    param,
                    target_type: (*ty).to_owned(),
                    target_id: (*id).to_owned(),
                },
                [id] => {
                    let targets: Vec<&str> = def
                        .paths
                        .iter()
                        .flat_map(|p| p.target_types.iter().copied())
                        .collect();
                    match targets.first() {
                        Some(t) if targets.iter().all(|x| x == t) => Clause::Reference {
                            param,
                            target_type: (*t).to_owned(),
                            target_id: (*id).to_owned(),
                        },
                        _ => {
                            return Err(bad(format!(
                                "reference parameter '{code}' needs Type/id, got '{value}'"
                            )))
                        }
                    }
                }
                _ => {
                    return Err(bad(format!(
                        "reference parameter '{code}' needs Type/id, got '{value}'"
                    )))
                }
            }
        }
        (ParamKind::Reference, Some(t)) if search_param::is_resource_type(t) => Clause::Reference {
            param,
            target_type: t.to_owned(),
            target_id: value,
        },
        (ParamKind::Date, None) => {
            let (prefix, start, end) = date(&value)?;
            Clause::Date {
                param,
                prefix,
                start,
                end,
            }
        }
        (ParamKind::Number | ParamKind::Quantity, None) => {
            let mut parts = value.splitn(3, '|');
            let number = parts.next().unwrap_or("");
            let (prefix, number) = DatePrefix::split(number);
            let (low, high) = decimal_range(number).ok_or_else(|| {
                bad(format!(
                    "'{value}' is not a number for '{code}' (e.g. 5.4, gt100)"
                ))
            })?;
            let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
            let (system, unit) = (nonempty(parts.next()), nonempty(parts.next()));
            if def.kind == ParamKind::Number && (system.is_some() || unit.is_some()) {
                return Err(bad(format!("'{code}' is a number: no system or unit")));
            }
            Clause::Quantity {
                param,
                prefix,
                low,
                high,
                system,
                code: unit,
            }
        }
        (_, Some(m)) => return Err(unsupported(m)),
    })
}

/// Whether a number or quantity `value` matches a search range under `prefix` (search.html#prefix
/// for numbers: the stored value is a point; `ap` is within 10 % of the search value).
pub fn quantity_holds(prefix: DatePrefix, value: f64, low: f64, high: f64) -> bool {
    let mid = (low + high) / 2.0;
    match prefix {
        DatePrefix::Eq => value >= low && value < high,
        DatePrefix::Ne => !(value >= low && value < high),
        DatePrefix::Gt | DatePrefix::Sa => value > mid,
        DatePrefix::Lt | DatePrefix::Eb => value < mid,
        DatePrefix::Ge => value >= mid,
        DatePrefix::Le => value <= mid,
        DatePrefix::Ap => (value - mid).abs() <= (mid * 0.1).abs().max(high - mid),
    }
}

/// Whether a resource with `id` and index `rows` satisfies every clause of `query`: the same
/// semantics as the store's search, for resources not yet stored (earlier entries of the same
/// transaction, hard case B13).
pub fn matches(query: &Query, id: &str, rows: &crate::index::IndexRows) -> bool {
    query
        .clauses
        .iter()
        .all(|clause| clause_matches(clause, id, None, rows))
}

/// [`matches`] for one clause; `last_updated_ms`, when known, serves `_lastUpdated`.
pub fn clause_matches(
    clause: &Clause,
    id: &str,
    last_updated_ms: Option<i64>,
    rows: &crate::index::IndexRows,
) -> bool {
    let token = |param: &str, system: &Option<String>, code: &str| {
        rows.tokens.iter().any(|t| {
            t.param == param && t.code == code && system.as_ref().is_none_or(|s| *s == t.system)
        })
    };
    match clause {
        Clause::Id(want) => want == id,
        Clause::Token {
            param,
            system,
            code,
        } => token(param, system, code),
        Clause::TokenSystem { param, system } => rows
            .tokens
            .iter()
            .any(|t| t.param == *param && t.system == *system),
        Clause::TokenNot {
            param,
            system,
            code,
        } => !token(param, system, code),
        Clause::String { param, prefix } => rows
            .strings
            .iter()
            .any(|s| s.param == *param && s.value.starts_with(prefix.as_str())),
        Clause::StringContains { param, text } => rows
            .strings
            .iter()
            .any(|s| s.param == *param && s.value.contains(text.as_str())),
        // Within a bundle only the normalised values are at hand (conditional references).
        Clause::StringExact { param, value, .. } => rows
            .strings
            .iter()
            .any(|s| s.param == *param && s.value == *value),
        Clause::Reference {
            param,
            target_type,
            target_id,
        } => rows.references.iter().any(|r| {
            r.param == *param && r.target_type == *target_type && r.target_id == *target_id
        }),
        Clause::Date {
            param,
            prefix,
            start,
            end,
        } => rows
            .dates
            .iter()
            .any(|d| d.param == *param && prefix.holds(d.range.start, d.range.end, *start, *end)),
        Clause::LastUpdated { prefix, start, end } => {
            last_updated_ms.is_some_and(|t| prefix.holds(t, t + 1, *start, *end))
        }
        Clause::Quantity {
            param,
            prefix,
            low,
            high,
            system,
            code,
        } => rows.quantities.iter().any(|q| {
            q.param == *param
                && system.as_ref().is_none_or(|s| *s == q.system)
                && code.as_ref().is_none_or(|c| *c == q.code || *c == q.unit)
                && quantity_holds(*prefix, q.value, *low, *high)
        }),
        Clause::Missing {
            param,
            kind,
            missing,
        } => {
            let present = match kind {
                ParamKind::Token | ParamKind::Uri => rows.tokens.iter().any(|t| t.param == *param),
                ParamKind::String => rows.strings.iter().any(|t| t.param == *param),
                ParamKind::Date => rows.dates.iter().any(|t| t.param == *param),
                ParamKind::Reference => rows.references.iter().any(|t| t.param == *param),
                ParamKind::Number | ParamKind::Quantity => {
                    rows.quantities.iter().any(|t| t.param == *param)
                }
            };
            present != *missing
        }
        Clause::Any(clauses) => clauses
            .iter()
            .any(|c| clause_matches(c, id, last_updated_ms, rows)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_if_none_exist_spellings_mean_the_same_b13() {
        // Hard case B13: `identifier=…` and `Patient?identifier=…` are the same criteria.
        let a = parse("Patient", "identifier=http://example.org/mrn|000123").unwrap();
        let b = parse(
            "Patient",
            "Patient?identifier=http://example.org/mrn|000123",
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(
            a.clauses,
            vec![Clause::Token {
                param: "identifier",
                system: Some("http://example.org/mrn".into()),
                code: "000123".into()
            }]
        );
    }

    #[test]
    fn percent_encoding_is_decoded() {
        let q = parse("Patient", "identifier=http%3A%2F%2Fx.org%7C1").unwrap();
        assert_eq!(
            q.clauses,
            vec![Clause::Token {
                param: "identifier",
                system: Some("http://x.org".into()),
                code: "1".into()
            }]
        );
    }

    #[test]
    fn date_prefixes_compare_ranges_at_their_precision() {
        let q = parse("Patient", "birthdate=1970").unwrap();
        let Clause::Date {
            prefix, start, end, ..
        } = q.clauses[0].clone()
        else {
            panic!()
        };
        assert_eq!(prefix, DatePrefix::Eq);
        let day = crate::date::parse_range("1970-05-01").unwrap();
        // search.html#date: birthdate=1970 matches a birth date of 1970-05-01.
        assert!(prefix.holds(day.start, day.end, start, end));
        let next_year = crate::date::parse_range("1971-01-01").unwrap();
        assert!(!DatePrefix::Eq.holds(next_year.start, next_year.end, start, end));
        assert!(DatePrefix::Gt.holds(next_year.start, next_year.end, start, end));
        assert!(DatePrefix::Sa.holds(next_year.start, next_year.end, start, end));
        assert!(DatePrefix::Ge.holds(day.start, day.end, start, end));
        assert!(!DatePrefix::Lt.holds(day.start, day.end, start, end));
        assert!(DatePrefix::Ne.holds(next_year.start, next_year.end, start, end));
        assert!(parse("Patient", "birthdate=ge19x").is_err());
    }

    #[test]
    fn unknown_parameters_are_refused_with_their_name() {
        let err = parse("Patient", "shoe-size=42").unwrap_err();
        assert!(err.to_string().contains("shoe-size"), "{err}");
    }
}
