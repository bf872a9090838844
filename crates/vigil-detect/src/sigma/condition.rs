//! The `condition` language: `and`, `or`, `not`, brackets, `1 of` / `all of` a pattern or
//! `them`.
//!
//! Precedence, least to most binding (rules spec, "Condition"): `or`, `and`, `not`,
//! `x of …`, brackets. Keywords are matched without regard to case. `any of` is read as
//! `1 of`. Aggregations (`| count() > 5`, Sigma 1's predecessor of correlation rules) and `near`
//! are recognised and reported as unsupported.

/// Why a condition cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConditionError {
    /// The condition is empty.
    #[error("condition is empty")]
    Empty,
    /// A token where it cannot stand.
    #[error("unexpected `{token}` at word {position} of the condition")]
    Unexpected {
        /// The token.
        token: String,
        /// Its 1-based position.
        position: usize,
    },
    /// The condition stops in the middle of an expression.
    #[error("condition ends early (expected {expected})")]
    UnexpectedEnd {
        /// What was expected.
        expected: &'static str,
    },
    /// An aggregation or `near`, which Sigma 2 replaced with correlation rules.
    #[error("condition uses `{0}`, which Sigma 2 replaced with correlation rules")]
    Aggregation(String),
    /// A quantifier other than `1` or `all`.
    #[error("quantifier `{0} of` is not defined by Sigma (only `1 of` and `all of`)")]
    Quantifier(String),
}

impl ConditionError {
    /// Whether the rule is wrong (rather than Vigil lacking a feature).
    pub(crate) fn is_malformed(&self) -> bool {
        !matches!(self, Self::Aggregation(_))
    }
}

/// Which search identifiers an `x of` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// `them`: every identifier not starting with `_`.
    Them,
    /// A name pattern with `*` wildcards.
    Pattern(String),
}

/// A parsed condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CondExpr {
    /// A search identifier.
    Ident(String),
    /// `1 of …`.
    OneOf(Selector),
    /// `all of …`.
    AllOf(Selector),
    /// `not …`.
    Not(Box<CondExpr>),
    /// `… and …`.
    And(Vec<CondExpr>),
    /// `… or …`.
    Or(Vec<CondExpr>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok<'a> {
    Open,
    Close,
    Word(&'a str),
}

fn tokenize(text: &str) -> Vec<Tok<'_>> {
    let mut toks = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() || c == '(' || c == ')' {
            if let Some(s) = start.take() {
                toks.push(Tok::Word(&text[s..i]));
            }
            match c {
                '(' => toks.push(Tok::Open),
                ')' => toks.push(Tok::Close),
                _ => {}
            }
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        toks.push(Tok::Word(&text[s..]));
    }
    toks
}

/// Parses one condition string.
pub(crate) fn parse(text: &str) -> Result<CondExpr, ConditionError> {
    let toks = tokenize(text);
    if toks.is_empty() {
        return Err(ConditionError::Empty);
    }
    for tok in &toks {
        if let Tok::Word(w) = tok {
            if w.contains('|') {
                return Err(ConditionError::Aggregation("|".into()));
            }
            if w.eq_ignore_ascii_case("near") {
                return Err(ConditionError::Aggregation("near".into()));
            }
        }
    }
    let mut parser = Parser { toks, pos: 0 };
    let expr = parser.or()?;
    match parser.toks.get(parser.pos) {
        None => Ok(expr),
        Some(tok) => Err(parser.unexpected(tok.clone())),
    }
}

struct Parser<'a> {
    toks: Vec<Tok<'a>>,
    pos: usize,
}

impl<'a> Parser<'a> {
    fn peek_keyword(&self, keyword: &str) -> bool {
        matches!(self.toks.get(self.pos), Some(Tok::Word(w)) if w.eq_ignore_ascii_case(keyword))
    }

    fn unexpected(&self, tok: Tok<'_>) -> ConditionError {
        let token = match tok {
            Tok::Open => "(".to_owned(),
            Tok::Close => ")".to_owned(),
            Tok::Word(w) => w.to_owned(),
        };
        ConditionError::Unexpected {
            token,
            position: self.pos + 1,
        }
    }

