//! FHIR search (search.html) over the store: the parameters of `rapport_fhir::query` (token,
//! uri, string, reference, date, number, quantity, `_id`, `_lastUpdated`, modifiers, `:missing`,
//! comma alternatives), chained parameters one level deep (`subject.identifier=…`,
//! `subject:Patient.name=…`), reverse chains (`_has:Observation:patient:code=…`), and the result
//! parameters `_sort`, `_count`/`_offset`, `_summary`, `_elements`, `_include` and `_revinclude`
//! (with `:iterate` one level). Only what the caller may read is returned, counted or included.

use std::cmp::Ordering;
use std::collections::{HashMap, HashSet};

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use rapport_access::policy::{Action, Decision};
use rapport_fhir::query::{Clause, Query};
use rapport_fhir::search_param::{self, ParamKind};
use rapport_store::{ResourceKey, SearchMatch, SortBy, SortKey, Store, StoredResource};
use serde_json::{json, Value};

use super::{
    check_format, check_type_and_id, fhir_base, percent_decode, FormatParam, Outcome,
    DEFAULT_COUNT, FHIR_JSON, MAX_COUNT, MAX_MATCHES,
};
use crate::{AppState, Caller};

/// Ids looked at for one link of a chain or `_has` (a narrower search is asked for beyond).
const MAX_CHAIN_IDS: u64 = 10_000;

