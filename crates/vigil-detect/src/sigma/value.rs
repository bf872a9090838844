//! Sigma string values: wildcards and escapes, and the transforming modifiers.
//!
//! Escapes (rules spec, "Escape Character"): a backslash escapes a following `*`, `?` or `\`;
//! any other backslash is a plain character. So `\*` is a literal star, `\\*` a backslash and a
//! wildcard, `\\\*` a backslash and a literal star, and `\\\\` two backslashes.

use crate::matcher::Piece;

/// The characters `|windash` treats as interchangeable (modifiers appendix).
const DASHES: [char; 5] = ['-', '/', '\u{2013}', '\u{2014}', '\u{2015}'];

/// More dash characters than this in one value would expand to too many variants.
pub(crate) const MAX_WINDASH_DASHES: usize = 4;

/// Splits a Sigma string into literal text and wildcards.
pub(crate) fn parse_wildcards(raw: &str) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut text = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.peek() {
                Some(&next @ ('*' | '?' | '\\')) => {
                    text.push(next);
                    chars.next();
                }
                _ => text.push('\\'),
            },
            '*' | '?' => {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text)));
                }
                pieces.push(if c == '*' { Piece::Many } else { Piece::One });
            }
            _ => text.push(c),
        }
    }
    if !text.is_empty() || pieces.is_empty() {
        pieces.push(Piece::Text(text));
    }
    pieces
}

/// Whether a parsed value has any wildcard.
pub(crate) fn has_wildcards(pieces: &[Piece]) -> bool {
    pieces.iter().any(|p| !matches!(p, Piece::Text(_)))
}

/// The literal text of a wildcard-free value.
pub(crate) fn plain_text(pieces: &[Piece]) -> String {
    pieces
        .iter()
        .filter_map(|p| match p {
            Piece::Text(t) => Some(t.as_str()),
            _ => None,
        })
        .collect()
}

/// Number of dash characters `|windash` would permute.
pub(crate) fn dash_count(pieces: &[Piece]) -> usize {
    pieces
        .iter()
        .map(|p| match p {
            Piece::Text(t) => t.chars().filter(|c| DASHES.contains(c)).count(),
            _ => 0,
        })
        .sum()
}

/// `|windash`: every variant of the value with each dash character replaced by each of
/// [`DASHES`]. The caller bounds the number of dashes with [`MAX_WINDASH_DASHES`].
pub(crate) fn windash(pieces: &[Piece]) -> Vec<Vec<Piece>> {
    let mut variants: Vec<Vec<Piece>> = vec![Vec::new()];
    for piece in pieces {
        match piece {
            Piece::Text(t) => {
                for c in t.chars() {
                    let choices: &[char] = if DASHES.contains(&c) {
                        &DASHES
                    } else {
                        std::slice::from_ref(&c)
                    };
                    variants = variants
                        .into_iter()
                        .flat_map(|v| {
                            choices.iter().map(move |&choice| {
                                let mut v = v.clone();
                                match v.last_mut() {
                                    Some(Piece::Text(prev)) => prev.push(choice),
                                    _ => v.push(Piece::Text(choice.to_string())),
                                }
                                v
                            })
                        })
                        .collect();
                }
            }
            other => variants.iter_mut().for_each(|v| v.push(other.clone())),
        }
    }
    variants
}

/// The text encodings a value can be given before base64 (`|utf16le`, `|utf16be`, `|utf16`,
/// `|wide`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Utf16 {
    /// Little endian (`utf16le`, `wide`).
    Le,
    /// Big endian (`utf16be`).
    Be,
    /// Little endian after a byte order mark (`utf16`).
    LeBom,
}

/// Encodes text as UTF-16 bytes.
pub(crate) fn utf16_bytes(text: &str, enc: Utf16) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() * 2 + 2);
    if enc == Utf16::LeBom {
        out.extend_from_slice(&[0xFF, 0xFE]);
    }
    for unit in text.encode_utf16() {
        match enc {
            Utf16::Be => out.extend_from_slice(&unit.to_be_bytes()),
            Utf16::Le | Utf16::LeBom => out.extend_from_slice(&unit.to_le_bytes()),
        }
    }
    out
}

