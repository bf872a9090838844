//! The conformance test's model of Sigma semantics, written from the specification and sharing
//! no code with the engine: selections and their constraints, value tests with wildcards and
//! modifiers, conditions, and the event that makes exactly a chosen set of selections true.

use std::collections::BTreeMap;

use serde_json::{Value as Json, json};
use serde_yaml::Value;

/// One field constraint of a selection: what the model knows how to satisfy.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    field: String,
    /// The value an event field gets so the constraint holds; `None`: the field stays absent.
    value: Option<Json>,
    /// How to tell whether another value holds, when the model knows.
    test: Option<Test>,
}

/// A string test of the model: wildcard patterns anchored as the modifier says.
#[derive(Debug, Clone)]
pub(crate) struct Test {
    anchor: Option<&'static str>,
    patterns: Vec<String>,
    all: bool,
    cased: bool,
}

/// `*` and `?` glob match with `\` escapes.
pub(crate) fn glob(p: &[char], t: &[char]) -> bool {
    match p.split_first() {
        None => t.is_empty(),
        Some(('*', rest)) => (0..=t.len()).any(|i| glob(rest, &t[i..])),
        Some(('?', rest)) => !t.is_empty() && glob(rest, &t[1..]),
        Some(('\\', rest)) if matches!(rest.first(), Some('*' | '?' | '\\')) => {
            t.first() == rest.first() && glob(&rest[1..], &t[1..])
        }
        Some((c, rest)) => t.first() == Some(c) && glob(rest, &t[1..]),
    }
}

impl Test {
    /// Whether `value` holds; `None` when the model cannot tell.
    pub(crate) fn holds(&self, value: &Json) -> Option<bool> {
        let text = match value {
            Json::String(s) => s.clone(),
            Json::Number(n) => n.to_string(),
            _ => return None,
        };
        let fold = |s: &str| {
            if self.cased {
                s.to_owned()
            } else {
                s.to_lowercase()
            }
        };
        let t: Vec<char> = fold(&text).chars().collect();
        let one = |p: &String| {
            let p = fold(p);
            let p = match self.anchor {
                Some("contains") => format!("*{p}*"),
                Some("startswith") => format!("{p}*"),
                Some("endswith") => format!("*{p}"),
                _ => p,
            };
            let p: Vec<char> = p.chars().collect();
            glob(&p, &t)
        };
        Some(if self.all {
            self.patterns.iter().all(one)
        } else {
            self.patterns.iter().any(one)
        })
    }
}

/// A selection the model can satisfy: constraints that all hold.
pub(crate) type Selection = Vec<Constraint>;

/// Why the model leaves a rule out.
pub(crate) type Skip = &'static str;

/// Why a rule is left out when no event of its logsource can satisfy it.
pub(crate) const NEVER: Skip = "needs a constant value the logsource never has";

/// Replaces wildcards by plain characters (`*` → `a`, `?` → `b`) and resolves escapes.
pub(crate) fn plain(pattern: &str) -> String {
    let mut out = String::new();
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n @ ('*' | '?' | '\\')) => out.push(n),
                Some(n) => {
                    out.push('\\');
                    out.push(n);
                }
                None => out.push('\\'),
            },
            '*' => out.push('a'),
            '?' => out.push('b'),
            c => out.push(c),
        }
    }
    out
}

