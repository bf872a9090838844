//! Compiles a Sigma `detection` section into a [`Detection`].
//!
//! Search identifiers that are maps are ANDs of field tests, lists are ORs of their elements,
//! and plain values (alone, in a list, or under a `'|modifier'` key with no field name) are
//! keyword searches. Field names are turned into OCSF paths by a [`Resolver`].

use serde_yaml::{Mapping, Value};
use vigil_ocsf::fieldmap::FieldMap;

use crate::detection::{Detection, FieldMatcher, KeywordMatcher, Node};
use crate::lookup::FieldPath;
use crate::matcher::Anchor;
use crate::sigma::condition::{self, CondExpr, ConditionError, Selector};
use crate::sigma::field::{field_test, value_patterns};
use crate::sigma::modifiers::{self, Kind, ModifierError, Modifiers};
use crate::sigma::placeholders::{ExpandError, MAX_EXPANSIONS, Placeholders};

/// Why a detection cannot be compiled.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    /// The detection has no `condition`.
    #[error("detection has no `condition`")]
    NoCondition,
    /// `condition` is neither a string nor a list of strings.
    #[error("`condition` must be a string or a list of strings")]
    ConditionType,
    /// The condition does not parse, or uses an unsupported construct.
    #[error("condition: {0}")]
    Condition(#[source] ConditionError),
    /// The condition names an identifier the detection does not define.
    #[error("condition references unknown search identifier `{0}`")]
    UnknownIdentifier(String),
    /// An `x of` pattern selects nothing.
    #[error("condition selects no search identifier with `{0}`")]
    EmptySelection(String),
    /// A search identifier is not a mapping, a list or a value, or is empty.
    #[error("search identifier `{name}` {reason}")]
    Search {
        /// The identifier.
        name: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A modifier chain is unusable.
    #[error("field `{field}`: {source}")]
    Modifier {
        /// The field (empty for a keyword search).
        field: String,
        /// Why.
        #[source]
        source: ModifierError,
    },
    /// A value does not fit its modifiers.
    #[error("field `{field}`: {reason}")]
    Value {
        /// The field (empty for a keyword search).
        field: String,
        /// What is wrong.
        reason: String,
    },
    /// A value uses something Vigil does not implement.
    #[error("field `{field}`: {reason}")]
    UnsupportedValue {
        /// The field (empty for a keyword search).
        field: String,
        /// What is missing.
        reason: String,
    },
    /// A regular expression the `regex` engine cannot compile (look-around, back-references…).
    #[error("field `{field}`: regular expression not supported: {source}")]
    Regex {
        /// The field.
        field: String,
        /// The engine's message.
        #[source]
        source: regex::Error,
    },
}

impl CompileError {
    /// Whether the rule is wrong, rather than using something Vigil does not implement.
    pub(crate) fn is_malformed(&self) -> bool {
        match self {
            Self::Condition(e) => e.is_malformed(),
            Self::Modifier { source, .. } => source.is_malformed(),
            Self::UnsupportedValue { .. } | Self::Regex { .. } => false,
            _ => true,
        }
    }
}

/// Turns Sigma field names into OCSF paths, remembering the first name the map lacks.
#[derive(Debug)]
pub(crate) struct Resolver<'m> {
    map: Option<&'m FieldMap>,
    missing: Option<String>,
    placeholders: Option<&'m Placeholders>,
    missing_placeholder: Option<String>,
}

impl<'m> Resolver<'m> {
    /// A resolver for a logsource's map; without one every field resolves to nothing.
    pub(crate) fn new(map: Option<&'m FieldMap>) -> Self {
        Self {
            map,
            missing: None,
            placeholders: None,
            missing_placeholder: None,
        }
    }

    /// The same, expanding `expand` values with these placeholders.
    pub(crate) fn with_placeholders(mut self, placeholders: &'m Placeholders) -> Self {
        self.placeholders = Some(placeholders);
        self
    }

    /// The first field name the map did not know.
    pub(crate) fn missing(&self) -> Option<&str> {
        self.missing.as_deref()
    }

    /// The first placeholder an `expand` value named that is not defined.
    pub(crate) fn missing_placeholder(&self) -> Option<&str> {
        self.missing_placeholder.as_deref()
    }

    /// The texts an `expand` value stands for. An undefined placeholder is remembered (the
    /// rule cannot apply) and stands for nothing.
    pub(super) fn expand(&mut self, field: &str, text: &str) -> Result<Vec<String>, CompileError> {
        let none = Placeholders::default();
        match self.placeholders.unwrap_or(&none).expand(text) {
            Ok(texts) => Ok(texts),
            Err(ExpandError::Undefined(name)) => {
                self.missing_placeholder.get_or_insert(name);
                Ok(Vec::new())
            }
            Err(ExpandError::TooMany) => Err(CompileError::UnsupportedValue {
                field: field.to_owned(),
                reason: format!("`expand` of {text:?} gives more than {MAX_EXPANSIONS} values"),
            }),
        }
    }