/// `_include` / `_revinclude`: `Type:param[:target]`, and whether it iterates.
#[derive(Debug, Clone)]
struct Include {
    source_type: String,
    param: &'static str,
    target: Option<String>,
    iterate: bool,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Summary {
    Full,
    Count,
}

/// A search request, parsed.
struct Request {
    clauses: Vec<Clause>,
    /// Chains and `_has`, resolved against the store before the search.
    pending: Vec<Pending>,
    count: usize,
    offset: usize,
    /// Paging cursor of the default order: results after this id (see the paging links).
    after: Option<String>,
    sort: Vec<(String, bool)>,
    summary: Summary,
    elements: Option<Vec<String>>,
    includes: Vec<Include>,
    revincludes: Vec<Include>,
    /// The parameters kept, for the paging links.
    kept: Vec<String>,
    warnings: Vec<String>,
}

/// A parameter that needs another search first.
enum Pending {
    /// `ref.param=value` or `ref:Type.param=value`: resources whose `ref` points at a match.
    Chain {
        reference: &'static str,
        target_types: Vec<String>,
        name: String,
        raw: String,
    },
    /// `_has:Type:ref:param=value`: resources that a match of `Type` points at through `ref`.
    Has {
        source_type: String,
        reference: &'static str,
        name: String,
        raw: String,
    },
}

fn bad(name: &str, message: impl Into<String>) -> Outcome {
    Outcome::new(StatusCode::BAD_REQUEST, "invalid", message).at(name.to_owned())
}

fn parse_include(ty: &str, name: &str, value: &str, rev: bool) -> Result<Include, Outcome> {
    let parts: Vec<&str> = value.split(':').collect();
    let (source_type, code, target) = match parts.as_slice() {
        [t, p] => (*t, *p, None),
        [t, p, target] => (*t, *p, Some((*target).to_owned())),
        _ => {
            return Err(bad(
                name,
                format!("{name} takes Type:parameter[:targetType], got '{value}'"),
            ))
        }
    };
    if !rev && source_type != ty && !name.ends_with(":iterate") {
        return Err(bad(
            name,
            format!("_include={value} names {source_type}, but this search is for {ty}"),
        ));
    }
    let def = search_param::param(source_type, code)
        .filter(|d| d.kind == ParamKind::Reference)
        .ok_or_else(|| {
            bad(
                name,
                format!("'{code}' is not a reference parameter of {source_type}"),
            )
        })?;
    Ok(Include {
        source_type: source_type.to_owned(),
        param: def.code,
        target,
        iterate: name.ends_with(":iterate"),
    })
}

fn parse_request(ty: &str, raw: &str, headers: &HeaderMap) -> Result<Request, Outcome> {
    let strict = headers
        .get("prefer")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.contains("handling=strict"));
    let mut r = Request {
        clauses: Vec::new(),
        pending: Vec::new(),
        count: DEFAULT_COUNT,
        offset: 0,
        after: None,
        sort: Vec::new(),
        summary: Summary::Full,
        elements: None,
        includes: Vec::new(),
        revincludes: Vec::new(),
        kept: Vec::new(),
        warnings: Vec::new(),
    };
    for pair in raw.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = percent_decode(name);
        let decoded = percent_decode(value);
        let number = || {
            decoded
                .parse::<usize>()
                .map_err(|_| bad(&name, format!("{name} must be a whole number")))
        };
        let mut keep = true;
        match name.as_str() {
            "_count" => {
                r.count = number()?.min(MAX_COUNT);
                if r.count == 0 {
                    // search.html#count: `_count=0` is `_summary=count`.
                    r.summary = Summary::Count;
                }
                keep = false;
            }
            "_offset" => {
                r.offset = number()?;
                keep = false;
            }
            "_after" => {
                r.after = Some(decoded.clone());
                keep = false;
            }
            "_format" => {
                check_format(
                    &FormatParam {
                        format: Some(decoded.clone()),
                    },
                    headers,
                )?;
                keep = false;
            }
            "_total" => {}
            "_sort" => {
                for key in decoded.split(',').filter(|k| !k.is_empty()) {
                    let (code, desc) = match key.strip_prefix('-') {
                        Some(c) => (c, true),
                        None => (key, false),
                    };
                    let known = matches!(code, "_id" | "_lastUpdated")
                        || search_param::param(ty, code).is_some_and(|d| {
                            matches!(
                                d.kind,
                                ParamKind::Date
                                    | ParamKind::String
                                    | ParamKind::Token
                                    | ParamKind::Number
                                    | ParamKind::Quantity
                                    | ParamKind::Reference
                                    | ParamKind::Uri
                            )
                        });
                    if !known {
                        return Err(bad(
                            "_sort",
                            format!("cannot sort {ty} by '{code}' (not one of its parameters)"),
                        ));
                    }
                    r.sort.push((code.to_owned(), desc));
                }
            }
            "_summary" => match decoded.as_str() {
                "count" => r.summary = Summary::Count,
                "false" => {}
                other => {
                    let why = format!("_summary={other} is not supported (count and false are)");
                    if strict {
                        return Err(Outcome::new(StatusCode::BAD_REQUEST, "not-supported", why)
                            .at("_summary"));
                    }
                    r.warnings.push(why);
                    keep = false;
                }
            },
            "_elements" => {
                r.elements = Some(
                    decoded
                        .split(',')
                        .map(|e| e.trim().to_owned())
                        .filter(|e| !e.is_empty())
                        .collect(),
                );
            }
            "_include" | "_include:iterate" => {
                r.includes.push(parse_include(ty, &name, &decoded, false)?)
            }
            "_revinclude" | "_revinclude:iterate" => r
                .revincludes
                .push(parse_include(ty, &name, &decoded, true)?),
            n if n.starts_with("_has:") => {
                let parts: Vec<&str> = n.splitn(4, ':').collect();
                let [_, source_type, reference, param] = parts.as_slice() else {
                    return Err(bad(n, "_has takes _has:Type:reference:parameter=value"));
                };
                let def = search_param::param(source_type, reference)
                    .filter(|d| d.kind == ParamKind::Reference)
                    .ok_or_else(|| {
                        bad(
                            n,
                            format!("'{reference}' is not a reference parameter of {source_type}"),
                        )
                    })?;
                if param.starts_with("_has:") {
                    return Err(bad(n, "_has is supported one level deep"));
                }
                r.pending.push(Pending::Has {
                    source_type: (*source_type).to_owned(),
                    reference: def.code,
                    name: (*param).to_owned(),
                    raw: value.to_owned(),
                });
            }
            n if n.contains('.') && !n.starts_with('_') => {
                let (head, rest) = n.split_once('.').expect("contains a dot");
                let (code, only) = match head.split_once(':') {
                    Some((c, t)) => (c, Some(t)),
                    None => (head, None),
                };
                let def = search_param::param(ty, code)
                    .filter(|d| d.kind == ParamKind::Reference)
                    .ok_or_else(|| {
                        bad(n, format!("'{code}' is not a reference parameter of {ty}"))
                    })?;
                if rest.contains('.') {
                    return Err(bad(n, "chained parameters are supported one level deep"));
                }
                let mut targets: Vec<String> = def
                    .paths
                    .iter()
                    .flat_map(|p| p.target_types.iter().map(|t| (*t).to_owned()))
                    .collect();
                targets.dedup();
                if let Some(t) = only {
                    targets = vec![t.to_owned()];
                } else if targets.is_empty() {
                    // The parameter does not narrow its targets (`Observation.subject`): every
                    // type that has the chained parameter (each is one indexed lookup).
                    let code = rest.split(':').next().unwrap_or("");
                    targets = rapport_fhir::search_param::SEARCH_PARAMS
                        .iter()
                        .filter(|p| {
                            p.code == code && search_param::is_resource_type(p.resource_type)
                        })
                        .map(|p| p.resource_type.to_owned())
                        .collect();
                    targets.dedup();
                }
                // Only types on which the chained parameter exists (search.html#chaining).
                targets.retain(|t| {
                    search_param::param(t, rest.split(':').next().unwrap_or("")).is_some()
                });
                if targets.is_empty() {
                    return Err(bad(
                        n,
                        format!("no target type of {ty}.{code} has a parameter '{rest}'; name one with {code}:Type.{rest}"),
                    ));
                }
                r.pending.push(Pending::Chain {
                    reference: def.code,
                    target_types: targets,
                    name: rest.to_owned(),
                    raw: value.to_owned(),
                });
            }
            n => match rapport_fhir::query::parse_clause(ty, n, value) {
                Ok(clause) => r.clauses.push(clause),
                Err(e) => {
                    let unknown = n.starts_with('_')
                        || search_param::param(ty, n.split(':').next().unwrap_or("")).is_none();
                    let why = if unknown {
                        format!("search parameter '{n}' is not supported on {ty} here")
                    } else {
                        format!("search parameter '{n}' of {ty}: {e}")
                    };
                    if strict || !unknown {
                        // A known parameter with a bad value is an error in either mode.
                        let code = if unknown { "not-supported" } else { "invalid" };
                        return Err(
                            Outcome::new(StatusCode::BAD_REQUEST, code, why).at(n.to_owned())
                        );
                    }
                    r.warnings.push(why);
                    keep = false;
                }
            },
        }
        if keep {
            r.kept.push(pair.to_owned());
        }
    }
    Ok(r)
}