    fn or(&mut self) -> Result<CondExpr, ConditionError> {
        let mut terms = vec![self.and()?];
        while self.peek_keyword("or") {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            CondExpr::Or(terms)
        })
    }

    fn and(&mut self) -> Result<CondExpr, ConditionError> {
        let mut terms = vec![self.not()?];
        while self.peek_keyword("and") {
            self.pos += 1;
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.remove(0)
        } else {
            CondExpr::And(terms)
        })
    }

    fn not(&mut self) -> Result<CondExpr, ConditionError> {
        if self.peek_keyword("not") {
            self.pos += 1;
            return Ok(CondExpr::Not(Box::new(self.not()?)));
        }
        self.primary()
    }

    fn primary(&mut self) -> Result<CondExpr, ConditionError> {
        let expected = "an identifier, `x of`, `not` or `(`";
        let Some(tok) = self.toks.get(self.pos).cloned() else {
            return Err(ConditionError::UnexpectedEnd { expected });
        };
        match tok {
            Tok::Open => {
                self.pos += 1;
                let inner = self.or()?;
                match self.toks.get(self.pos) {
                    Some(Tok::Close) => {
                        self.pos += 1;
                        Ok(inner)
                    }
                    Some(other) => Err(self.unexpected(other.clone())),
                    None => Err(ConditionError::UnexpectedEnd { expected: "`)`" }),
                }
            }
            Tok::Close => Err(self.unexpected(tok)),
            Tok::Word(word) => {
                let is_of = matches!(self.toks.get(self.pos + 1), Some(Tok::Word(w)) if w.eq_ignore_ascii_case("of"));
                if is_of {
                    return self.quantified(word);
                }
                if ["and", "or", "not", "of", "them"]
                    .iter()
                    .any(|k| word.eq_ignore_ascii_case(k))
                {
                    return Err(self.unexpected(tok));
                }
                self.pos += 1;
                Ok(CondExpr::Ident(word.to_owned()))
            }
        }
    }

    /// `<quantifier> of <selector>`, with the cursor on the quantifier.
    fn quantified(&mut self, quantifier: &str) -> Result<CondExpr, ConditionError> {
        let all = if quantifier.eq_ignore_ascii_case("all") {
            true
        } else if quantifier == "1" || quantifier.eq_ignore_ascii_case("any") {
            false
        } else if quantifier.chars().all(|c| c.is_ascii_digit()) {
            return Err(ConditionError::Quantifier(quantifier.to_owned()));
        } else {
            return Err(self.unexpected(Tok::Word(quantifier)));
        };
        self.pos += 2;
        let selector = match self.toks.get(self.pos).cloned() {
            Some(Tok::Word(w)) if w.eq_ignore_ascii_case("them") => Selector::Them,
            Some(Tok::Word(w))
                if !["and", "or", "not", "of"]
                    .iter()
                    .any(|k| w.eq_ignore_ascii_case(k)) =>
            {
                Selector::Pattern(w.to_owned())
            }
            Some(tok) => return Err(self.unexpected(tok)),
            None => {
                return Err(ConditionError::UnexpectedEnd {
                    expected: "`them` or an identifier pattern",
                });
            }
        };
        self.pos += 1;
        Ok(if all {
            CondExpr::AllOf(selector)
        } else {
            CondExpr::OneOf(selector)
        })
    }
}

/// Whether a search identifier matches an `x of` pattern (`*` matches any run of characters).
pub(crate) fn pattern_matches(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use CondExpr::{And, Ident, Not, Or};

    fn id(s: &str) -> CondExpr {
        Ident(s.into())
    }

    #[test]
    fn precedence_is_not_then_and_then_or() {
        assert_eq!(
            parse("a or b and not c").unwrap(),
            Or(vec![id("a"), And(vec![id("b"), Not(Box::new(id("c")))])])
        );
        assert_eq!(
            parse("not a and b").unwrap(),
            And(vec![Not(Box::new(id("a"))), id("b")])
        );
        assert_eq!(
            parse("(a or b) and c").unwrap(),
            And(vec![Or(vec![id("a"), id("b")]), id("c")])
        );
        assert_eq!(
            parse("not not a").unwrap(),
            Not(Box::new(Not(Box::new(id("a")))))
        );
    }

    #[test]
    fn quantifiers_and_them() {
        assert_eq!(
            parse("1 of selection_* and not all of filter*").unwrap(),
            And(vec![
                CondExpr::OneOf(Selector::Pattern("selection_*".into())),
                Not(Box::new(CondExpr::AllOf(Selector::Pattern(
                    "filter*".into()
                ))))
            ])
        );
        assert_eq!(
            parse("all of them").unwrap(),
            CondExpr::AllOf(Selector::Them)
        );
        assert_eq!(
            parse("ANY OF them").unwrap(),
            CondExpr::OneOf(Selector::Them)
        );
        assert_eq!(
            parse("2 of sel*").unwrap_err(),
            ConditionError::Quantifier("2".into())
        );
    }

    #[test]
    fn multi_line_conditions_with_tight_brackets() {
        let text = "selection_parent and\n(\n    1 of selection_generic_*\n    or\n    (sel_sh and not filter)\n)";
        assert_eq!(
            parse(text).unwrap(),
            And(vec![
                id("selection_parent"),
                Or(vec![
                    CondExpr::OneOf(Selector::Pattern("selection_generic_*".into())),
                    And(vec![id("sel_sh"), Not(Box::new(id("filter")))])
                ])
            ])
        );
        assert_eq!(parse("(a)").unwrap(), id("a"));
    }

    #[test]
    fn syntax_errors_are_malformed() {
        for bad in [
            "", "a and", "a b", "(a", "a)", "and a", "1 of", "not", "1 of and",
        ] {
            let err = parse(bad).unwrap_err();
            assert!(err.is_malformed(), "{bad:?}: {err}");
        }
    }

    #[test]
    fn aggregations_are_unsupported() {
        let err = parse("selection | count() by host > 5").unwrap_err();
        assert!(!err.is_malformed());
        assert!(!parse("a near b").unwrap_err().is_malformed());
    }

    #[test]
    fn identifier_patterns() {
        assert!(pattern_matches("selection_*", "selection_img"));
        assert!(pattern_matches("selection*", "selection"));
        assert!(pattern_matches("*_img", "selection_img"));
        assert!(pattern_matches("s*_*g", "sel_img"));
        assert!(pattern_matches("*", "anything"));
        assert!(!pattern_matches("selection_*", "filter_img"));
        assert!(!pattern_matches("a*a", "a"));
        assert!(pattern_matches("exact", "exact"));
        assert!(!pattern_matches("exact", "exactly"));
    }
}
