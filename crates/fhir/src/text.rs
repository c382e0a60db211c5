//! Normalisation of strings for string search (FHIR R4 search.html#string: "case- and
//! accent-insensitive", matching at the start by default).

use unicode_normalization::{char::is_combining_mark, UnicodeNormalization};

/// Lower case, accents removed, whitespace collapsed: `"  María  Ordóñez"` becomes `"maria ordonez"`.
/// Letters that do not decompose in Unicode (ø, æ, ß, ł…) are folded by hand, so that a user
/// typing plain ASCII finds them.
pub fn normalize(input: &str) -> String {
    let mut out = String::with_capacity(input.len());
    let mut last_space = true;
    for c in input.nfkd() {
        if is_combining_mark(c) {
            continue;
        }
        if c.is_whitespace() {
            if !last_space {
                out.push(' ');
                last_space = true;
            }
            continue;
        }
        last_space = false;
        match c {
            'ø' | 'Ø' => out.push('o'),
            'æ' | 'Æ' => out.push_str("ae"),
            'œ' | 'Œ' => out.push_str("oe"),
            'ß' => out.push_str("ss"),
            'ł' | 'Ł' => out.push('l'),
            'đ' | 'Đ' => out.push('d'),
            'þ' | 'Þ' => out.push_str("th"),
            'ı' => out.push('i'),
            _ => out.extend(c.to_lowercase()),
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

/// Whether two strings are the same text, case and accents included, whether their accents are
/// composed or not (Unicode NFC): how `:exact` compares (search.html#modifiers).
pub fn same_text(a: &str, b: &str) -> bool {
    a == b || a.nfc().eq(b.nfc())
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn accents_and_case_are_removed() {
        assert_eq!(normalize("María Eugenia"), "maria eugenia");
        assert_eq!(normalize("Ordóñez"), "ordonez");
        assert_eq!(normalize("ALCÁNTAR"), "alcantar");
        assert_eq!(normalize("Søren Ørsted"), "soren orsted");
        assert_eq!(normalize("Straße"), "strasse");
        assert_eq!(normalize("Nguyễn"), "nguyen");
    }

    #[test]
    fn whitespace_is_collapsed_and_hyphens_kept() {
        assert_eq!(normalize("  García-López  Smith "), "garcia-lopez smith");
    }
}
