//! Value modifiers: `Field|contains|all` and friends (modifiers appendix).
//!
//! Transforming modifiers (`windash`, `base64`, `base64offset`, the UTF-16 encodings) are kept
//! in the order written and applied in that order; the others set how the resulting values are
//! compared and combined.

use crate::detection::CmpOp;
use crate::matcher::Anchor;
use crate::sigma::value::Utf16;

/// Why a modifier chain cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModifierError {
    /// A modifier Vigil does not implement (or that no Sigma version defines).
    #[error("unsupported modifier `{0}`")]
    Unsupported(String),
    /// Two modifiers that cannot be combined.
    #[error("modifiers `{0}` and `{1}` cannot be combined")]
    Conflict(String, String),
    /// A modifier used where it has no meaning.
    #[error("modifier `{modifier}` {reason}")]
    Misplaced {
        /// The modifier.
        modifier: String,
        /// What is wrong with its place.
        reason: &'static str,
    },
}

impl ModifierError {
    /// Whether the rule is wrong (rather than Vigil lacking a feature).
    pub(crate) fn is_malformed(&self) -> bool {
        !matches!(self, Self::Unsupported(_))
    }
}

/// A transformation applied to each value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Transform {
    /// `|windash`.
    Windash,
    /// `|utf16le`, `|utf16be`, `|utf16`, `|wide`.
    Utf16(Utf16),
    /// `|base64`.
    Base64,
    /// `|base64offset`.
    Base64Offset,
}

/// How values are compared with the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Sigma strings with wildcards (the default).
    Plain,
    /// `|re`, with its `i`, `m`, `s` flags.
    Regex {
        /// `i`: ignore case.
        insensitive: bool,
        /// `m`: `^`/`$` match at line breaks.
        multi_line: bool,
        /// `s`: `.` matches a line break.
        dot_all: bool,
    },
    /// `|exists`.
    Exists,
    /// `|lt`, `|lte`, `|gt`, `|gte`.
    Cmp(CmpOp),
    /// `|cidr`.
    Cidr,
    /// `|fieldref`.
    FieldRef,
}

/// A parsed modifier chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Modifiers {
    /// `contains`, `startswith` or `endswith`.
    pub(crate) anchor: Option<Anchor>,
    /// `all`: values are linked with AND.
    pub(crate) all: bool,
    /// `cased`: letter case is significant.
    pub(crate) cased: bool,
    /// `neq`: the field must differ from every value.
    pub(crate) neq: bool,
    /// `expand`: `%name%` placeholders stand for their values (see `placeholders`).
    pub(crate) expand: bool,
    /// How values are compared.
    pub(crate) kind: Kind,
    /// Transformations, in the order written.
    pub(crate) transforms: Vec<Transform>,
}

impl Modifiers {
    /// Whether anything makes the values strings (so numbers are compared as text).
    pub(crate) fn stringy(&self) -> bool {
        self.anchor.is_some() || self.cased || self.expand || !self.transforms.is_empty()
    }
}

/// Parses the modifiers after a field name (`["contains", "all"]`).
pub(crate) fn parse(names: &[&str]) -> Result<Modifiers, ModifierError> {
    let mut mods = Modifiers {
        anchor: None,
        all: false,
        cased: false,
        neq: false,
        expand: false,
        kind: Kind::Plain,
        transforms: Vec::new(),
    };
    let mut kind_name: Option<String> = None;
    for raw in names {
        let name = raw.to_ascii_lowercase();
        let mut set_kind = |kind: Kind, mods: &mut Modifiers| match &kind_name {
            Some(prev) => Err(ModifierError::Conflict(prev.clone(), name.clone())),
            None => {
                kind_name = Some(name.clone());
                mods.kind = kind;
                Ok(())
            }
        };
        match name.as_str() {
            "contains" | "startswith" | "endswith" => {
                let anchor = match name.as_str() {
                    "contains" => Anchor::Contains,
                    "startswith" => Anchor::Prefix,
                    _ => Anchor::Suffix,
                };
                match mods.anchor {
                    Some(prev) if prev != anchor => {
                        return Err(ModifierError::Conflict(anchor_name(prev).into(), name));
                    }
                    _ => mods.anchor = Some(anchor),
                }
            }
            "all" => mods.all = true,
            "cased" => mods.cased = true,
            "neq" => mods.neq = true,
            "expand" => mods.expand = true,
            "windash" => mods.transforms.push(Transform::Windash),
            "base64" => mods.transforms.push(Transform::Base64),
            "base64offset" => mods.transforms.push(Transform::Base64Offset),
            "wide" | "utf16le" => mods.transforms.push(Transform::Utf16(Utf16::Le)),
            "utf16be" => mods.transforms.push(Transform::Utf16(Utf16::Be)),
            "utf16" => mods.transforms.push(Transform::Utf16(Utf16::LeBom)),
            "re" => set_kind(
                Kind::Regex {
                    insensitive: false,
                    multi_line: false,
                    dot_all: false,
                },
                &mut mods,
            )?,
            "i" | "ignorecase" | "m" | "multiline" | "s" | "dotall" => match &mut mods.kind {
                Kind::Regex {
                    insensitive,
                    multi_line,
                    dot_all,
                } => match name.as_str() {
                    "i" | "ignorecase" => *insensitive = true,
                    "m" | "multiline" => *multi_line = true,
                    _ => *dot_all = true,
                },
                _ => {
                    return Err(ModifierError::Misplaced {
                        modifier: name,
                        reason: "is a flag of `re` and must follow it",
                    });
                }
            },
            "exists" => set_kind(Kind::Exists, &mut mods)?,
            "lt" => set_kind(Kind::Cmp(CmpOp::Lt), &mut mods)?,
            "lte" => set_kind(Kind::Cmp(CmpOp::Lte), &mut mods)?,
            "gt" => set_kind(Kind::Cmp(CmpOp::Gt), &mut mods)?,
            "gte" => set_kind(Kind::Cmp(CmpOp::Gte), &mut mods)?,
            "cidr" => set_kind(Kind::Cidr, &mut mods)?,
            "fieldref" => set_kind(Kind::FieldRef, &mut mods)?,
            _ => return Err(ModifierError::Unsupported(name)),
        }
    }
    check(&mods, kind_name.as_deref())?;
    Ok(mods)
}