/// Resolve chains and `_has` into clauses, with searches of their own (each limited).
fn resolve_pending(
    store: &dyn Store,
    ty: &str,
    pending: Vec<Pending>,
) -> Result<Vec<Clause>, String> {
    let mut clauses = Vec::new();
    for p in pending {
        match p {
            Pending::Chain {
                reference,
                target_types,
                name,
                raw,
            } => {
                let mut any = Vec::new();
                for target in target_types {
                    let clause = rapport_fhir::query::parse_clause(&target, &name, &raw)
                        .map_err(|e| format!("{reference}.{name}: {e}"))?;
                    let ids = store
                        .search_ids(
                            &Query {
                                resource_type: target.clone(),
                                clauses: vec![clause],
                            },
                            MAX_CHAIN_IDS + 1,
                        )
                        .map_err(|e| e.to_string())?;
                    if ids.len() as u64 > MAX_CHAIN_IDS {
                        return Err(format!(
                            "{reference}.{name} matches more than {MAX_CHAIN_IDS} {target} resources; narrow it"
                        ));
                    }
                    any.extend(ids.into_iter().map(|id| Clause::Reference {
                        param: reference,
                        target_type: target.clone(),
                        target_id: id,
                    }));
                }
                clauses.push(Clause::Any(any));
            }
            Pending::Has {
                source_type,
                reference,
                name,
                raw,
            } => {
                let clause = rapport_fhir::query::parse_clause(&source_type, &name, &raw)
                    .map_err(|e| format!("_has:{source_type}:{reference}:{name}: {e}"))?;
                let ids = store
                    .search_ids(
                        &Query {
                            resource_type: source_type.clone(),
                            clauses: vec![clause],
                        },
                        MAX_CHAIN_IDS + 1,
                    )
                    .map_err(|e| e.to_string())?;
                if ids.len() as u64 > MAX_CHAIN_IDS {
                    return Err(format!(
                        "_has:{source_type} matches more than {MAX_CHAIN_IDS} resources; narrow it"
                    ));
                }
                let keys: Vec<ResourceKey> = ids
                    .into_iter()
                    .map(|id| ResourceKey::new(source_type.clone(), id))
                    .collect();
                let mut targets = Vec::new();
                for r in store.read_many(&keys).map_err(|e| e.to_string())? {
                    let Ok(v) = serde_json::from_str::<Value>(&r.content) else {
                        continue;
                    };
                    for row in rapport_fhir::index::extract(&v).references {
                        if row.param == reference && row.target_type == ty {
                            targets.push(Clause::Id(row.target_id));
                        }
                    }
                }
                clauses.push(Clause::Any(targets));
            }
        }
    }
    Ok(clauses)
}

