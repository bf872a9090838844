//! Compiles one `field|modifiers: values` entry (or a keyword's values) into value patterns.
//!
//! A value becomes patterns in four steps: `expand` replaces its placeholders (one value may
//! stand for several); the transforming modifiers, in the order written
//! (one value may become several: `windash`, `base64offset`); then the anchor (`contains`,
//! `startswith`, `endswith`); then the cheapest [`StrMatcher`] for the result. Numbers and
//! booleans without string modifiers stay numbers and booleans.

use serde_yaml::Value;

use crate::detection::{Cidr, FieldTest, ValuePattern};
use crate::matcher::{Anchor, Piece, StrMatcher};
use crate::sigma::compile::{CompileError, Resolver, parse_mods, value_err};
use crate::sigma::modifiers::{Kind, Modifiers, Transform};
use crate::sigma::value;

/// Regular expressions may use this much memory each once compiled (`(.){200,}` needs ~2 MiB).
const REGEX_SIZE_LIMIT: usize = 16 << 20;

/// The test for one `field|modifiers: values` entry.
pub(super) fn field_test(
    field: &str,
    mod_names: &[&str],
    values: &[&Value],
    resolver: &mut Resolver<'_>,
) -> Result<FieldTest, CompileError> {
    let mods = parse_mods(field, mod_names)?;
    if values.is_empty() {
        return Err(value_err(field, "empty value list"));
    }
    if let Some(v) = values.iter().find(|v| v.is_mapping() || v.is_sequence()) {
        let what = if v.is_mapping() {
            "a mapping"
        } else {
            "a nested list"
        };
        return Err(value_err(field, format!("a value cannot be {what}")));
    }
    match mods.kind {
        Kind::Exists => match values {
            [Value::Bool(b)] => Ok(FieldTest::Exists(*b)),
            _ => Err(value_err(field, "`exists` takes a single true or false")),
        },
        Kind::FieldRef => {
            let others = values
                .iter()
                .map(|v| match v.as_str() {
                    Some(name) => Ok(resolver.field(name)),
                    None => Err(value_err(field, "`fieldref` takes field names")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(FieldTest::SameAs {
                others: others.into(),
                cased: mods.cased,
            })
        }
        Kind::Cmp(op) => {
            let groups = values
                .iter()
                .map(|v| match v {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                })
                .map(|n| n.map(|n| vec![ValuePattern::Cmp(op, n)]))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| value_err(field, "numeric modifiers take numbers"))?;
            combine(field, &mods, groups, false)
        }
        Kind::Cidr => {
            let groups = values
                .iter()
                .map(|v| {
                    parse_cidr(v.as_str().unwrap_or_default()).map(|c| vec![ValuePattern::Cidr(c)])
                })
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| value_err(field, "`cidr` takes networks like 10.0.0.0/8"))?;
            combine(field, &mods, groups, false)
        }
        Kind::Plain | Kind::Regex { .. } => {
            let mut or_null = false;
            let mut groups = Vec::with_capacity(values.len());
            for v in values {
                if v.is_null() {
                    if mods.stringy() || !matches!(mods.kind, Kind::Plain) {
                        return Err(value_err(field, "`null` cannot take modifiers"));
                    }
                    or_null = true;
                } else {
                    groups.push(value_patterns(field, v, &mods, resolver)?);
                }
            }
            combine(field, &mods, groups, or_null)
        }
    }
}

/// Links value groups with OR (default), AND (`|all`) or NOR (`|neq`).
fn combine(
    field: &str,
    mods: &Modifiers,
    groups: Vec<Vec<ValuePattern>>,
    or_null: bool,
) -> Result<FieldTest, CompileError> {
    if or_null && (mods.all || mods.neq) {
        return Err(value_err(
            field,
            "`null` cannot be combined with `all` or `neq`",
        ));
    }
    if mods.neq {
        if mods.all {
            return Err(CompileError::UnsupportedValue {
                field: field.to_owned(),
                reason: "`neq` together with `all`".into(),
            });
        }
        return Ok(FieldTest::NoneOf(groups.into_iter().flatten().collect()));
    }
    if mods.all {
        return Ok(FieldTest::AllOf(
            groups.into_iter().map(Vec::into_boxed_slice).collect(),
        ));
    }
    if groups.is_empty() {
        return Ok(FieldTest::IsNull);
    }
    Ok(FieldTest::AnyOf {
        patterns: groups.into_iter().flatten().collect(),
        or_null,
    })
}

/// Patterns for one non-null scalar under plain or `re` modifiers; under `expand`, the
/// patterns of every text it stands for (any of them may match).
pub(super) fn value_patterns(
    field: &str,
    v: &Value,
    mods: &Modifiers,
    resolver: &mut Resolver<'_>,
) -> Result<Vec<ValuePattern>, CompileError> {
    let (true, Value::String(text)) = (mods.expand, v) else {
        return scalar_patterns(field, v, mods);
    };
    let mut group = Vec::new();
    for text in resolver.expand(field, text)? {
        group.extend(string_patterns(field, &Value::String(text), mods)?);
    }
    Ok(group)
}

/// Patterns for one non-null scalar under plain or `re` modifiers.
fn scalar_patterns(
    field: &str,
    v: &Value,
    mods: &Modifiers,
) -> Result<Vec<ValuePattern>, CompileError> {
    if matches!(mods.kind, Kind::Plain) && !mods.stringy() {
        match v {
            Value::Bool(b) => return Ok(vec![ValuePattern::Bool(*b)]),
            Value::Number(n) => {
                let number = yaml_number(n)
                    .ok_or_else(|| value_err(field, format!("number {n} is not finite")))?;
                return Ok(vec![ValuePattern::Num {
                    n: number,
                    text: n.to_string().into(),
                }]);
            }
            _ => {}
        }
    }
    string_patterns(field, v, mods)
}

fn yaml_number(n: &serde_yaml::Number) -> Option<serde_json::Number> {
    if let Some(i) = n.as_i64() {
        Some(i.into())
    } else if let Some(u) = n.as_u64() {
        Some(u.into())
    } else {
        n.as_f64().and_then(serde_json::Number::from_f64)
    }
}

/// One value as text patterns: transforms applied, then the anchor, then compiled.
fn string_patterns(
    field: &str,
    v: &Value,
    mods: &Modifiers,
) -> Result<Vec<ValuePattern>, CompileError> {
    let text = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        _ => {
            return Err(value_err(
                field,
                "values must be strings, numbers or booleans",
            ));
        }
    };
    if let Kind::Regex {
        insensitive,
        multi_line,
        dot_all,
    } = mods.kind
    {
        let re = regex::RegexBuilder::new(&text)
            .case_insensitive(insensitive)
            .multi_line(multi_line)
            .dot_matches_new_line(dot_all)
            .size_limit(REGEX_SIZE_LIMIT)
            .build()
            .map_err(|source| CompileError::Regex {
                field: field.to_owned(),
                source,
            })?;
        return Ok(vec![ValuePattern::Str(StrMatcher::Regex {
            re,
            ignore_case: insensitive,
        })]);
    }
    let variants = transform(field, value::parse_wildcards(&text), &mods.transforms)?;
    Ok(variants
        .into_iter()
        .map(|mut pieces| {
            match mods.anchor {
                Some(Anchor::Contains) => {
                    pieces.insert(0, Piece::Many);
                    pieces.push(Piece::Many);
                }
                Some(Anchor::Prefix) => pieces.push(Piece::Many),
                Some(Anchor::Suffix) => pieces.insert(0, Piece::Many),
                Some(Anchor::Exact) | None => {}
            }
            ValuePattern::Str(StrMatcher::from_pieces(&pieces, mods.cased))
        })
        .collect())
}

