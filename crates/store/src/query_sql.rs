//! SQL for the searches both backends share, written once with numbered placeholders. The two
//! dialects differ only in the placeholder sign (`?1` for SQLite, `$1` for PostgreSQL).

use rapport_fhir::query::{Clause, Query};

use crate::PatientSearch;

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
    Real(f64),
}

#[derive(Clone)]
pub(crate) struct Sql {
    pub text: String,
    pub args: Vec<Arg>,
    sign: char,
}

impl Sql {
    pub(crate) fn new(sign: char) -> Self {
        Sql {
            text: String::new(),
            args: Vec::new(),
            sign,
        }
    }
    /// Bind `arg` and return its placeholder.
    pub(crate) fn bind(&mut self, arg: Arg) -> String {
        self.args.push(arg);
        format!("{}{}", self.sign, self.args.len())
    }
    pub(crate) fn text_arg(&mut self, s: &str) -> String {
        self.bind(Arg::Text(s.to_owned()))
    }
}

/// The upper bound of a prefix range in byte order: every string starting with `prefix` sorts
/// below `prefix` followed by U+10FFFF.
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// How a backend lays out its index tables: the one thing the shared search SQL needs to know.
pub(crate) trait IndexLayout {
    /// The placeholder sign: `?` (SQLite) or `$` (PostgreSQL).
    fn sign(&self) -> char;
    /// `SELECT <resource id>` from index `table` for rows of parameter `code` of
    /// `resource_type` that satisfy `condition` (on the table's value columns).
    fn select_ids(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
    ) -> String;
}

/// `SELECT id, …` of current resources matching every clause of `query`, at most 3:
/// identity matching needs to know only whether 0, 1 or several resources match.
pub(crate) fn find_ids(query: &Query, layout: &dyn SearchLayout) -> Sql {
    search(query, &[], layout, 3)
}

/// The date comparison of `prefix` (as `DatePrefix::holds`) between a stored range given by two
/// column expressions and the search range `[start, end)`. Only the bounds a comparison uses are
/// bound (PostgreSQL refuses unused parameters).
fn date_condition(
    sql: &mut Sql,
    prefix: rapport_fhir::query::DatePrefix,
    start: i64,
    end: i64,
    start_col: &str,
    end_col: &str,
) -> String {
    use rapport_fhir::query::DatePrefix as P;
    let (uses_start, uses_end) = match prefix {
        P::Gt | P::Sa => (false, true),
        P::Lt | P::Eb => (true, false),
        _ => (true, true),
    };
    let vs = if uses_start {
        sql.bind(Arg::Int(start))
    } else {
        String::new()
    };
    let ve = if uses_end {
        sql.bind(Arg::Int(end))
    } else {
        String::new()
    };
    let eq = format!("({start_col} >= {vs} AND {end_col} <= {ve})");
    match prefix {
        P::Eq => eq,
        P::Ne => format!("NOT {eq}"),
        P::Gt => format!("{end_col} > {ve}"),
        P::Lt => format!("{start_col} < {vs}"),
        P::Ge => format!("({end_col} > {ve} OR {eq})"),
        P::Le => format!("({start_col} < {vs} OR {eq})"),
        P::Sa => format!("{start_col} >= {ve}"),
        P::Eb => format!("{end_col} <= {vs}"),
        P::Ap => format!("({start_col} < {ve} AND {end_col} > {vs})"),
    }
}

fn false_literal(sign: char) -> &'static str {
    if sign == '$' {
        "FALSE"
    } else {
        "0"
    }
}

pub(crate) const STORED_COLUMNS: &str = "r.resource_type, r.id, v.version, v.last_updated, v.deleted, v.content, s.kind, s.name, s.received_at, v.source_entry, v.patient_key";
pub(crate) const STORED_JOINS: &str = "FROM resource r \
     JOIN resource_version v ON v.resource_type = r.resource_type AND v.id = r.id AND v.version = r.version \
     LEFT JOIN source s ON s.source_id = v.source_id";