/// A `:exact` clause, or comma alternatives of them.
fn is_exact(clause: &Clause) -> bool {
    match clause {
        Clause::StringExact { .. } => true,
        Clause::Any(cs) => !cs.is_empty() && cs.iter().all(is_exact),
        _ => false,
    }
}

/// Whether `resource` has a value of the clause's parameter equal to the one searched, case and
/// accents included (compared in Unicode NFC, so that composed and decomposed accents agree).
fn exact_holds(resource: &Value, clause: &Clause) -> bool {
    match clause {
        Clause::StringExact { param, written, .. } => {
            rapport_fhir::index::exact_strings(resource, param)
                .iter()
                .any(|s| rapport_fhir::text::same_text(s, written))
        }
        Clause::Any(cs) => cs.iter().any(|c| exact_holds(resource, c)),
        _ => true,
    }
}

/// A value to sort by: missing values sort last either way.
#[derive(Debug, Clone, PartialEq, PartialOrd)]
enum SortValue {
    Number(f64),
    Text(String),
}

fn sort_value(r: &StoredResource, value: &Value, code: &str, desc: bool) -> Option<SortValue> {
    let pick = |values: Vec<SortValue>| -> Option<SortValue> {
        values.into_iter().reduce(|a, b| {
            let keep_b = match a.partial_cmp(&b) {
                Some(Ordering::Less) => desc,
                Some(Ordering::Greater) => !desc,
                _ => false,
            };
            if keep_b {
                b
            } else {
                a
            }
        })
    };
    match code {
        "_id" => return Some(SortValue::Text(r.key.id.clone())),
        "_lastUpdated" => return Some(SortValue::Number(r.last_updated_ms as f64)),
        _ => {}
    }
    let rows = rapport_fhir::index::extract(value);
    let mut values: Vec<SortValue> = Vec::new();
    values.extend(
        rows.dates
            .iter()
            .filter(|d| d.param == code)
            .map(|d| SortValue::Number(if desc { d.range.end } else { d.range.start } as f64)),
    );
    values.extend(
        rows.strings
            .iter()
            .filter(|s| s.param == code)
            .map(|s| SortValue::Text(s.value.clone())),
    );
    values.extend(
        rows.tokens
            .iter()
            .filter(|t| t.param == code)
            .map(|t| SortValue::Text(t.code.clone())),
    );
    values.extend(
        rows.quantities
            .iter()
            .filter(|q| q.param == code)
            .map(|q| SortValue::Number(q.value)),
    );
    values.extend(
        rows.references
            .iter()
            .filter(|x| x.param == code)
            .map(|x| SortValue::Text(format!("{}/{}", x.target_type, x.target_id))),
    );
    pick(values)
}

fn compare(a: &Option<SortValue>, b: &Option<SortValue>, desc: bool) -> Ordering {
    match (a, b) {
        (None, None) => Ordering::Equal,
        (None, Some(_)) => Ordering::Greater,
        (Some(_), None) => Ordering::Less,
        (Some(x), Some(y)) => {
            let o = x.partial_cmp(y).unwrap_or(Ordering::Equal);
            if desc {
                o.reverse()
            } else {
                o
            }
        }
    }
}