/// Standard base64 with padding (RFC 4648 §4).
pub(crate) fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 0x3F) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// `|base64offset`: the three encodings of `bytes` at offsets 0, 1 and 2 inside a longer
/// base64 text, each cut down to the characters that do not depend on the neighbours.
pub(crate) fn base64_offsets(bytes: &[u8]) -> Vec<String> {
    const START: [usize; 3] = [0, 2, 3];
    // Characters to drop at the end, indexed by (len + offset) % 3.
    const END_DROP: [usize; 3] = [0, 3, 2];
    (0..3)
        .map(|offset| {
            let mut padded = vec![b' '; offset];
            padded.extend_from_slice(bytes);
            let encoded = base64(&padded);
            let drop = END_DROP[(bytes.len() + offset) % 3];
            let end = encoded.len().saturating_sub(drop);
            encoded
                .get(START[offset]..end)
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use Piece::{Many, One, Text};

    fn t(s: &str) -> Piece {
        Text(s.into())
    }

    #[test]
    fn wildcards_split_text() {
        assert_eq!(
            parse_wildcards("a*b?c"),
            vec![t("a"), Many, t("b"), One, t("c")]
        );
        assert_eq!(parse_wildcards("*"), vec![Many]);
        assert_eq!(parse_wildcards(""), vec![t("")]);
    }

    #[test]
    fn escapes_follow_the_spec_table() {
        // Plain backslash, single or doubled.
        assert_eq!(parse_wildcards(r"C:\Windows"), vec![t(r"C:\Windows")]);
        assert_eq!(parse_wildcards(r"C:\\Windows"), vec![t(r"C:\Windows")]);
        // Escaped wildcards are literal.
        assert_eq!(parse_wildcards(r"a\*b\?"), vec![t("a*b?")]);
        // Escaped backslash before a wildcard: backslash then wildcard.
        assert_eq!(parse_wildcards(r"a\\*"), vec![t(r"a\"), Many]);
        // Three backslashes: backslash and a literal star.
        assert_eq!(parse_wildcards(r"a\\\*"), vec![t(r"a\*")]);
        // Three or four backslashes before other text: two backslashes.
        assert_eq!(parse_wildcards(r"a\\\b"), vec![t(r"a\\b")]);
        assert_eq!(parse_wildcards(r"a\\\\b"), vec![t(r"a\\b")]);
        // A trailing backslash stays.
        assert_eq!(parse_wildcards(r"a\"), vec![t(r"a\")]);
    }

    #[test]
    fn windash_permutes_every_dash() {
        let variants = windash(&parse_wildcards("-a /b*"));
        assert_eq!(dash_count(&parse_wildcards("-a /b*")), 2);
        assert_eq!(variants.len(), 25);
        assert!(variants.contains(&vec![t("/a -b"), Many]));
        assert!(variants.contains(&vec![t("\u{2013}a \u{2015}b"), Many]));
        assert_eq!(windash(&[t("abc")]), vec![vec![t("abc")]]);
    }

    #[test]
    fn base64_matches_rfc_vectors() {
        for (plain, enc) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(base64(plain.as_bytes()), enc);
        }
    }

    #[test]
    fn base64_offsets_are_found_inside_longer_encodings() {
        let needle = b"/bin/bash -i";
        let variants = base64_offsets(needle);
        assert_eq!(variants.len(), 3);
        for prefix in ["", "x", "xy", "echo ", "curl http://a | "] {
            let mut text = prefix.as_bytes().to_vec();
            text.extend_from_slice(needle);
            text.extend_from_slice(b" tail");
            let encoded = base64(&text);
            assert!(
                variants.iter().any(|v| encoded.contains(v.as_str())),
                "{prefix:?}: {encoded} lacks all of {variants:?}"
            );
        }
    }

    #[test]
    fn utf16_encodings() {
        assert_eq!(utf16_bytes("cmd", Utf16::Le), b"c\0m\0d\0");
        assert_eq!(utf16_bytes("cmd", Utf16::Be), b"\0c\0m\0d");
        assert_eq!(utf16_bytes("c", Utf16::LeBom), [0xFF, 0xFE, b'c', 0]);
        assert_eq!(base64(&utf16_bytes("cmd", Utf16::Le)), "YwBtAGQA");
    }
}