    pub(super) fn field(&mut self, name: &str) -> Box<[FieldPath]> {
        let Some(map) = self.map else {
            return Box::new([]);
        };
        match map.paths(name) {
            Some(paths) => paths.iter().map(|p| FieldPath::new(p)).collect(),
            // Absent from every event of the view: tested as such.
            None if map.closed => Box::new([]),
            None => {
                self.missing.get_or_insert_with(|| name.to_owned());
                Box::new([])
            }
        }
    }

    /// The values a field has in every event of the logsource, when the map fixes them.
    fn constant(&self, name: &str) -> Option<&'m [String]> {
        self.map?.constant(name)
    }

    /// Keyword searches look at every attribute the map names, in sorted order.
    fn keyword_paths(&self) -> Box<[FieldPath]> {
        let mut paths: Vec<&str> = self
            .map
            .iter()
            .flat_map(|m| m.fields.values().flatten().map(String::as_str))
            .collect();
        paths.sort_unstable();
        paths.dedup();
        paths.into_iter().map(FieldPath::new).collect()
    }
}

/// Compiles a detection section.
pub(crate) fn compile(
    detection: &Mapping,
    resolver: &mut Resolver<'_>,
) -> Result<Detection, CompileError> {
    let mut names: Vec<&str> = Vec::new();
    let mut bodies: Vec<&Value> = Vec::new();
    let mut condition = None;
    for (key, body) in detection {
        let name = key.as_str().ok_or(CompileError::Search {
            name: format!("{key:?}"),
            reason: "must be named by a string",
        })?;
        match name {
            "condition" => condition = Some(body),
            // Sigma 1 aggregation window; the aggregation itself is rejected in the condition.
            "timeframe" => {}
            _ => {
                names.push(name);
                bodies.push(body);
            }
        }
    }
    let condition = compile_condition(condition.ok_or(CompileError::NoCondition)?, &names)?;
    // Compile every identifier, so a malformed one is reported before an unsupported one.
    let mut searches = Vec::with_capacity(bodies.len());
    let mut unsupported = None;
    for (name, body) in names.iter().zip(bodies) {
        match compile_search(name, body, resolver) {
            Ok(node) => searches.push(node),
            Err(e) if e.is_malformed() => return Err(e),
            Err(e) => {
                unsupported.get_or_insert(e);
            }
        }
    }
    match unsupported {
        Some(e) => Err(e),
        None => Ok(Detection {
            searches: searches.into(),
            condition,
        }),
    }
}

fn compile_condition(value: &Value, names: &[&str]) -> Result<Node, CompileError> {
    let texts: Vec<&str> = match value {
        Value::String(s) => vec![s.as_str()],
        Value::Sequence(items) => items
            .iter()
            .map(Value::as_str)
            .collect::<Option<_>>()
            .ok_or(CompileError::ConditionType)?,
        _ => return Err(CompileError::ConditionType),
    };
    if texts.is_empty() {
        return Err(CompileError::Condition(ConditionError::Empty));
    }
    // A list of conditions is an OR of them (rules spec, "Condition").
    let mut nodes = texts
        .into_iter()
        .map(|t| {
            let expr = condition::parse(t).map_err(CompileError::Condition)?;
            resolve(&expr, names)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        Node::Or(nodes.into())
    })
}

/// Replaces identifiers with references to their compiled searches.
fn resolve(expr: &CondExpr, names: &[&str]) -> Result<Node, CompileError> {
    let select = |selector: &Selector| -> Result<Vec<Node>, CompileError> {
        let picked: Vec<Node> = names
            .iter()
            .enumerate()
            .filter(|(_, name)| match selector {
                Selector::Them => !name.starts_with('_'),
                Selector::Pattern(p) => condition::pattern_matches(p, name),
            })
            .map(|(i, _)| Node::Search(i))
            .collect();
        if picked.is_empty() {
            let shown = match selector {
                Selector::Them => "them".to_owned(),
                Selector::Pattern(p) => p.clone(),
            };
            return Err(CompileError::EmptySelection(shown));
        }
        Ok(picked)
    };
    let join = |mut nodes: Vec<Node>, and: bool| {
        if nodes.len() == 1 {
            nodes.remove(0)
        } else if and {
            Node::And(nodes.into())
        } else {
            Node::Or(nodes.into())
        }
    };
    Ok(match expr {
        CondExpr::Ident(name) => Node::Search(
            names
                .iter()
                .position(|n| n == name)
                .ok_or_else(|| CompileError::UnknownIdentifier(name.clone()))?,
        ),
        CondExpr::OneOf(sel) => join(select(sel)?, false),
        CondExpr::AllOf(sel) => join(select(sel)?, true),
        CondExpr::Not(inner) => Node::Not(Box::new(resolve(inner, names)?)),
        CondExpr::And(terms) => join(
            terms
                .iter()
                .map(|t| resolve(t, names))
                .collect::<Result<_, _>>()?,
            true,
        ),
        CondExpr::Or(terms) => join(
            terms
                .iter()
                .map(|t| resolve(t, names))
                .collect::<Result<_, _>>()?,
            false,
        ),
    })
}