/// The references of `r` through `include`'s parameter (and target type).
fn included_keys(r: &StoredResource, include: &Include) -> Vec<ResourceKey> {
    if r.key.resource_type != include.source_type {
        return Vec::new();
    }
    let Ok(v) = serde_json::from_str::<Value>(&r.content) else {
        return Vec::new();
    };
    rapport_fhir::index::extract(&v)
        .references
        .into_iter()
        .filter(|x| {
            x.param == include.param && include.target.as_ref().is_none_or(|t| *t == x.target_type)
        })
        .map(|x| ResourceKey::new(x.target_type, x.target_id))
        .collect()
}

/// Resources that `includes` and `revincludes` add to `matches`, readable by the caller.
fn gather_includes(
    store: &dyn Store,
    caller: &Caller,
    now: i64,
    matches: &[StoredResource],
    includes: &[Include],
    revincludes: &[Include],
) -> Result<Vec<StoredResource>, String> {
    let mut seen: HashSet<ResourceKey> = matches.iter().map(|r| r.key.clone()).collect();
    let mut out: Vec<StoredResource> = Vec::new();
    let mut round: Vec<StoredResource> = matches.to_vec();
    for level in 0..2 {
        let mut found: Vec<StoredResource> = Vec::new();
        let mut keys: Vec<ResourceKey> = Vec::new();
        for include in includes.iter().filter(|i| level == 0 || i.iterate) {
            for r in &round {
                for k in included_keys(r, include) {
                    if !seen.contains(&k) && !keys.contains(&k) {
                        keys.push(k);
                    }
                }
            }
        }
        if !keys.is_empty() {
            found.extend(store.read_many(&keys).map_err(|e| e.to_string())?);
        }
        for rev in revincludes.iter().filter(|i| level == 0 || i.iterate) {
            let targets: Vec<Clause> = round
                .iter()
                .map(|r| Clause::Reference {
                    param: rev.param,
                    target_type: r.key.resource_type.clone(),
                    target_id: r.key.id.clone(),
                })
                .collect();
            if targets.is_empty() {
                continue;
            }
            let ids = store
                .search_ids(
                    &Query {
                        resource_type: rev.source_type.clone(),
                        clauses: vec![Clause::Any(targets)],
                    },
                    MAX_MATCHES,
                )
                .map_err(|e| e.to_string())?;
            let keys: Vec<ResourceKey> = ids
                .into_iter()
                .map(|id| ResourceKey::new(rev.source_type.clone(), id))
                .filter(|k| !seen.contains(k))
                .collect();
            found.extend(store.read_many(&keys).map_err(|e| e.to_string())?);
        }
        let found = rapport_auth::readable(store, &caller.principal, found, now)
            .map_err(|e| e.to_string())?;
        let mut next = Vec::new();
        for r in found {
            if seen.insert(r.key.clone()) {
                next.push(r.clone());
                out.push(r);
            }
        }
        if next.is_empty() {
            break;
        }
        round = next;
    }
    Ok(out)
}

/// Keep only the `_elements` asked for (and the mandatory ones), marked SUBSETTED
/// (search.html#elements).
fn subset(content: &str, elements: &[String]) -> String {
    let Ok(Value::Object(map)) = serde_json::from_str::<Value>(content) else {
        return content.to_owned();
    };
    let mut out = serde_json::Map::new();
    for (k, v) in map {
        if matches!(k.as_str(), "resourceType" | "id" | "meta") || elements.contains(&k) {
            out.insert(k, v);
        }
    }
    let meta = out.entry("meta").or_insert_with(|| json!({}));
    if let Some(m) = meta.as_object_mut() {
        let tags = m.entry("tag").or_insert_with(|| json!([]));
        if let Some(t) = tags.as_array_mut() {
            t.push(json!({"system": "http://terminology.hl7.org/CodeSystem/v3-ObservationValue", "code": "SUBSETTED"}));
        }
    }
    Value::Object(out).to_string()
}