pub(crate) fn constraint(key: &str, values: &Value) -> Result<Constraint, Skip> {
    let mut parts = key.split('|');
    let field = parts.next().unwrap_or_default().to_owned();
    let mods: Vec<&str> = parts.collect();
    let list: Vec<&Value> = match values {
        Value::Sequence(s) => s.iter().collect(),
        v => vec![v],
    };
    if list.is_empty() {
        return Err("an empty value list");
    }
    let all = mods.contains(&"all");
    let mut anchor = None;
    let mut numeric = None;
    for m in &mods {
        match *m {
            "all" | "cased" => {}
            "contains" | "startswith" | "endswith" => anchor = Some(*m),
            "lt" | "lte" | "gt" | "gte" => numeric = Some(*m),
            "exists" => {
                let wanted = list[0].as_bool().ok_or("exists without a boolean")?;
                return Ok(Constraint {
                    field,
                    value: wanted.then(|| json!("present")),
                    test: None,
                });
            }
            "cidr" => {
                let net = list[0].as_str().ok_or("cidr without a string")?;
                let (addr, _) = net.split_once('/').ok_or("cidr without a prefix")?;
                if addr.contains(':') {
                    return Err("IPv6 cidr");
                }
                return Ok(Constraint {
                    field,
                    value: Some(json!(addr)),
                    test: None,
                });
            }
            _ => return Err("a modifier the model does not cover"),
        }
    }
    if let Some(op) = numeric {
        let n = list[0].as_f64().ok_or("a comparison without a number")?;
        let v = match op {
            "lt" => n - 1.0,
            "gt" => n + 1.0,
            _ => n,
        };
        return Ok(Constraint {
            field,
            value: Some(json!(v as i64)),
            test: None,
        });
    }
    let text = |v: &Value| -> Result<Option<String>, Skip> {
        Ok(match v {
            Value::Null => None,
            Value::String(s) => Some(plain(s)),
            Value::Number(n) => Some(n.to_string()),
            Value::Bool(b) => Some(b.to_string()),
            _ => return Err("a structured value"),
        })
    };
    let pieces: Vec<Option<String>> = if all {
        list.iter().map(|v| text(v)).collect::<Result<_, _>>()?
    } else {
        vec![text(list[0])?]
    };
    if pieces.iter().any(Option::is_none) {
        if pieces.len() > 1 {
            return Err("null among several values");
        }
        return Ok(Constraint {
            field,
            value: None,
            test: None,
        });
    }
    let pieces: Vec<String> = pieces.into_iter().flatten().collect();
    let raw: Option<Vec<String>> = list
        .iter()
        .map(|v| match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        })
        .collect();
    let test = raw.map(|patterns| Test {
        anchor: match anchor {
            Some("contains") => Some("contains"),
            Some("startswith") => Some("startswith"),
            Some("endswith") => Some("endswith"),
            _ => None,
        },
        patterns,
        all,
        cased: mods.contains(&"cased"),
    });
    let value = match anchor {
        Some("contains") => format!("x {} x", pieces.join(" ")),
        Some("startswith") if pieces.len() == 1 => format!("{}zz", pieces[0]),
        Some("endswith") if pieces.len() == 1 => format!("zz{}", pieces[0]),
        None if pieces.len() == 1 => pieces[0].clone(),
        _ => return Err("`all` with an anchor other than contains"),
    };
    // A number in the rule matches the number: keep its type.
    let value = match list[0] {
        Value::Number(n) if !all && anchor.is_none() => {
            n.as_i64().map(|i| json!(i)).unwrap_or_else(|| json!(value))
        }
        _ => json!(value),
    };
    Ok(Constraint {
        field,
        value: Some(value),
        test,
    })
}

pub(crate) fn selection(v: &Value) -> Result<Selection, Skip> {
    match v {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| constraint(k.as_str().ok_or("a non-string field")?, v))
            .collect(),
        // A list of maps is an OR: the first one is enough.
        Value::Sequence(s) if s.first().is_some_and(Value::is_mapping) => selection(&s[0]),
        // Keywords: any of them, as a substring of any attribute the map names.
        Value::Sequence(s) if !s.is_empty() && s.iter().all(|v| v.is_string()) => {
            let patterns: Vec<String> = s
                .iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            Ok(vec![Constraint {
                field: KEYWORD.to_owned(),
                value: Some(json!(format!("x {} x", plain(&patterns[0])))),
                test: Some(Test {
                    anchor: Some("contains"),
                    patterns,
                    all: false,
                    cased: false,
                }),
            }])
        }
        _ => Err("a keyword selection"),
    }
}

/// The field name the model gives a keyword search.
pub(crate) const KEYWORD: &str = "";

/// Every string or number in a document, depth first.
pub(crate) fn scalars(doc: &Json, out: &mut Vec<Json>) {
    match doc {
        Json::Object(map) => map.values().for_each(|v| scalars(v, out)),
        Json::Array(items) => items.iter().for_each(|v| scalars(v, out)),
        Json::String(_) | Json::Number(_) => out.push(doc.clone()),
        _ => {}
    }
}

/// A condition as a boolean formula over selection names.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    Sel(String),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

pub(crate) struct Parser<'a> {
    pub(crate) toks: Vec<&'a str>,
    pub(crate) at: usize,
    pub(crate) names: &'a [String],
}