fn compile_search(
    name: &str,
    body: &Value,
    resolver: &mut Resolver<'_>,
) -> Result<Node, CompileError> {
    let bad = |reason| CompileError::Search {
        name: name.to_owned(),
        reason,
    };
    match body {
        Value::Mapping(map) if map.is_empty() => Err(bad("is empty")),
        Value::Mapping(map) => compile_map(map, resolver),
        Value::Sequence(items) if items.is_empty() => Err(bad("is empty")),
        Value::Sequence(items) if items.iter().all(|v| !v.is_mapping()) => {
            keywords(&[], &items.iter().collect::<Vec<_>>(), resolver)
        }
        Value::Sequence(items) => {
            let nodes = items
                .iter()
                .map(|item| match item {
                    Value::Mapping(map) if !map.is_empty() => compile_map(map, resolver),
                    Value::Mapping(_) => Err(bad("has an empty mapping")),
                    scalar => keywords(&[], &[scalar], resolver),
                })
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Node::Or(nodes.into()))
        }
        Value::String(_) | Value::Number(_) | Value::Bool(_) => keywords(&[], &[body], resolver),
        _ => Err(bad("must be a mapping, a list or a value")),
    }
}

/// A mapping: every field test must hold.
fn compile_map(map: &Mapping, resolver: &mut Resolver<'_>) -> Result<Node, CompileError> {
    let mut nodes = Vec::with_capacity(map.len());
    for (key, body) in map {
        let key = key.as_str().ok_or_else(|| CompileError::Value {
            field: format!("{key:?}"),
            reason: "field names must be strings".into(),
        })?;
        let mut parts = key.split('|');
        let field = parts.next().unwrap_or_default();
        let mods: Vec<&str> = parts.collect();
        let values: Vec<&Value> = match body {
            Value::Sequence(items) => items.iter().collect(),
            other => vec![other],
        };
        if field.is_empty() {
            nodes.push(keywords(&mods, &values, resolver)?);
        } else if let Some(constant) = resolver.constant(field) {
            // Decided now: the same for every event (true is an empty AND, false an empty OR).
            let test = field_test(field, &mods, &values, resolver)?;
            let matcher = FieldMatcher {
                paths: Box::new([FieldPath::new("constant")]),
                test,
            };
            let fixed = serde_json::json!({ "constant": constant });
            nodes.push(if matcher.is_match_on(&fixed) {
                Node::And(Box::new([]))
            } else {
                Node::Or(Box::new([]))
            });
        } else {
            let test = field_test(field, &mods, &values, resolver)?;
            let paths = resolver.field(field);
            nodes.push(Node::Field(FieldMatcher { paths, test }));
        }
    }
    Ok(if nodes.len() == 1 {
        nodes.remove(0)
    } else {
        Node::And(nodes.into())
    })
}

pub(super) fn value_err(field: &str, reason: impl Into<String>) -> CompileError {
    CompileError::Value {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

pub(super) fn parse_mods(field: &str, names: &[&str]) -> Result<Modifiers, CompileError> {
    modifiers::parse(names).map_err(|source| CompileError::Modifier {
        field: field.to_owned(),
        source,
    })
}

/// A keyword search over the resolver's text attributes (contains, unless anchored).
fn keywords(
    mod_names: &[&str],
    values: &[&Value],
    resolver: &mut Resolver<'_>,
) -> Result<Node, CompileError> {
    let mut mods = parse_mods("", mod_names)?;
    if !matches!(mods.kind, Kind::Plain | Kind::Regex { .. }) || mods.neq {
        return Err(value_err("", "keyword searches take only string modifiers"));
    }
    mods.anchor.get_or_insert(Anchor::Contains);
    if values.is_empty() {
        return Err(value_err("", "empty keyword list"));
    }
    let groups = values
        .iter()
        .map(|v| {
            if v.is_null() || v.is_mapping() || v.is_sequence() {
                return Err(value_err("", "keywords must be strings"));
            }
            value_patterns("", v, &mods, resolver)
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Node::Keyword(KeywordMatcher {
        paths: resolver.keyword_paths(),
        groups: groups.into_iter().map(Vec::into_boxed_slice).collect(),
        all: mods.all,
    }))
}

#[cfg(test)]
#[path = "compile_tests.rs"]
mod tests;