/// Run a search of `ty` with the parameters `raw` (a query string) for `caller`.
pub(super) async fn run(
    state: AppState,
    caller: Caller,
    ty: String,
    raw: &str,
    headers: HeaderMap,
) -> Result<Response, Outcome> {
    check_type_and_id(&ty, "search")?;
    let request = parse_request(&ty, raw, &headers)?;
    let Request {
        mut clauses,
        pending,
        count,
        offset,
        after,
        sort,
        summary,
        elements,
        includes,
        revincludes,
        kept,
        warnings,
    } = request;
    let now = state.clock.now_ms();
    let exact: Vec<Clause> = clauses.iter().filter(|c| is_exact(c)).cloned().collect();
    // The store orders by `_lastUpdated` and date parameters itself (and `_id` is the id):
    // then only the page shown is read. Other sort keys need the content of every match.
    let store_sort: Option<Vec<SortKey>> = sort
        .iter()
        .filter(|(code, _)| code != "_id")
        .map(|(code, desc)| {
            let by = match code.as_str() {
                "_lastUpdated" => SortBy::LastUpdated,
                _ => match search_param::param(&ty, code) {
                    Some(def) if def.kind == ParamKind::Date => SortBy::Date(def.code),
                    _ => return None,
                },
            };
            Some(SortKey {
                by,
                descending: *desc,
            })
        })
        .collect();
    let principal = caller.principal.clone();
    let t = ty.clone();
    let keys_sort = store_sort.clone().unwrap_or_default();
    let searched = state
        .with_auth(move |s| {
            let more = match resolve_pending(s, &t, pending) {
                Ok(c) => c,
                Err(e) => return Ok(Err(e)),
            };
            clauses.extend(more);
            let query = Query {
                resource_type: t.clone(),
                clauses,
            };
            let found = s.search(&query, &keys_sort, MAX_MATCHES + 1)?;
            if found.len() as u64 > MAX_MATCHES {
                return Ok(Err(format!(
                    "more than {MAX_MATCHES} {t} resources match; narrow the search"
                )));
            }
            let allowed = rapport_auth::readable_keys(
                s,
                &principal,
                found.iter().map(|m| (t.as_str(), m.patient_key.as_deref())),
                now,
            )?;
            Ok(Ok(found
                .into_iter()
                .zip(allowed)
                .filter_map(|(m, ok)| ok.then_some(m))
                .collect::<Vec<SearchMatch>>()))
        })
        .await?;
    let mut matches =
        searched.map_err(|e| Outcome::new(StatusCode::BAD_REQUEST, "too-costly", e))?;
    let mut contents: HashMap<String, StoredResource> = HashMap::new();
    if !exact.is_empty() && !matches.is_empty() {
        // `:exact` compares whole values with case and accents: the index found the candidates
        // by their normalised values, their own strings decide.
        let keys: Vec<ResourceKey> = matches
            .iter()
            .map(|m| ResourceKey::new(ty.clone(), m.id.clone()))
            .collect();
        let read = state.with_auth(move |s| Ok(s.read_many(&keys)?)).await?;
        contents = read
            .into_iter()
            .filter(|r| {
                let v: Value = serde_json::from_str(&r.content).unwrap_or(Value::Null);
                exact.iter().all(|c| exact_holds(&v, c))
            })
            .map(|r| (r.key.id.clone(), r))
            .collect();
        matches.retain(|m| contents.contains_key(&m.id));
    }
    // Stable order: the sort keys, then the id, so that pages neither repeat nor skip.
    match &store_sort {
        _ if sort.is_empty() => matches.sort_by(|a, b| a.id.cmp(&b.id)),
        Some(_) => matches.sort_by(|a, b| {
            let mut values = 0;
            for (code, desc) in &sort {
                let o = if code == "_id" {
                    let o = a.id.cmp(&b.id);
                    if *desc {
                        o.reverse()
                    } else {
                        o
                    }
                } else {
                    let (x, y) = (a.sort[values], b.sort[values]);
                    values += 1;
                    compare(
                        &x.map(|v| SortValue::Number(v as f64)),
                        &y.map(|v| SortValue::Number(v as f64)),
                        *desc,
                    )
                };
                if o != Ordering::Equal {
                    return o;
                }
            }
            a.id.cmp(&b.id)
        }),
        None => {
            // Sorted by their content: every match is read.
            let keys: Vec<ResourceKey> = matches
                .iter()
                .map(|m| ResourceKey::new(ty.clone(), m.id.clone()))
                .collect();
            let read = state.with_auth(move |s| Ok(s.read_many(&keys)?)).await?;
            let mut keyed: Vec<(Vec<Option<SortValue>>, StoredResource)> = read
                .into_iter()
                .map(|r| {
                    let v: Value = serde_json::from_str(&r.content).unwrap_or(Value::Null);
                    let keys = sort
                        .iter()
                        .map(|(code, desc)| sort_value(&r, &v, code, *desc))
                        .collect();
                    (keys, r)
                })
                .collect();
            keyed.sort_by(|(ka, a), (kb, b)| {
                for (i, (_, desc)) in sort.iter().enumerate() {
                    let o = compare(&ka[i], &kb[i], *desc);
                    if o != Ordering::Equal {
                        return o;
                    }
                }
                a.key.id.cmp(&b.key.id)
            });
            matches = keyed
                .iter()
                .map(|(_, r)| SearchMatch {
                    id: r.key.id.clone(),
                    patient_key: r.patient_key.clone(),
                    sort: Vec::new(),
                })
                .collect();
            contents = keyed
                .into_iter()
                .map(|(_, r)| (r.key.id.clone(), r))
                .collect();
        }
    }
    let total = matches.len();
    // In the default order (by id) the next page starts after the last id shown, not at an
    // offset: resources written meanwhile then cause neither repeats nor skips.
    let cursor = sort.is_empty();
    let page_ids: Vec<String> = if summary == Summary::Count {
        Vec::new()
    } else {
        matches
            .into_iter()
            .filter(|m| after.as_ref().is_none_or(|a| m.id > *a))
            .skip(offset)
            .take(count + 1)
            .map(|m| m.id)
            .collect()
    };
    // Only the page is read (unless the sort read it already), in the page's order; a match
    // deleted since the search is left out.
    let unread: Vec<ResourceKey> = page_ids
        .iter()
        .filter(|id| !contents.contains_key(*id))
        .map(|id| ResourceKey::new(ty.clone(), id.clone()))
        .collect();
    if !unread.is_empty() {
        for r in state.with_auth(move |s| Ok(s.read_many(&unread)?)).await? {
            contents.insert(r.key.id.clone(), r);
        }
    }
    let page: Vec<StoredResource> = page_ids
        .iter()
        .filter_map(|id| contents.remove(id))
        .collect();
    let more = page.len() > count;
    let page: Vec<StoredResource> = page.into_iter().take(count).collect();
    let included = if page.is_empty() || (includes.is_empty() && revincludes.is_empty()) {
        Vec::new()
    } else {
        let (c, p) = (caller.clone(), page.clone());
        state
            .with_auth(move |s| Ok(gather_includes(s, &c, now, &p, &includes, &revincludes)))
            .await?
            .map_err(|e| Outcome::new(StatusCode::BAD_REQUEST, "too-costly", e))?
    };

    record_search(
        &state,
        &caller,
        &ty,
        page.iter()
            .chain(&included)
            .map(|p| format!("{}/{}", p.key.resource_type, p.key.id))
            .collect(),
        &kept,
        total,
        now,
    )
    .await?;

    let base = fhir_base(&state, &headers);
    let link = |offset: usize, after: Option<&str>| {
        let mut parts = kept.clone();
        parts.push(format!("_count={count}"));
        match after {
            Some(a) => parts.push(format!(
                "_after={}",
                percent_encoding::utf8_percent_encode(a, percent_encoding::NON_ALPHANUMERIC)
            )),
            None => parts.push(format!("_offset={offset}")),
        }
        format!("{base}/{ty}?{}", parts.join("&"))
    };
    let mut links = vec![json!({"relation": "self", "url": link(offset, after.as_deref())})];
    if summary != Summary::Count {
        if more {
            let next = if cursor {
                link(0, page.last().map(|r| r.key.id.as_str()))
            } else {
                link(offset + count, None)
            };
            links.push(json!({"relation": "next", "url": next}));
        }
        if offset > 0 && after.is_none() {
            links.push(
                json!({"relation": "previous", "url": link(offset.saturating_sub(count), None)}),
            );
        }
    }
    // Each resource is already JSON text: splice it in rather than parse and serialise it again.
    let mut body = String::with_capacity(
        page.iter()
            .chain(&included)
            .map(|r| r.content.len() + 96)
            .sum::<usize>()
            + 256,
    );
    body.push_str(&format!(
        "{{\"resourceType\":\"Bundle\",\"type\":\"searchset\",\"total\":{total},\"link\":{},\"entry\":[",
        Value::Array(links)
    ));
    let mut first = true;
    let mut push = |body: &mut String, r: &StoredResource, content: &str, mode: &str| {
        if !first {
            body.push(',');
        }
        first = false;
        body.push_str(&format!(
            "{{\"fullUrl\":{},\"resource\":",
            Value::String(format!("{base}/{}/{}", r.key.resource_type, r.key.id))
        ));
        body.push_str(content);
        body.push_str(&format!(",\"search\":{{\"mode\":\"{mode}\"}}}}"));
    };
    for r in &page {
        match &elements {
            Some(e) => push(&mut body, r, &subset(&r.content, e), "match"),
            None => push(&mut body, r, &r.content, "match"),
        }
    }
    for r in &included {
        push(&mut body, r, &r.content, "include");
    }
    if !warnings.is_empty() {
        let issues: Vec<Value> = warnings
            .iter()
            .map(|w| json!({"severity": "warning", "code": "not-supported", "diagnostics": w}))
            .collect();
        let outcome = json!({"resourceType": "OperationOutcome", "issue": issues});
        if !first {
            body.push(',');
        }
        body.push_str(&format!(
            "{{\"resource\":{outcome},\"search\":{{\"mode\":\"outcome\"}}}}"
        ));
    }
    body.push_str("]}");
    Ok(([(header::CONTENT_TYPE, FHIR_JSON)], body).into_response())
}