impl<'a> Parser<'a> {
    pub(crate) fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.at).copied()
    }
    pub(crate) fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        self.at += 1;
        t
    }
    pub(crate) fn or(&mut self) -> Result<Cond, Skip> {
        let mut terms = vec![self.and()?];
        while self.peek() == Some("or") {
            self.next();
            terms.push(self.and()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap()
        } else {
            Cond::Or(terms)
        })
    }
    pub(crate) fn and(&mut self) -> Result<Cond, Skip> {
        let mut terms = vec![self.not()?];
        while self.peek() == Some("and") {
            self.next();
            terms.push(self.not()?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().unwrap()
        } else {
            Cond::And(terms)
        })
    }
    pub(crate) fn not(&mut self) -> Result<Cond, Skip> {
        if self.peek() == Some("not") {
            self.next();
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    pub(crate) fn atom(&mut self) -> Result<Cond, Skip> {
        match self.next().ok_or("a truncated condition")? {
            "(" => {
                let c = self.or()?;
                (self.next() == Some(")"))
                    .then_some(c)
                    .ok_or("unbalanced parentheses")
            }
            q @ ("1" | "all" | "any") => {
                if self.next() != Some("of") {
                    return Err("a quantifier without `of`");
                }
                let target = self.next().ok_or("`of` without a target")?;
                let matching: Vec<Cond> = self
                    .names
                    .iter()
                    .filter(|n| match target {
                        "them" => !n.starts_with('_'),
                        t => match t.strip_suffix('*') {
                            Some(prefix) => n.starts_with(prefix),
                            None => n.as_str() == t,
                        },
                    })
                    .map(|n| Cond::Sel(n.clone()))
                    .collect();
                if matching.is_empty() {
                    return Err("a quantifier over nothing");
                }
                Ok(if q == "all" {
                    Cond::And(matching)
                } else {
                    Cond::Or(matching)
                })
            }
            name if self.names.iter().any(|n| n == name) => Ok(Cond::Sel(name.to_owned())),
            _ => Err("a condition the model does not parse"),
        }
    }
}

pub(crate) fn eval(c: &Cond, truth: &BTreeMap<String, bool>) -> bool {
    match c {
        Cond::Sel(n) => truth[n],
        Cond::Not(c) => !eval(c, truth),
        Cond::And(cs) => cs.iter().all(|c| eval(c, truth)),
        Cond::Or(cs) => cs.iter().any(|c| eval(c, truth)),
    }
}

/// Sets `value` at a dotted OCSF path.
pub(crate) fn set(doc: &mut Json, path: &str, value: Json) {
    let mut at = doc;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if i + 1 == parts.len() {
            at[*p] = value;
            return;
        }
        if !at[*p].is_object() {
            at[*p] = json!({});
        }
        at = &mut at[*p];
    }
}

/// The event where exactly the selections in `on` hold (as far as the model can tell), or
/// why it cannot be built.
pub(crate) fn event_for(
    sels: &BTreeMap<String, Selection>,
    on: &[&String],
    class: (u32, Option<u32>),
    paths: &dyn Fn(&str) -> Option<String>,
    constant: &dyn Fn(&str) -> Option<Vec<Json>>,
    include: &[(String, Json)],
) -> Result<Json, Skip> {
    let mut doc = json!({"class_uid": class.0, "time": 1});
    if let Some(a) = class.1 {
        doc["activity_id"] = json!(a);
    }
    // The attribute that makes an event one of the logsource's (a log line's program).
    for (path, value) in include {
        set(&mut doc, path, value.clone());
    }
    let mut used: BTreeMap<String, Option<Json>> = BTreeMap::new();
    let mut wanted: BTreeMap<String, Vec<&Constraint>> = BTreeMap::new();
    for name in on {
        for c in &sels[*name] {
            // A field the logsource fixes (the auditd record `type`): the test must hold on
            // one of its values, whatever the event.
            if let Some(values) = constant(&c.field) {
                let test = c
                    .test
                    .as_ref()
                    .ok_or("a constant field tested for presence")?;
                if !values.iter().any(|v| test.holds(v) == Some(true)) {
                    return Err(NEVER);
                }
                continue;
            }
            let path = paths(&c.field).ok_or("a field with no OCSF path")?;
            let value = match (used.get(&path), &c.value) {
                (None, v) => v.clone(),
                (Some(prev), v) if prev == v => v.clone(),
                // Two string constraints on one field: both pieces in one value, if every
                // constraint on the field still holds on it.
                (Some(Some(Json::String(a))), Some(Json::String(b))) => {
                    let merged = json!(format!("{a} {b}"));
                    let all_hold = wanted[&path]
                        .iter()
                        .chain([&c])
                        .all(|k| k.test.as_ref().and_then(|t| t.holds(&merged)) == Some(true));
                    if !all_hold {
                        return Err("two selections want the same field differently");
                    }
                    Some(merged)
                }
                _ => return Err("two selections want the same field differently"),
            };
            wanted.entry(path.clone()).or_default().push(c);
            used.insert(path.clone(), value.clone());
            if let Some(v) = value {
                set(&mut doc, &path, v);
            }
        }
    }
    // Selections meant to be false must not hold by accident: each needs a constraint on a
    // field the event leaves absent (and which absence does not satisfy).
    for (name, sel) in sels {
        if on.contains(&name) {
            continue;
        }
        let mut present = Vec::new();
        scalars(&doc, &mut present);
        let broken = sel.iter().any(|c| {
            if c.field == KEYWORD {
                // False only if no attribute holds any keyword.
                return c
                    .test
                    .as_ref()
                    .is_some_and(|t| present.iter().all(|v| t.holds(v) != Some(true)));
            }
            if let Some(values) = constant(&c.field) {
                return c
                    .test
                    .as_ref()
                    .is_some_and(|t| values.iter().all(|v| t.holds(v) == Some(false)));
            }
            let Some(path) = paths(&c.field) else {
                return false;
            };
            match used.get(&path) {
                // Absent: only a constraint that wants a value fails.
                None => c.value.is_some(),
                // Absent on purpose by a true selection (null): same.
                Some(None) => c.value.is_some(),
                Some(Some(v)) => c.test.as_ref().and_then(|t| t.holds(v)) == Some(false),
            }
        });
        if !broken {
            return Err("a false selection the event would satisfy");
        }
    }
    Ok(doc)
}
