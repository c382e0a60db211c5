//! The small subset of FHIRPath that search parameter expressions use and that Rapport can index.
//!
//! An expression is a union (`|`) of alternatives. Each supported alternative is a path from a
//! type name (`Observation.component.code`), optionally with type casts (`.ofType(T)`, `.as(T)`,
//! `(… as T)`) and a final filter (`.where(system='phone')`, `.where(resolve() is Patient)`).
//! Anything else (`exists()`, `extension('…')`, `first()`, `[0]`, boolean logic, …) is rejected
//! with a short reason, and the generator leaves that alternative out.

/// One step of a parsed alternative, after its root type name.
#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    /// `.name`
    Child(String),
    /// `.ofType(T)`, `.as(T)` or `… as T`
    Cast(String),
    /// `.where(name='value')`
    WhereEq(String, String),
    /// `.where(resolve() is T)`
    ResolveIs(String),
}

/// Splits a FHIRPath expression into its top-level `|` alternatives.
pub fn split_union(expr: &str) -> Vec<String> {
    let mut alternatives = Vec::new();
    let (mut depth, mut quoted, mut current) = (0i32, false, String::new());
    for c in expr.chars() {
        match c {
            '\'' => quoted = !quoted,
            '(' if !quoted => depth += 1,
            ')' if !quoted => depth -= 1,
            '|' if !quoted && depth == 0 => {
                alternatives.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(c);
    }
    alternatives.push(current.trim().to_string());
    alternatives.retain(|a| !a.is_empty());
    alternatives
}

/// The type name an alternative starts from (`(Observation.value as Quantity)` -> `Observation`),
/// found without parsing the rest, so that even untranslatable alternatives can be attributed.
pub fn root_of(alternative: &str) -> &str {
    let s = alternative.trim_start_matches(|c: char| c == '(' || c.is_whitespace());
    let end = s
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(s.len());
    &s[..end]
}

/// Whether an alternative's root is an element of the resource the expression is evaluated on
/// rather than a type name: `name | alias` means `InsurancePlan.name | InsurancePlan.alias`.
pub fn is_implicit_root(root: &str) -> bool {
    root.starts_with(|c: char| c.is_ascii_lowercase())
}

/// Parses one alternative into its root type name and steps, or says why it is not supported.
/// For an implicit root (see [`is_implicit_root`]), the root is empty and the first step is it.
pub fn parse_alternative(src: &str) -> Result<(String, Vec<Op>), String> {
    let mut p = Parser {
        chars: src.chars().collect(),
        pos: 0,
    };
    let (root, mut ops) = if p.eat('(') {
        let (root, mut ops) = p.path()?;
        if p.eat_keyword("as") {
            ops.push(Op::Cast(p.ident()?));
        }
        p.expect(')')?;
        p.steps(&mut ops)?;
        (root, ops)
    } else {
        p.path()?
    };
    if p.eat_keyword("as") {
        ops.push(Op::Cast(p.ident()?));
    }
    p.skip_ws();
    if p.pos < p.chars.len() {
        let rest: String = p.chars[p.pos..].iter().collect();
        return Err(format!("unsupported FHIRPath at `{rest}`"));
    }
    let filter = |op: &Op| matches!(op, Op::WhereEq(..) | Op::ResolveIs(_));
    if ops.iter().rev().skip(1).any(filter) {
        return Err("where() followed by more steps".into());
    }
    if is_implicit_root(&root) {
        ops.insert(0, Op::Child(root));
        return Ok((String::new(), ops));
    }
    Ok((root, ops))
}

struct Parser {
    chars: Vec<char>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        let found = self.peek() == Some(c);
        if found {
            self.pos += 1;
        }
        found
    }

    fn expect(&mut self, c: char) -> Result<(), String> {
        if self.eat(c) {
            return Ok(());
        }
        let rest: String = self.chars[self.pos..].iter().collect();
        Err(format!("unsupported FHIRPath at `{rest}` (expected `{c}`)"))
    }

    fn ident(&mut self) -> Result<String, String> {
        self.skip_ws();
        let start = self.pos;
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            self.pos += 1;
        }
        let ident: String = self.chars[start..self.pos].iter().collect();
        if ident.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_') {
            Ok(ident)
        } else {
            let rest: String = self.chars[start..].iter().collect();
            Err(format!(
                "unsupported FHIRPath at `{rest}` (expected a name)"
            ))
        }
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let start = self.pos;
        if self.ident().is_ok_and(|i| i == keyword) {
            return true;
        }
        self.pos = start;
        false
    }

    fn string_literal(&mut self) -> Result<String, String> {
        self.expect('\'')?;
        let start = self.pos;
        while self.peek().is_some_and(|c| c != '\'' && c != '\\') {
            self.pos += 1;
        }
        let value = self.chars[start..self.pos].iter().collect();
        self.expect('\'')?;
        Ok(value)
    }

    /// `Name(.step)*`
    fn path(&mut self) -> Result<(String, Vec<Op>), String> {
        let root = self.ident()?;
        let mut ops = Vec::new();
        self.steps(&mut ops)?;
        Ok((root, ops))
    }

    /// `(.name | .function(args))*`
    fn steps(&mut self, ops: &mut Vec<Op>) -> Result<(), String> {
        while self.peek() == Some('.') {
            self.pos += 1;
            let name = self.ident()?;
            if self.peek() == Some('(') {
                self.pos += 1;
                ops.push(self.function(&name)?);
                self.expect(')')?;
            } else {
                ops.push(Op::Child(name));
            }
        }
        Ok(())
    }

    /// The arguments of `name(…)`, the opening parenthesis already read.
    fn function(&mut self, name: &str) -> Result<Op, String> {
        match name {
            "ofType" | "as" => Ok(Op::Cast(self.ident()?)),
            "where" => {
                let start = self.pos;
                if self.eat_keyword("resolve")
                    && self.eat('(')
                    && self.eat(')')
                    && self.eat_keyword("is")
                {
                    return Ok(Op::ResolveIs(self.ident()?));
                }
                self.pos = start;
                let key = self.ident()?;
                if !self.eat('=') {
                    return Err("unsupported where() condition".into());
                }
                Ok(Op::WhereEq(key, self.string_literal()?))
            }
            other => Err(format!("unsupported function {other}()")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn child(s: &str) -> Op {
        Op::Child(s.into())
    }

    #[test]
    fn splits_top_level_unions_only() {
        assert_eq!(
            split_union("A.b.where(x='a|b') | (A.c as T)|A.d"),
            ["A.b.where(x='a|b')", "(A.c as T)", "A.d"]
        );
    }

    #[test]
    fn parses_supported_forms() {
        let parse = |s| parse_alternative(s).unwrap();
        assert_eq!(
            parse("Patient.name.family"),
            ("Patient".into(), vec![child("name"), child("family")])
        );
        assert_eq!(
            parse("(Observation.value as CodeableConcept).text").1,
            [
                child("value"),
                Op::Cast("CodeableConcept".into()),
                child("text")
            ]
        );
        assert_eq!(
            parse("Observation.component.value.ofType(Quantity)").1,
            [
                child("component"),
                child("value"),
                Op::Cast("Quantity".into())
            ]
        );
        assert_eq!(
            parse("Patient.telecom.where(system='phone')").1,
            [
                child("telecom"),
                Op::WhereEq("system".into(), "phone".into())
            ]
        );
        assert_eq!(
            parse("Observation.subject.where(resolve() is Patient)").1,
            [child("subject"), Op::ResolveIs("Patient".into())]
        );
    }

    #[test]
    fn rejects_what_cannot_be_indexed_faithfully() {
        for s in [
            "Patient.deceased.exists() and Patient.deceased != false",
            "Bundle.entry[0].resource",
            "Observation.subject.resolve().name",
            "Patient.extension('http://x').value",
            "Patient.name.where(use='official' or use='usual')",
        ] {
            assert!(parse_alternative(s).is_err(), "{s}");
        }
        assert_eq!(root_of("(Observation.value as Quantity)"), "Observation");
        assert!(parse_alternative("A.b.where(type='x').c").is_err());
    }

    #[test]
    fn implicit_root_is_a_first_step() {
        assert_eq!(
            parse_alternative("alias").unwrap(),
            (String::new(), vec![child("alias")])
        );
    }
}