/// The WHERE clause of the patient list; returns it with its arguments bound in `sql`.
pub(crate) fn patient_filter(
    search: &PatientSearch,
    sql: &mut Sql,
    layout: &dyn IndexLayout,
) -> String {
    let mut filter = format!(
        "r.resource_type = 'Patient' AND r.deleted = {}",
        false_literal(sql.sign)
    );
    for word in &search.name_words {
        let lo = sql.text_arg(word);
        let hi = sql.text_arg(&prefix_end(word));
        let ids = layout.select_ids(
            sql,
            "idx_string",
            "Patient",
            "name",
            &format!("value >= {lo} AND value < {hi}"),
        );
        filter.push_str(&format!(" AND r.id IN ({ids})"));
    }
    if let Some(identifier) = &search.identifier {
        let c = sql.text_arg(identifier);
        let ids = layout.select_ids(
            sql,
            "idx_token",
            "Patient",
            "identifier",
            &format!("code = {c}"),
        );
        filter.push_str(&format!(" AND r.id IN ({ids})"));
    }
    if let Some((start, end)) = search.birth_date {
        let s = sql.bind(Arg::Int(start));
        let e = sql.bind(Arg::Int(end));
        let ids = layout.select_ids(
            sql,
            "idx_date",
            "Patient",
            "birthdate",
            &format!("start_ms >= {s} AND end_ms <= {e}"),
        );
        filter.push_str(&format!(" AND r.id IN ({ids})"));
    }
    if let Some(only) = &search.only_ids {
        if only.is_empty() {
            filter.push_str(" AND 1 = 0");
        } else {
            let args: Vec<String> = only.iter().map(|id| sql.text_arg(id)).collect();
            filter.push_str(&format!(" AND r.id IN ({})", args.join(", ")));
        }
    }
    filter
}

/// How a backend finds a search's matches (used by [`search`]): the outer row `o` is a current
/// resource; each clause becomes a condition on it, and one selective clause drives the search.
pub(crate) trait SearchLayout: IndexLayout {
    /// The keys (SQLite: version rows; PostgreSQL: ids) of index rows of parameter `code` of
    /// `resource_type` in `table` satisfying `condition`.
    fn select_keys(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
    ) -> String;
    /// The keys of current resources of `resource_type` satisfying `condition` (on `resource`).
    fn select_resource_keys(&self, sql: &mut Sql, resource_type: &str, condition: &str) -> String;
    /// Whether the candidate `row` (the alias of a row holding its key: `k` for a driving key,
    /// `o` for the outer row) has an index row of `code` in `table` satisfying `condition`.
    /// `point` says the condition pins the table's key down to the resource (an equality on every
    /// key column before the row's own), so a lookup per candidate is cheap.
    #[allow(clippy::too_many_arguments)]
    fn has_row(
        &self,
        sql: &mut Sql,
        table: &str,
        resource_type: &str,
        code: &str,
        condition: &str,
        point: bool,
        row: &str,
    ) -> String;
    /// `SELECT o.id, o.patient_key[, extra]` from the outer rows of `resource_type` driven by the
    /// key set `driver` (the keys as `k`), restricted by `key_conditions` (on `k`, checked before
    /// the outer row is read) and `row_conditions` (on `o`).
    fn frame(
        &self,
        sql: &mut Sql,
        resource_type: &str,
        driver: Option<&str>,
        extra_columns: &[String],
        key_conditions: &[String],
        row_conditions: &[String],
    ) -> String;
    /// An aggregate (`MIN(start_ms)`, `MAX(end_ms)`) over the outer row's date rows of `code`.
    fn date_aggregate(
        &self,
        sql: &mut Sql,
        resource_type: &str,
        code: &str,
        aggregate: &str,
    ) -> String;
}

