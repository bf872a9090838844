//! The literals a regular expression needs, read from its text (the syntax of the `regex`
//! crate), for the prefilter.
//!
//! The result is a conjunction of clauses, each a disjunction of literals: every text the
//! expression matches contains, ignoring ASCII case, some literal of every clause. Only
//! characters that can match nothing but themselves are kept: runs of plain or escaped
//! punctuation characters in a sequence; a repeated character ends a run (`ab+c` needs `ab`
//! and `bc`), an optional one breaks it; a group that must occur adds what it needs; an
//! alternation needs one literal of each branch. Under case-insensitive matching a literal
//! stops at non-ASCII characters and at `k` and `s` (Unicode case folding matches them with
//! U+212A KELVIN SIGN and U+017F LATIN SMALL LETTER LONG S). Anything not understood gives no
//! literal (verbose mode, unknown escapes): losing a literal costs speed, never a match.

/// Some literal of each inner list must occur.
pub(crate) type Cnf = Vec<Vec<String>>;

/// The clauses `pattern` needs, or `None` when it can match without any literal.
pub(crate) fn required_literals(pattern: &str, ignore_case: bool) -> Option<Cnf> {
    let mut parser = Parser {
        chars: pattern.chars().collect(),
        pos: 0,
        ignore_case,
    };
    let cnf = parser.alternation(0).ok()??;
    // The whole pattern must have been read.
    (parser.pos == parser.chars.len()).then_some(cnf)
}

/// The parser gave up: the expression uses something it does not model.
struct Bail;

#[derive(Debug)]
enum Item {
    /// A character that matches only itself.
    Char(char),
    /// Anything else, or nothing: ends a literal.
    Break,
    /// A group that must occur, and what it needs.
    Group(Cnf),
    /// A group of plain alternatives (`(W|R)`): exactly one of these texts.
    Alts(Vec<String>),
}

/// Most texts a run may expand to through groups of alternatives (`-(W|R)` is `-W` or `-R`);
/// beyond, the run ends at the group.
const MAX_ALTERNATIVES: usize = 16;

struct Parser {
    chars: Vec<char>,
    pos: usize,
    ignore_case: bool,
}

const MAX_DEPTH: usize = 32;

