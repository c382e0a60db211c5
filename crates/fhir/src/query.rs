//! Search queries used by conditional references, `ifNoneExist` and conditional updates
//! (FHIR R4 http.html#ccreate, search.html). Only the parameter kinds that identify a resource are
//! accepted here: token (`identifier=system|value`), `_id`, string and reference.

use percent_encoding::percent_decode_str;

use crate::search_param::{self, ParamKind};
use crate::FhirError;

/// One `name=value` condition of a query, parsed against the parameter's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// `_id=…`
    Id(String),
    /// Token `system|code`, `|code` (no system) or `code` (any system).
    Token {
        param: &'static str,
        system: Option<String>,
        code: String,
    },
    /// String, matched at the start of the normalised value.
    String { param: &'static str, prefix: String },
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        let value = percent_decode_str(raw).decode_utf8_lossy().into_owned();
        if name == "_id" {
            clauses.push(Clause::Id(value));
            continue;
        }
        let def = search_param::param(resource_type, name).ok_or_else(|| {
            FhirError::invalid(
                "query",
                format!("'{name}' is not a search parameter of {resource_type} that Rapport supports here"),
            )
        })?;
        clauses.push(match def.kind {
            ParamKind::Token => match value.split_once('|') {
                Some((system, code)) => Clause::Token {
                    param: def.code,
                    system: Some(system.to_owned()),
                    code: code.to_owned(),
                },
                None => Clause::Token {
                    param: def.code,
                    system: None,
                    code: value,
                },
            },
            ParamKind::String => Clause::String {
                param: def.code,
                prefix: crate::text::normalize(&value),
            },
            ParamKind::Reference => match value.split_once('/') {
                Some((t, id)) => Clause::Reference {
                    param: def.code,
                    target_type: t.to_owned(),
                    target_id: id.to_owned(),
                },
                None => {
                    return Err(FhirError::invalid(
                        "query",
                        format!("reference parameter '{name}' needs Type/id, got '{value}'"),
                    ))
                }
            },
            ParamKind::Date => {
                let (prefix, rest) = DatePrefix::split(&value);
                let range = crate::date::parse_range(rest).ok_or_else(|| {
                    FhirError::invalid(
                        "query",
                        format!("'{value}' is not a date for '{name}' (e.g. 2020, 2020-05, ge2020-05-01)"),
                    )
                })?;
                Clause::Date {
                    param: def.code,
                    prefix,
                    start: range.start,
                    end: range.end,
                }
            }
            _ => {
                return Err(FhirError::invalid(
                    "query",
                    format!("parameter '{name}' cannot be used to identify a resource"),
                ))
            }
        });
    }
    if clauses.is_empty() {
        return Err(FhirError::invalid("query", "the query has no criteria"));
    }
    Ok(Query {
        resource_type: resource_type.to_owned(),
        clauses,
    })
}

/// Whether a resource with `id` and index `rows` satisfies every clause of `query`: the same
/// semantics as the store's search, for resources not yet stored (earlier entries of the same
/// transaction, hard case B13).
pub fn matches(query: &Query, id: &str, rows: &crate::index::IndexRows) -> bool {
    query.clauses.iter().all(|clause| match clause {
        Clause::Id(want) => want == id,
        Clause::Token {
            param,
            system,
            code,
        } => rows.tokens.iter().any(|t| {
            t.param == *param && t.code == *code && system.as_ref().is_none_or(|s| *s == t.system)
        }),
        Clause::String { param, prefix } => rows
            .strings
            .iter()
            .any(|s| s.param == *param && s.value.starts_with(prefix.as_str())),
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
    })
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