/// The audit record of a search, committed before the answer: what was shown (the readable
/// results only) and the parameters' names, never their values (names, birth dates are patient
/// data, which admins reading the trail may not see).
#[allow(clippy::too_many_arguments)]
pub(super) async fn record_search(
    state: &AppState,
    caller: &Caller,
    ty: &str,
    shown: Vec<String>,
    kept: &[String],
    total: usize,
    now: i64,
) -> Result<(), Outcome> {
    let mut record = rapport_auth::access_record(
        &caller.principal,
        &caller.source,
        Decision::Allow(rapport_access::policy::Basis::CareTeam),
        Action::List,
        None,
        shown,
        now,
    );
    record.basis = "readable-results".into();
    let names: Vec<&str> = kept
        .iter()
        .map(|p| p.split('=').next().unwrap_or(""))
        .filter(|n| n.chars().all(|c| c.is_ascii_graphic()))
        .collect();
    record.detail = format!("search {ty} by {}: {total} results", names.join(", "));
    state
        .with_auth(move |s| rapport_auth::record_access(s, &record, None).map(|_| ()))
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_precision_gives_the_search_range() {
        // search.html#number: 100 means [99.5, 100.5); 5.40 means [5.395, 5.405).
        let (lo, hi) = rapport_fhir::query::decimal_range("100").unwrap();
        assert!((lo - 99.5).abs() < 1e-9 && (hi - 100.5).abs() < 1e-9);
        let (lo, hi) = rapport_fhir::query::decimal_range("5.40").unwrap();
        assert!((lo - 5.395).abs() < 1e-9 && (hi - 5.405).abs() < 1e-9);
        assert!(rapport_fhir::query::decimal_range("five").is_none());
    }

    #[test]
    fn missing_values_sort_last_both_ways() {
        let a = Some(SortValue::Number(1.0));
        assert_eq!(compare(&a, &None, false), Ordering::Less);
        assert_eq!(compare(&a, &None, true), Ordering::Less);
        assert_eq!(
            compare(&a, &Some(SortValue::Number(2.0)), true),
            Ordering::Greater
        );
    }
}