fn anchor_name(anchor: Anchor) -> &'static str {
    match anchor {
        Anchor::Contains => "contains",
        Anchor::Prefix => "startswith",
        Anchor::Suffix => "endswith",
        Anchor::Exact => "",
    }
}

/// Rejects combinations with no defined meaning.
fn check(mods: &Modifiers, kind_name: Option<&str>) -> Result<(), ModifierError> {
    let Some(kind_name) = kind_name else {
        return check_encodings(mods);
    };
    let conflict = |other: &str| {
        Err(ModifierError::Conflict(
            kind_name.to_owned(),
            other.to_owned(),
        ))
    };
    if let Some(anchor) = mods.anchor {
        return conflict(anchor_name(anchor));
    }
    if let Some(t) = mods.transforms.first() {
        return conflict(transform_name(*t));
    }
    if mods.expand {
        return conflict("expand");
    }
    match mods.kind {
        Kind::Exists | Kind::Cmp(_) | Kind::Cidr if mods.cased => conflict("cased"),
        Kind::Exists if mods.all => conflict("all"),
        Kind::Exists if mods.neq => conflict("neq"),
        Kind::FieldRef if mods.all => conflict("all"),
        _ => Ok(()),
    }
}

/// UTF-16 text only exists in a log as base64, so an encoding must be followed by one.
fn check_encodings(mods: &Modifiers) -> Result<(), ModifierError> {
    let mut pending: Option<Transform> = None;
    for t in &mods.transforms {
        match t {
            Transform::Utf16(_) => pending = Some(*t),
            Transform::Base64 | Transform::Base64Offset => pending = None,
            Transform::Windash if pending.is_some() => {
                return Err(ModifierError::Misplaced {
                    modifier: "windash".into(),
                    reason: "must come before the UTF-16 encoding",
                });
            }
            Transform::Windash => {}
        }
    }
    match pending {
        Some(t) => Err(ModifierError::Unsupported(format!(
            "{} without a following base64 or base64offset",
            transform_name(t)
        ))),
        None => Ok(()),
    }
}

fn transform_name(t: Transform) -> &'static str {
    match t {
        Transform::Windash => "windash",
        Transform::Utf16(Utf16::Le) => "utf16le",
        Transform::Utf16(Utf16::Be) => "utf16be",
        Transform::Utf16(Utf16::LeBom) => "utf16",
        Transform::Base64 => "base64",
        Transform::Base64Offset => "base64offset",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_chains_parse() {
        let m = parse(&["contains", "all"]).unwrap();
        assert_eq!(m.anchor, Some(Anchor::Contains));
        assert!(m.all && !m.cased);
        let m = parse(&["re", "i", "m", "s"]).unwrap();
        assert_eq!(
            m.kind,
            Kind::Regex {
                insensitive: true,
                multi_line: true,
                dot_all: true
            }
        );
        let m = parse(&["wide", "base64offset", "contains"]).unwrap();
        assert_eq!(
            m.transforms,
            [Transform::Utf16(Utf16::Le), Transform::Base64Offset]
        );
        assert!(parse(&["endswith", "cased"]).unwrap().cased);
        assert_eq!(parse(&["gte"]).unwrap().kind, Kind::Cmp(CmpOp::Gte));
        let m = parse(&["contains", "expand"]).unwrap();
        assert!(m.expand && m.stringy());
    }

    #[test]
    fn unknown_and_unimplemented_modifiers_are_unsupported() {
        for name in ["hour", "contain", "utf16le"] {
            let err = parse(&[name]).unwrap_err();
            assert!(!err.is_malformed(), "{name}: {err}");
            assert!(err.to_string().starts_with("unsupported modifier"), "{err}");
        }
    }

    #[test]
    fn nonsense_combinations_are_malformed() {
        for chain in [
            &["re", "contains"][..],
            &["contains", "endswith"],
            &["i"],
            &["exists", "all"],
            &["re", "cidr"],
            &["base64", "re"],
            &["utf16le", "windash", "base64"],
            &["re", "expand"],
            &["cidr", "expand"],
        ] {
            let err = parse(chain).unwrap_err();
            assert!(err.is_malformed(), "{chain:?}: {err}");
        }
        // The same anchor twice is harmless.
        assert!(parse(&["contains", "contains"]).is_ok());
    }
}