/// Applies the transforming modifiers in order; one value may become several.
fn transform(
    field: &str,
    pieces: Vec<Piece>,
    transforms: &[Transform],
) -> Result<Vec<Vec<Piece>>, CompileError> {
    enum Stage {
        Text(Vec<Piece>),
        Bytes(Vec<u8>),
    }
    let unsupported = |reason: String| CompileError::UnsupportedValue {
        field: field.to_owned(),
        reason,
    };
    let literal = |stage: Stage, modifier: &str| -> Result<Vec<u8>, CompileError> {
        match stage {
            Stage::Bytes(b) => Ok(b),
            Stage::Text(p) if value::has_wildcards(&p) => Err(unsupported(format!(
                "wildcards in a value encoded with `{modifier}`"
            ))),
            Stage::Text(p) => Ok(value::plain_text(&p).into_bytes()),
        }
    };
    let mut stages = vec![Stage::Text(pieces)];
    for t in transforms {
        let mut next = Vec::with_capacity(stages.len());
        for stage in stages {
            match t {
                Transform::Windash => match stage {
                    Stage::Text(p) => {
                        let dashes = value::dash_count(&p);
                        if dashes > value::MAX_WINDASH_DASHES {
                            return Err(unsupported(format!(
                                "`windash` on a value with {dashes} dash characters (at most {})",
                                value::MAX_WINDASH_DASHES
                            )));
                        }
                        next.extend(value::windash(&p).into_iter().map(Stage::Text));
                    }
                    Stage::Bytes(_) => next.push(stage),
                },
                Transform::Utf16(enc) => {
                    let bytes = literal(stage, "utf16")?;
                    let text = String::from_utf8_lossy(&bytes).into_owned();
                    next.push(Stage::Bytes(value::utf16_bytes(&text, *enc)));
                }
                Transform::Base64 => {
                    let bytes = literal(stage, "base64")?;
                    next.push(Stage::Text(vec![Piece::Text(value::base64(&bytes))]));
                }
                Transform::Base64Offset => {
                    let bytes = literal(stage, "base64offset")?;
                    next.extend(
                        value::base64_offsets(&bytes)
                            .into_iter()
                            .map(|s| Stage::Text(vec![Piece::Text(s)])),
                    );
                }
            }
        }
        stages = next;
    }
    Ok(stages
        .into_iter()
        .map(|s| match s {
            Stage::Text(p) => p,
            // Unreachable after modifier checks; keep the bytes as lossy text rather than fail.
            Stage::Bytes(b) => vec![Piece::Text(String::from_utf8_lossy(&b).into_owned())],
        })
        .collect())
}

fn parse_cidr(text: &str) -> Option<Cidr> {
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse::<u8>().ok()?),
        None => {
            let addr: std::net::IpAddr = text.trim().parse().ok()?;
            (addr, if addr.is_ipv4() { 32 } else { 128 })
        }
    };
    let max = if matches!(addr, std::net::IpAddr::V4(_)) {
        32
    } else {
        128
    };
    (bits <= max).then_some(Cidr { addr, bits })
}