impl Parser {
    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek();
        self.pos += 1;
        c
    }

    /// Whether `c` is safe in a literal under the current case mode.
    fn literal(&self, c: char) -> Item {
        let unsafe_folded =
            self.ignore_case && (!c.is_ascii() || matches!(c.to_ascii_lowercase(), 'k' | 's'));
        if unsafe_folded {
            Item::Break
        } else {
            Item::Char(c)
        }
    }

    /// Branches separated by `|`, up to `)` or the end.
    fn alternation(&mut self, depth: usize) -> Result<Option<Cnf>, Bail> {
        if depth > MAX_DEPTH {
            return Err(Bail);
        }
        let mut branches = vec![self.concatenation(depth)?];
        while self.peek() == Some('|') {
            self.pos += 1;
            branches.push(self.concatenation(depth)?);
        }
        if branches.len() == 1 {
            return Ok(branches.pop().flatten());
        }
        // One literal of the best clause of every branch.
        let mut union = Vec::new();
        for branch in branches {
            let Some(best) = branch.and_then(|cnf| cnf.into_iter().max_by_key(|c| clause_score(c)))
            else {
                return Ok(None);
            };
            union.extend(best);
        }
        Ok(Some(vec![union]))
    }

    /// A sequence of items, up to `|`, `)` or the end.
    fn concatenation(&mut self, depth: usize) -> Result<Option<Cnf>, Bail> {
        let mut items: Vec<Item> = Vec::new();
        while let Some(c) = self.peek() {
            match c {
                '|' | ')' => break,
                '*' | '+' | '?' | '{' => {
                    let (min, max) = self.quantifier()?;
                    let last = items.pop().ok_or(Bail)?;
                    match last {
                        _ if min == 0 => items.push(Item::Break),
                        Item::Char(ch) if !(min == 1 && max == Some(1)) => {
                            items.extend([Item::Char(ch), Item::Break, Item::Char(ch)]);
                        }
                        Item::Alts(alts) if !(min == 1 && max == Some(1)) => {
                            items.extend([Item::Alts(alts.clone()), Item::Break, Item::Alts(alts)]);
                        }
                        other => items.push(other),
                    }
                }
                '\\' => {
                    self.pos += 1;
                    let item = self.escape()?;
                    items.push(item);
                }
                '[' => {
                    self.class()?;
                    items.push(Item::Break);
                }
                '(' => {
                    let item = self.group(depth)?;
                    items.push(item);
                }
                '.' | '^' | '$' | ']' | '}' => {
                    self.pos += 1;
                    items.push(Item::Break);
                }
                _ => {
                    self.pos += 1;
                    let item = self.literal(c);
                    items.push(item);
                }
            }
        }
        // The current run: the texts it may be (several after a group of alternatives).
        let mut cnf = Cnf::new();
        let mut run: Vec<String> = vec![String::new()];
        let flush = |run: &mut Vec<String>, cnf: &mut Cnf| {
            if run.iter().all(|r| !r.is_empty()) {
                let mut clause: Vec<String> = run.iter().map(|r| r.to_ascii_lowercase()).collect();
                clause.sort();
                clause.dedup();
                cnf.push(clause);
            }
            *run = vec![String::new()];
        };
        for item in items.into_iter().chain([Item::Break]) {
            match item {
                Item::Char(c) => run.iter_mut().for_each(|r| r.push(c)),
                Item::Alts(alts) if run.len() * alts.len() <= MAX_ALTERNATIVES => {
                    run = run
                        .iter()
                        .flat_map(|r| alts.iter().map(move |a| format!("{r}{a}")))
                        .collect();
                }
                Item::Alts(alts) => {
                    flush(&mut run, &mut cnf);
                    run = alts;
                }
                Item::Break | Item::Group(_) => {
                    flush(&mut run, &mut cnf);
                    if let Item::Group(inner) = item {
                        cnf.extend(inner);
                    }
                }
            }
        }
        Ok((!cnf.is_empty()).then_some(cnf))
    }

    /// `*`, `+`, `?`, `{n}`, `{n,}`, `{n,m}`, each perhaps lazy: (min, max).
    fn quantifier(&mut self) -> Result<(u32, Option<u32>), Bail> {
        let q = match self.next() {
            Some('*') => (0, None),
            Some('+') => (1, None),
            Some('?') => (0, Some(1)),
            Some('{') => {
                let min = self.number().ok_or(Bail)?;
                let max = match self.next() {
                    Some('}') => Some(min),
                    Some(',') if self.peek() == Some('}') => {
                        self.pos += 1;
                        None
                    }
                    Some(',') => {
                        let max = self.number().ok_or(Bail)?;
                        if self.next() != Some('}') {
                            return Err(Bail);
                        }
                        Some(max)
                    }
                    _ => return Err(Bail),
                };
                (min, max)
            }
            _ => return Err(Bail),
        };
        if self.peek() == Some('?') {
            self.pos += 1;
        }
        Ok(q)
    }

    fn number(&mut self) -> Option<u32> {
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        self.chars[start..self.pos]
            .iter()
            .collect::<String>()
            .parse()
            .ok()
    }

    /// After a `\`.
    fn escape(&mut self) -> Result<Item, Bail> {
        let c = self.next().ok_or(Bail)?;
        match c {
            // `\<` and `\>` are word boundaries.
            '<' | '>' => Ok(Item::Break),
            c if c.is_ascii_punctuation() => Ok(self.literal(c)),
            'd' | 'D' | 's' | 'S' | 'w' | 'W' | 'b' | 'B' | 'A' | 'z' | 'n' | 't' | 'r' | 'f'
            | 'v' | 'a' => {
                // `\b{start}` and friends: a brace after a boundary is not a repetition.
                if matches!(c, 'b' | 'B') && self.peek() == Some('{') {
                    return Err(Bail);
                }
                Ok(Item::Break)
            }
            'x' | 'u' | 'U' | 'p' | 'P' => {
                if self.peek() == Some('{') {
                    while self.next().ok_or(Bail)? != '}' {}
                } else {
                    let len = match c {
                        'x' => 2,
                        'u' => 4,
                        'U' => 8,
                        _ => 1,
                    };
                    for _ in 0..len {
                        self.next().ok_or(Bail)?;
                    }
                }
                Ok(Item::Break)
            }
            _ => Err(Bail),
        }
    }

    /// Inside a group, up to and past its `)`: its branches when every one is a non-empty
    /// run of characters that match only themselves (`W|R`, `\.sh|\.py`), at most
    /// [`MAX_ALTERNATIVES`] of them; otherwise nothing is read.
    fn plain_alternatives(&mut self) -> Option<Vec<String>> {
        let start = self.pos;
        let mut branches = vec![String::new()];
        loop {
            let c = self.next();
            let ok = match c {
                Some(')') => {
                    if branches.iter().all(|b| !b.is_empty()) && branches.len() <= MAX_ALTERNATIVES
                    {
                        return Some(branches);
                    }
                    false
                }
                Some('|') => {
                    branches.push(String::new());
                    true
                }
                Some('\\') => match self.next() {
                    Some(e) if e.is_ascii_punctuation() => self.push_plain(e, &mut branches),
                    _ => false,
                },
                Some('.' | '^' | '$' | '(' | '[' | ']' | '{' | '}' | '*' | '+' | '?') | None => {
                    false
                }
                Some(c) => self.push_plain(c, &mut branches),
            };
            // A quantifier after the character would apply to it alone.
            if !ok || matches!(self.peek(), Some('*' | '+' | '?' | '{')) {
                self.pos = start;
                return None;
            }
        }
    }

    /// Appends `c` to the last branch if it matches only itself under the case mode.
    fn push_plain(&self, c: char, branches: &mut [String]) -> bool {
        match (self.literal(c), branches.last_mut()) {
            (Item::Char(c), Some(branch)) => {
                branch.push(c);
                true
            }
            _ => false,
        }
    }

    /// Skips a bracketed class, nested classes included.
    fn class(&mut self) -> Result<(), Bail> {
        self.pos += 1;
        if self.peek() == Some('^') {
            self.pos += 1;
        }
        if self.peek() == Some(']') {
            self.pos += 1;
        }
        let mut depth = 1;
        while depth > 0 {
            match self.next().ok_or(Bail)? {
                '\\' => {
                    self.next().ok_or(Bail)?;
                }
                '[' => depth += 1,
                ']' => depth -= 1,
                _ => {}
            }
        }
        Ok(())
    }

    /// A group, or a flag setting.
    fn group(&mut self, depth: usize) -> Result<Item, Bail> {
        self.pos += 1;
        if self.peek() == Some('?') {
            self.pos += 1;
            match self.peek() {
                Some('P' | '<') => while self.next().ok_or(Bail)? != '>' {},
                _ => {
                    let mut negated = false;
                    loop {
                        match self.next().ok_or(Bail)? {
                            ':' => break,
                            ')' => return Ok(Item::Break),
                            '-' => negated = true,
                            'x' => return Err(Bail),
                            'i' if !negated => self.ignore_case = true,
                            'i' | 'm' | 's' | 'U' | 'u' | 'R' => {}
                            _ => return Err(Bail),
                        }
                    }
                }
            }
        }
        if let Some(alts) = self.plain_alternatives() {
            return Ok(Item::Alts(alts));
        }
        let inner = self.alternation(depth + 1)?;
        if self.next() != Some(')') {
            return Err(Bail);
        }
        Ok(match inner {
            Some(cnf) => Item::Group(cnf),
            None => Item::Break,
        })
    }
}