/// The columns of a search's matches: id, patient key, then the sort columns.
pub(crate) fn match_columns(extra: &[String]) -> String {
    std::iter::once("o.id, o.patient_key")
        .chain(extra.iter().map(String::as_str))
        .collect::<Vec<_>>()
        .join(", ")
}

/// An index-table clause: its table, parameter, condition on the table's value columns, and
/// whether the condition is an equality on everything that precedes the row key in the table's
/// primary key (see [`SearchLayout::has_row`]).
struct IndexPart {
    table: &'static str,
    param: &'static str,
    condition: String,
    point: bool,
}

fn index_part(clause: &Clause, sql: &mut Sql) -> Option<IndexPart> {
    let part = |table, param, condition, point| {
        Some(IndexPart {
            table,
            param,
            condition,
            point,
        })
    };
    match clause {
        Clause::Token {
            param,
            system,
            code,
        } => {
            let c = sql.text_arg(code);
            match system {
                Some(s) => {
                    let s = sql.text_arg(s);
                    part(
                        "idx_token",
                        param,
                        format!("code = {c} AND system = {s}"),
                        true,
                    )
                }
                None => part("idx_token", param, format!("code = {c}"), false),
            }
        }
        Clause::TokenSystem { param, system } => {
            let condition = format!("system = {}", sql.text_arg(system));
            part("idx_token", param, condition, false)
        }
        Clause::String { param, prefix } => {
            let lo = sql.text_arg(prefix);
            let hi = sql.text_arg(&prefix_end(prefix));
            part(
                "idx_string",
                param,
                format!("value >= {lo} AND value < {hi}"),
                false,
            )
        }
        Clause::StringContains { param, text } => {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pattern = sql.text_arg(&format!("%{escaped}%"));
            part(
                "idx_string",
                param,
                format!("value LIKE {pattern} ESCAPE '\\'"),
                false,
            )
        }
        Clause::StringExact { param, value, .. } => {
            let condition = format!("value = {}", sql.text_arg(value));
            part("idx_string", param, condition, false)
        }
        Clause::Date {
            param,
            prefix,
            start,
            end,
        } => {
            let condition = date_condition(sql, *prefix, *start, *end, "start_ms", "end_ms");
            // Date rows are also indexed by version row (SQLite schema 8) and by resource
            // (PostgreSQL's key), so a candidate's dates are one lookup away.
            part("idx_date", param, condition, true)
        }
        Clause::Reference {
            param,
            target_type,
            target_id,
        } => {
            let tt = sql.text_arg(target_type);
            let ti = sql.text_arg(target_id);
            part(
                "idx_reference",
                param,
                format!("target_type = {tt} AND target_id = {ti}"),
                true,
            )
        }
        Clause::Quantity { param, .. } => {
            let Clause::Quantity {
                prefix,
                low,
                high,
                system,
                code,
                ..
            } = clause
            else {
                unreachable!()
            };
            let condition = quantity_condition(sql, *prefix, *low, *high, system, code);
            part("idx_quantity", param, condition, false)
        }
        _ => None,
    }
}

fn quantity_condition(
    sql: &mut Sql,
    prefix: rapport_fhir::query::DatePrefix,
    low: f64,
    high: f64,
    system: &Option<String>,
    code: &Option<String>,
) -> String {
    use rapport_fhir::query::DatePrefix as P;
    let mid = (low + high) / 2.0;
    let mut bound = |v: f64| sql.bind(Arg::Real(v));
    // The same comparisons as rapport_fhir::query::quantity_holds.
    let mut condition = match prefix {
        P::Eq => format!("value >= {} AND value < {}", bound(low), bound(high)),
        P::Ne => format!("NOT (value >= {} AND value < {})", bound(low), bound(high)),
        P::Gt | P::Sa => format!("value > {}", bound(mid)),
        P::Lt | P::Eb => format!("value < {}", bound(mid)),
        P::Ge => format!("value >= {}", bound(mid)),
        P::Le => format!("value <= {}", bound(mid)),
        P::Ap => {
            let tolerance = (mid * 0.1).abs().max(high - mid);
            format!(
                "value >= {} AND value <= {}",
                bound(mid - tolerance),
                bound(mid + tolerance)
            )
        }
    };
    if let Some(s) = system {
        condition.push_str(&format!(" AND system = {}", sql.text_arg(s)));
    }
    if let Some(c) = code {
        let c1 = sql.text_arg(c);
        let c2 = sql.text_arg(c);
        condition.push_str(&format!(" AND (code = {c1} OR unit = {c2})"));
    }
    condition
}

