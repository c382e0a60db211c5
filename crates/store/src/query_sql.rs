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

/// `SELECT id` of current resources matching every clause of `query`.
/// Identity matching needs to know only whether 0, 1 or several resources match.
pub(crate) fn find_ids(query: &Query, layout: &dyn IndexLayout) -> Sql {
    find_ids_limited(query, layout, 3)
}

/// Ids of up to `limit` current resources matching every clause.
pub(crate) fn find_ids_limited(query: &Query, layout: &dyn IndexLayout, limit: u64) -> Sql {
    let mut sql = Sql::new(layout.sign());
    let ty = query.resource_type.as_str();
    let mut parts: Vec<String> = query
        .clauses
        .iter()
        .map(|clause| clause_ids(clause, ty, &mut sql, layout))
        .collect();
    if parts.is_empty() {
        // No criteria: every current resource of the type (search.html, `GET [base]/[type]`).
        let t = sql.text_arg(ty);
        parts.push(format!(
            "SELECT id FROM resource WHERE resource_type = {t} AND deleted = {}",
            false_literal(layout.sign())
        ));
    }
    sql.text = format!("{} LIMIT {limit}", parts.join(" INTERSECT "));
    sql
}

/// `SELECT id` of the current resources of type `ty` that satisfy one clause.
fn clause_ids(clause: &Clause, ty: &str, sql: &mut Sql, layout: &dyn IndexLayout) -> String {
    let all_of_type = |sql: &mut Sql| {
        let t = sql.text_arg(ty);
        format!(
            "SELECT id FROM resource WHERE resource_type = {t} AND deleted = {}",
            false_literal(layout.sign())
        )
    };
    match clause {
        Clause::Id(id) => {
            let t = sql.text_arg(ty);
            let id = sql.text_arg(id);
            format!(
                "SELECT id FROM resource WHERE resource_type = {t} AND id = {id} AND deleted = {}",
                false_literal(layout.sign())
            )
        }
        Clause::Token {
            param,
            system,
            code,
        } => {
            let c = sql.text_arg(code);
            let condition = match system {
                Some(s) => format!("code = {c} AND system = {}", sql.text_arg(s)),
                None => format!("code = {c}"),
            };
            layout.select_ids(sql, "idx_token", ty, param, &condition)
        }
        Clause::TokenSystem { param, system } => {
            let condition = format!("system = {}", sql.text_arg(system));
            layout.select_ids(sql, "idx_token", ty, param, &condition)
        }
        Clause::TokenNot {
            param,
            system,
            code,
        } => {
            let all = all_of_type(sql);
            let matching = clause_ids(
                &Clause::Token {
                    param,
                    system: system.clone(),
                    code: code.clone(),
                },
                ty,
                sql,
                layout,
            );
            format!("SELECT id FROM ({all} EXCEPT {matching}) AS n")
        }
        Clause::String { param, prefix } => {
            let lo = sql.text_arg(prefix);
            let hi = sql.text_arg(&prefix_end(prefix));
            let condition = format!("value >= {lo} AND value < {hi}");
            layout.select_ids(sql, "idx_string", ty, param, &condition)
        }
        Clause::StringContains { param, text } => {
            // Normalised values hold no LIKE wildcards that matter: `%` and `_` in the search
            // text are escaped.
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            let pattern = sql.text_arg(&format!("%{escaped}%"));
            let condition = format!("value LIKE {pattern} ESCAPE '\\'");
            layout.select_ids(sql, "idx_string", ty, param, &condition)
        }
        Clause::StringExact { param, value } => {
            let condition = format!("value = {}", sql.text_arg(value));
            layout.select_ids(sql, "idx_string", ty, param, &condition)
        }
        Clause::Date {
            param,
            prefix,
            start,
            end,
        } => {
            let condition = date_condition(sql, *prefix, *start, *end, "start_ms", "end_ms");
            layout.select_ids(sql, "idx_date", ty, param, &condition)
        }
        Clause::LastUpdated { prefix, start, end } => {
            // A point in time: the range [t, t + 1 ms).
            let condition = date_condition(
                sql,
                *prefix,
                *start,
                *end,
                "last_updated",
                "(last_updated + 1)",
            );
            format!("{} AND {condition}", all_of_type(sql))
        }
        Clause::Reference {
            param,
            target_type,
            target_id,
        } => {
            let tt = sql.text_arg(target_type);
            let ti = sql.text_arg(target_id);
            let condition = format!("target_type = {tt} AND target_id = {ti}");
            layout.select_ids(sql, "idx_reference", ty, param, &condition)
        }
        Clause::Quantity {
            param,
            prefix,
            low,
            high,
            system,
            code,
        } => {
            use rapport_fhir::query::DatePrefix as P;
            let mid = (low + high) / 2.0;
            let mut bound = |v: f64| sql.bind(Arg::Real(v));
            // The same comparisons as rapport_fhir::query::quantity_holds.
            let mut condition = match prefix {
                P::Eq => format!("value >= {} AND value < {}", bound(*low), bound(*high)),
                P::Ne => format!(
                    "NOT (value >= {} AND value < {})",
                    bound(*low),
                    bound(*high)
                ),
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
            layout.select_ids(sql, "idx_quantity", ty, param, &condition)
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
            let with_value = layout.select_ids(sql, table, ty, param, "1 = 1");
            if *missing {
                let all = all_of_type(sql);
                format!("SELECT id FROM ({all} EXCEPT {with_value}) AS m")
            } else {
                with_value
            }
        }
        Clause::Any(clauses) if clauses.is_empty() => {
            // No alternative (a chain that found nothing): nothing matches.
            "SELECT id FROM resource WHERE 1 = 0".to_owned()
        }
        Clause::Any(clauses) => {
            let parts: Vec<String> = clauses
                .iter()
                .map(|c| clause_ids(c, ty, sql, layout))
                .collect();
            format!("SELECT id FROM ({}) AS a", parts.join(" UNION "))
        }
    }
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
