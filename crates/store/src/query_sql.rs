//! SQL for the searches both backends share, written once with numbered placeholders. The two
//! dialects differ only in the placeholder sign (`?1` for SQLite, `$1` for PostgreSQL).

use rapport_fhir::query::{Clause, Query};

use crate::PatientSearch;

/// A value bound to a placeholder.
#[derive(Debug, Clone)]
pub(crate) enum Arg {
    Text(String),
    Int(i64),
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
    fn text_arg(&mut self, s: &str) -> String {
        self.bind(Arg::Text(s.to_owned()))
    }
}

/// The upper bound of a prefix range in byte order: every string starting with `prefix` sorts
/// below `prefix` followed by U+10FFFF.
pub(crate) fn prefix_end(prefix: &str) -> String {
    format!("{prefix}\u{10FFFF}")
}

/// `SELECT id` of current resources matching every clause of `query`.
pub(crate) fn find_ids(query: &Query, sign: char) -> Sql {
    let mut sql = Sql::new(sign);
    let mut parts = Vec::new();
    for clause in &query.clauses {
        let ty = sql.text_arg(&query.resource_type);
        let part = match clause {
            Clause::Id(id) => {
                let id = sql.text_arg(id);
                format!("SELECT id FROM resource WHERE resource_type = {ty} AND id = {id} AND deleted = {}", false_literal(sign))
            }
            Clause::Token {
                param,
                system,
                code,
            } => {
                let p = sql.text_arg(param);
                let c = sql.text_arg(code);
                match system {
                    Some(s) => {
                        let s = sql.text_arg(s);
                        format!("SELECT id FROM idx_token WHERE resource_type = {ty} AND param = {p} AND code = {c} AND system = {s}")
                    }
                    None => format!(
                        "SELECT id FROM idx_token WHERE resource_type = {ty} AND param = {p} AND code = {c}"
                    ),
                }
            }
            Clause::String { param, prefix } => {
                let p = sql.text_arg(param);
                let lo = sql.text_arg(prefix);
                let hi = sql.text_arg(&prefix_end(prefix));
                format!("SELECT id FROM idx_string WHERE resource_type = {ty} AND param = {p} AND value >= {lo} AND value < {hi}")
            }
            Clause::Reference {
                param,
                target_type,
                target_id,
            } => {
                let p = sql.text_arg(param);
                let tt = sql.text_arg(target_type);
                let ti = sql.text_arg(target_id);
                format!("SELECT id FROM idx_reference WHERE resource_type = {ty} AND param = {p} AND target_type = {tt} AND target_id = {ti}")
            }
        };
        parts.push(part);
    }
    sql.text = format!("{} LIMIT 3", parts.join(" INTERSECT "));
    sql
}

fn false_literal(sign: char) -> &'static str {
    if sign == '$' {
        "FALSE"
    } else {
        "0"
    }
}

pub(crate) const STORED_COLUMNS: &str = "r.resource_type, r.id, v.version, v.last_updated, v.deleted, v.content, s.kind, s.name, s.received_at, v.source_entry";
pub(crate) const STORED_JOINS: &str = "FROM resource r \
     JOIN resource_version v ON v.resource_type = r.resource_type AND v.id = r.id AND v.version = r.version \
     LEFT JOIN source s ON s.source_id = v.source_id";

/// The WHERE clause of the patient list; returns it with its arguments bound in `sql`.
pub(crate) fn patient_filter(search: &PatientSearch, sql: &mut Sql) -> String {
    let mut filter = format!(
        "r.resource_type = 'Patient' AND r.deleted = {}",
        false_literal(sql.sign)
    );
    for word in &search.name_words {
        let lo = sql.text_arg(word);
        let hi = sql.text_arg(&prefix_end(word));
        filter.push_str(&format!(
            " AND r.id IN (SELECT id FROM idx_string WHERE resource_type = 'Patient' AND param = 'name' AND value >= {lo} AND value < {hi})"
        ));
    }
    if let Some(identifier) = &search.identifier {
        let c = sql.text_arg(identifier);
        filter.push_str(&format!(
            " AND r.id IN (SELECT id FROM idx_token WHERE resource_type = 'Patient' AND param = 'identifier' AND code = {c})"
        ));
    }
    if let Some((start, end)) = search.birth_date {
        let s = sql.bind(Arg::Int(start));
        let e = sql.bind(Arg::Int(end));
        filter.push_str(&format!(
            " AND r.id IN (SELECT id FROM idx_date WHERE resource_type = 'Patient' AND param = 'birthdate' AND start_ms >= {s} AND end_ms <= {e})"
        ));
    }
    filter
}