/// How selective a clause is expected to be, when it can drive a search (lower drives first):
/// an id, then references (a patient's resources), tokens with a system, exact strings, tokens,
/// string prefixes, quantities and dates. Negations, `:missing` and `_lastUpdated` never drive.
fn drive_rank(clause: &Clause) -> Option<u32> {
    Some(match clause {
        Clause::Id(_) => 0,
        Clause::Reference { .. } => 1,
        Clause::Token {
            system: Some(_), ..
        } => 2,
        Clause::StringExact { .. } => 3,
        Clause::Token { .. } => 4,
        Clause::String { .. } => 5,
        Clause::TokenSystem { .. } => 6,
        Clause::Quantity { .. } => 7,
        Clause::Date { .. } => 8,
        Clause::Any(cs) if !cs.is_empty() => {
            let worst = cs
                .iter()
                .map(drive_rank)
                .try_fold(0, |w, r| r.map(|r| w.max(r)))?;
            worst + 1
        }
        _ => return None,
    })
}

/// Every clause an `_id` (an `Any` of them is an id list: chains and `_has` give those).
fn all_ids(clauses: &[Clause]) -> Option<Vec<&str>> {
    clauses
        .iter()
        .map(|c| match c {
            Clause::Id(id) => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

fn id_list(sql: &mut Sql, ids: &[&str]) -> String {
    let args: Vec<String> = ids.iter().map(|id| sql.text_arg(id)).collect();
    args.join(", ")
}

/// The key set of a clause that can drive (see [`drive_rank`]).
fn driver_keys(clause: &Clause, ty: &str, sql: &mut Sql, layout: &dyn SearchLayout) -> String {
    match clause {
        Clause::Id(id) => {
            let id = sql.text_arg(id);
            layout.select_resource_keys(sql, ty, &format!("id = {id}"))
        }
        Clause::Any(cs) => match all_ids(cs) {
            Some(ids) => {
                let list = id_list(sql, &ids);
                layout.select_resource_keys(sql, ty, &format!("id IN ({list})"))
            }
            None => cs
                .iter()
                .map(|c| driver_keys(c, ty, sql, layout))
                .collect::<Vec<_>>()
                .join(" UNION "),
        },
        _ => match index_part(clause, sql) {
            Some(p) => layout.select_keys(sql, p.table, ty, p.param, &p.condition),
            None => layout.select_resource_keys(sql, ty, "1 = 1"),
        },
    }
}

/// Whether a clause needs the outer row itself (its id or last update), not only its key.
fn needs_row(clause: &Clause) -> bool {
    match clause {
        Clause::Id(_) | Clause::LastUpdated { .. } => true,
        Clause::Any(cs) => all_ids(cs).is_some() || cs.iter().any(needs_row),
        _ => false,
    }
}

/// A clause as a condition on the candidate `row` (see [`SearchLayout::has_row`]); clauses that
/// [`needs_row`] are on the outer row `o`.
fn condition(
    clause: &Clause,
    ty: &str,
    sql: &mut Sql,
    layout: &dyn SearchLayout,
    row: &str,
) -> String {
    match clause {
        Clause::Id(id) => format!("o.id = {}", sql.text_arg(id)),
        Clause::TokenNot {
            param,
            system,
            code,
        } => {
            let token = Clause::Token {
                param,
                system: system.clone(),
                code: code.clone(),
            };
            format!("NOT {}", condition(&token, ty, sql, layout, row))
        }
        Clause::LastUpdated { prefix, start, end } => {
            // A point in time: the range [t, t + 1 ms).
            date_condition(
                sql,
                *prefix,
                *start,
                *end,
                "o.last_updated",
                "(o.last_updated + 1)",
            )
        }
        Clause::Missing {
            param,
            kind,
            missing,
        } => {
            use rapport_fhir::search_param::ParamKind as K;
            let table = match kind {
                K::Token | K::Uri => "idx_token",
                K::String => "idx_string",
                K::Date => "idx_date",
                K::Reference => "idx_reference",
                K::Number | K::Quantity => "idx_quantity",
            };
            let has = layout.has_row(sql, table, ty, param, "1 = 1", false, row);
            if *missing {
                format!("NOT {has}")
            } else {
                has
            }
        }
        Clause::Any(cs) if cs.is_empty() => "1 = 0".to_owned(),
        Clause::Any(cs) => match all_ids(cs) {
            Some(ids) => format!("o.id IN ({})", id_list(sql, &ids)),
            None => {
                let parts: Vec<String> = cs
                    .iter()
                    .map(|c| condition(c, ty, sql, layout, row))
                    .collect();
                format!("({})", parts.join(" OR "))
            }
        },
        _ => match index_part(clause, sql) {
            Some(p) => layout.has_row(sql, p.table, ty, p.param, &p.condition, p.point, row),
            None => "1 = 0".to_owned(),
        },
    }
}

/// What a search's matches are ordered by, as the store computes it.
pub(crate) fn sort_column(
    key: &crate::SortKey,
    ty: &str,
    sql: &mut Sql,
    layout: &dyn SearchLayout,
) -> String {
    match (&key.by, key.descending) {
        (crate::SortBy::LastUpdated, _) => "o.last_updated".to_owned(),
        // search.html#sort leaves ranges to the server: ascending by the earliest start,
        // descending by the latest end (as Rapport always has).
        (crate::SortBy::Date(code), false) => {
            layout.date_aggregate(sql, ty, code, "MIN(t.start_ms)")
        }
        (crate::SortBy::Date(code), true) => layout.date_aggregate(sql, ty, code, "MAX(t.end_ms)"),
    }
}

/// The matches of `query` (id, patient key, then one column per sort key), at most `limit`,
/// unordered. One clause drives (the most selective kind, [`drive_rank`]); the others are
/// checked per candidate, so a search costs what its most selective clause finds rather than
/// the sum of what every clause finds.
pub(crate) fn search(
    query: &Query,
    sort: &[crate::SortKey],
    layout: &dyn SearchLayout,
    limit: u64,
) -> Sql {
    let mut sql = Sql::new(layout.sign());
    let ty = query.resource_type.as_str();
    let driver_index = query
        .clauses
        .iter()
        .enumerate()
        .filter_map(|(i, c)| drive_rank(c).map(|r| (r, i)))
        .min()
        .map(|(_, i)| i);
    let driver = driver_index.map(|i| driver_keys(&query.clauses[i], ty, &mut sql, layout));
    let (mut on_key, mut on_row) = (Vec::new(), Vec::new());
    for (i, c) in query.clauses.iter().enumerate() {
        if Some(i) == driver_index {
            continue;
        }
        if needs_row(c) {
            on_row.push(condition(c, ty, &mut sql, layout, "o"));
        } else {
            on_key.push(condition(c, ty, &mut sql, layout, "k"));
        }
    }
    let columns: Vec<String> = sort
        .iter()
        .map(|k| sort_column(k, ty, &mut sql, layout))
        .collect();
    let frame = layout.frame(&mut sql, ty, driver.as_deref(), &columns, &on_key, &on_row);
    sql.text = format!("{frame} LIMIT {limit}");
    sql
}