/// How selective a clause is: its shortest literal, then fewer literals.
pub(crate) fn clause_score(clause: &[String]) -> (usize, std::cmp::Reverse<usize>) {
    let shortest = clause.iter().map(String::len).min().unwrap_or(0);
    (shortest, std::cmp::Reverse(clause.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lits(p: &str) -> Option<Cnf> {
        let cnf = required_literals(p, false);
        // Every expression tested here must also be one the regex crate accepts.
        assert!(regex::Regex::new(p).is_ok(), "{p}");
        cnf
    }

    fn v(clauses: &[&[&str]]) -> Option<Cnf> {
        Some(
            clauses
                .iter()
                .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
                .collect(),
        )
    }

    #[test]
    fn groups_of_plain_alternatives_extend_the_run() {
        // SigmaHQ's pnscan rule: `-W` or `-R`, not a bare `-`.
        assert_eq!(
            lits(r#"-(W|R)\s?(\s|"|')([0-9a-fA-F]{2}\s?){2,20}(\s|"|')"#),
            v(&[&["-r", "-w"]])
        );
        assert_eq!(lits("(a|b)c"), v(&[&["ac", "bc"]]));
        assert_eq!(
            lits(r"x(ab|c\.d)+y"),
            v(&[&["xab", "xc.d"], &["aby", "c.dy"]])
        );
        assert_eq!(lits("x(ab|cd)?y"), v(&[&["x"], &["y"]]));
        // Not plain: a class, a quantified character, an empty branch.
        assert_eq!(lits("x(a|[bc])y"), v(&[&["x"], &["y"]]));
        assert_eq!(lits("x(ab+|c)y"), v(&[&["x"], &["ab", "c"], &["y"]]));
        assert_eq!(lits("x(a|)y"), v(&[&["x"], &["y"]]));
        // Too many combinations: the run ends at the group.
        assert_eq!(
            lits("(a|b|c|d)(e|f|g|h)(i|j)"),
            v(&[
                &[
                    "ae", "af", "ag", "ah", "be", "bf", "bg", "bh", "ce", "cf", "cg", "ch", "de",
                    "df", "dg", "dh"
                ],
                &["i", "j"],
            ])
        );
        // Under case-insensitive matching, `s` and `k` are not plain.
        assert_eq!(
            required_literals("(?i)-(s|r)x", true),
            Some(vec![vec!["-".to_owned()], vec!["x".to_owned()]])
        );
    }

    #[test]
    fn runs_groups_and_quantifiers() {
        assert_eq!(lits(r"bash\s+-[a-z]*3f"), v(&[&["bash"], &["-"], &["3f"]]));
        assert_eq!(lits(r"\s-O\s"), v(&[&["-o"]]));
        assert_eq!(lits("-D"), v(&[&["-d"]]));
        assert_eq!(lits("ab+c"), v(&[&["ab"], &["bc"]]));
        assert_eq!(lits("ab?c"), v(&[&["a"], &["c"]]));
        assert_eq!(lits("abc{2,}d"), v(&[&["abc"], &["cd"]]));
        assert_eq!(lits("abc{1}d"), v(&[&["abcd"]]));
        assert_eq!(lits("ab(cd)?ef"), v(&[&["ab"], &["ef"]]));
        assert_eq!(lits("ab(?:cd)+ef"), v(&[&["abcd"], &["cdef"]]));
        assert_eq!(lits(r"a\.b\/c"), v(&[&["a.b/c"]]));
        assert_eq!(lits("x[ab]y"), v(&[&["x"], &["y"]]));
        assert_eq!(lits(r"x[]a\]]y"), v(&[&["x"], &["y"]]));
        assert_eq!(lits("x[[:alpha:]]y"), v(&[&["x"], &["y"]]));
        assert_eq!(lits(r"\x41BC\u{44}E"), v(&[&["bc"], &["e"]]));
        assert_eq!(lits(r"\p{L}+xyz"), v(&[&["xyz"]]));
        assert_eq!(lits("(?P<n>abc)d"), v(&[&["abcd"]]));
    }

    #[test]
    fn alternations_need_a_literal_in_every_branch() {
        assert_eq!(lits("foo|bar"), v(&[&["foo", "bar"]]));
        assert_eq!(lits("x(foo|bar)"), v(&[&["xbar", "xfoo"]]));
        assert_eq!(lits("x(foo|b.r)"), v(&[&["x"], &["foo", "r"]]));
        assert_eq!(lits("foo|.*"), None);
        assert_eq!(
            lits(r"(?:\s-[^-\s]{0,20}i|\s--inode\s)"),
            v(&[&["i", "--inode"]])
        );
    }

    #[test]
    fn nothing_needed_or_not_understood() {
        for p in [
            "(.){200,}",
            ".*",
            r"\d+",
            "[abc]",
            "a?",
            "(?x)abc",
            r"\b{start}abc",
            "a*",
        ] {
            assert_eq!(lits(p), None, "{p}");
        }
        assert_eq!(required_literals("(abc", false), None);
        assert_eq!(required_literals(r"\q", false), None);
    }

    #[test]
    fn case_insensitive_literals_avoid_folding_characters() {
        assert_eq!(
            required_literals("bash -ok", true),
            v(&[&["ba"], &["h -o"]])
        );
        assert_eq!(lits("ab(?i)bash"), v(&[&["ab"], &["ba"], &["h"]]));
        assert_eq!(lits("(?-i)kiss"), v(&[&["kiss"]]));
        assert_eq!(required_literals("üba", true), v(&[&["ba"]]));
        assert_eq!(required_literals("üba", false), v(&[&["üba"]]));
    }

    #[test]
    fn case_folding_reaches_ascii_only_from_kelvin_and_long_s() {
        let re = regex::Regex::new(r"(?i)^[\x00-\x7F]$").unwrap();
        let mut buf = [0u8; 4];
        let folding: Vec<char> = ('\u{80}'..=char::MAX)
            .filter(|c| re.is_match(c.encode_utf8(&mut buf)))
            .collect();
        assert_eq!(folding, ['\u{17F}', '\u{212A}']);
    }
}
