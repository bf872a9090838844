//! Conformance over the corpus itself: for each SigmaHQ rule (Linux, emerging threats,
//! threat hunting) that Vigil loads, a small independent model of Sigma's semantics — written
//! here from the specification, sharing no code with the engine — builds an event that must
//! match and a near miss that must not, and the engine must agree on both.
//!
//! The model covers selections as field maps (and lists of them), the value modifiers
//! `contains`, `startswith`, `endswith`, `all`, `cased`, `exists`, `cidr` (IPv4), `lt`/`lte`/
//! `gt`/`gte`, wildcards and escapes, `null`, and conditions with `and`/`or`/`not`,
//! parentheses, `1 of`/`all of` with prefixes and `them`. A rule outside that (regular
//! expressions, encodings, keyword lists, field references) is counted and left out; the test
//! requires most loaded rules to be covered, so the share cannot quietly drop.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Value as Json, json};
use serde_yaml::Value;
use vigil_detect::{RuleSet, RuleStatus};
use vigil_ocsf::Event;
use vigil_ocsf::fieldmap::{FieldMaps, LogSource};

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/sigma");

fn yaml_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            yaml_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "yml" || x == "yaml") {
            out.push(p);
        }
    }
}

/// One field constraint of a selection: what the model knows how to satisfy.
#[derive(Debug, Clone)]
struct Constraint {
    field: String,
    /// The value an event field gets so the constraint holds; `None`: the field stays absent.
    value: Option<Json>,
    /// How to tell whether another value holds, when the model knows.
    test: Option<Test>,
}

/// A string test of the model: wildcard patterns anchored as the modifier says.
#[derive(Debug, Clone)]
struct Test {
    anchor: Option<&'static str>,
    patterns: Vec<String>,
    all: bool,
    cased: bool,
}

/// `*` and `?` glob match with `\` escapes.
fn glob(p: &[char], t: &[char]) -> bool {
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
    fn holds(&self, value: &Json) -> Option<bool> {
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
type Selection = Vec<Constraint>;

/// Why the model leaves a rule out.
type Skip = &'static str;

/// Replaces wildcards by plain characters (`*` → `a`, `?` → `b`) and resolves escapes.
fn plain(pattern: &str) -> String {
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

fn constraint(key: &str, values: &Value) -> Result<Constraint, Skip> {
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

fn selection(v: &Value) -> Result<Selection, Skip> {
    match v {
        Value::Mapping(m) => m
            .iter()
            .map(|(k, v)| constraint(k.as_str().ok_or("a non-string field")?, v))
            .collect(),
        // A list of maps is an OR: the first one is enough.
        Value::Sequence(s) if s.first().is_some_and(Value::is_mapping) => selection(&s[0]),
        _ => Err("a keyword selection"),
    }
}

/// A condition as a boolean formula over selection names.
#[derive(Debug, Clone)]
enum Cond {
    Sel(String),
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
}

struct Parser<'a> {
    toks: Vec<&'a str>,
    at: usize,
    names: &'a [String],
}

impl<'a> Parser<'a> {
    fn peek(&self) -> Option<&'a str> {
        self.toks.get(self.at).copied()
    }
    fn next(&mut self) -> Option<&'a str> {
        let t = self.peek();
        self.at += 1;
        t
    }
    fn or(&mut self) -> Result<Cond, Skip> {
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
    fn and(&mut self) -> Result<Cond, Skip> {
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
    fn not(&mut self) -> Result<Cond, Skip> {
        if self.peek() == Some("not") {
            self.next();
            return Ok(Cond::Not(Box::new(self.not()?)));
        }
        self.atom()
    }
    fn atom(&mut self) -> Result<Cond, Skip> {
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

fn eval(c: &Cond, truth: &BTreeMap<String, bool>) -> bool {
    match c {
        Cond::Sel(n) => truth[n],
        Cond::Not(c) => !eval(c, truth),
        Cond::And(cs) => cs.iter().all(|c| eval(c, truth)),
        Cond::Or(cs) => cs.iter().any(|c| eval(c, truth)),
    }
}

/// Sets `value` at a dotted OCSF path.
fn set(doc: &mut Json, path: &str, value: Json) {
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
fn event_for(
    sels: &BTreeMap<String, Selection>,
    on: &[&String],
    class: (u32, Option<u32>),
    paths: &dyn Fn(&str) -> Option<String>,
) -> Result<Json, Skip> {
    let mut doc = json!({"class_uid": class.0, "time": 1});
    if let Some(a) = class.1 {
        doc["activity_id"] = json!(a);
    }
    let mut used: BTreeMap<String, Option<Json>> = BTreeMap::new();
    let mut wanted: BTreeMap<String, Vec<&Constraint>> = BTreeMap::new();
    for name in on {
        for c in &sels[*name] {
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
        let broken = sel.iter().any(|c| {
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

#[test]
fn every_rule_the_model_covers_matches_its_event_and_not_its_near_miss() {
    let maps = FieldMaps::builtin().unwrap();
    let mut files = Vec::new();
    for sub in [
        "rules/linux",
        "rules-emerging-threats",
        "rules-threat-hunting",
    ] {
        yaml_files(&Path::new(SHARED).join(sub), &mut files);
    }
    files.sort();
    let (mut loaded, mut covered, mut near_misses) = (0usize, 0usize, 0usize);
    let mut skipped: BTreeMap<Skip, usize> = BTreeMap::new();
    let mut failures = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let (set, report) = RuleSet::load_str(&text, file, &maps);
        let standalone = report.rules.len() == 1
            && matches!(report.rules[0].status, RuleStatus::Loaded)
            && set.correlations().is_empty();
        if !standalone {
            continue;
        }
        loaded += 1;
        let doc: Value = match serde_yaml::from_str(&text) {
            Ok(d) => d,
            Err(_) => continue,
        };
        let ls: LogSource = serde_yaml::from_value(doc["logsource"].clone()).unwrap_or_default();
        let Some(map) = maps.for_logsource(&LogSource {
            category: ls.category.clone(),
            product: ls.product.clone(),
            service: ls.service.clone(),
        }) else {
            continue;
        };
        let paths = |f: &str| map.paths(f).and_then(|p| p.first().cloned());
        let outcome = (|| -> Result<(Json, Option<Json>), Skip> {
            let det = doc["detection"].as_mapping().ok_or("no detection")?;
            let mut sels = BTreeMap::new();
            let mut condition = None;
            for (k, v) in det {
                let k = k.as_str().ok_or("a non-string key")?;
                if k == "condition" {
                    condition = Some(v.as_str().ok_or("a condition list")?.to_owned());
                } else if k != "timeframe" {
                    sels.insert(k.to_owned(), selection(v)?);
                }
            }
            let condition = condition.ok_or("no condition")?;
            let spaced = condition.replace('(', " ( ").replace(')', " ) ");
            let names: Vec<String> = sels.keys().cloned().collect();
            let mut p = Parser {
                toks: spaced.split_whitespace().collect(),
                at: 0,
                names: &names,
            };
            let cond = p.or()?;
            if p.at != p.toks.len() {
                return Err("trailing condition tokens");
            }
            if names.len() > 12 {
                return Err("too many selections to enumerate");
            }
            // The truth assignment with the fewest true selections that satisfies the rule.
            let mut best: Option<Vec<&String>> = None;
            for bits in 0u32..(1 << names.len()) {
                let truth: BTreeMap<String, bool> = names
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (n.clone(), bits & (1 << i) != 0))
                    .collect();
                if !eval(&cond, &truth) {
                    continue;
                }
                let on: Vec<&String> = names.iter().filter(|n| truth[*n]).collect();
                if event_for(&sels, &on, (map.class_uid, map.activity_id), &paths).is_ok()
                    && best.as_ref().is_none_or(|b| on.len() < b.len())
                {
                    best = Some(on);
                }
            }
            let on = best.ok_or("no truth assignment the model can build")?;
            let hit = event_for(&sels, &on, (map.class_uid, map.activity_id), &paths)?;
            // Near miss: one true selection made false, if that makes the rule false.
            let miss = on.iter().find_map(|name| {
                let fewer: Vec<&String> = on.iter().filter(|n| *n != name).copied().collect();
                let truth: BTreeMap<String, bool> = names
                    .iter()
                    .map(|n| (n.clone(), fewer.contains(&n)))
                    .collect();
                if eval(&cond, &truth) {
                    return None;
                }
                event_for(&sels, &fewer, (map.class_uid, map.activity_id), &paths).ok()
            });
            Ok((hit, miss))
        })();
        match outcome {
            Err(why) => *skipped.entry(why).or_default() += 1,
            Ok((hit, miss)) => {
                covered += 1;
                let ev = Event::from_value(hit.clone()).unwrap();
                if set.matches_all(&ev).next().is_none() {
                    failures.push(format!("{}: does not match {hit}", file.display()));
                }
                if let Some(miss) = miss {
                    near_misses += 1;
                    let ev = Event::from_value(miss.clone()).unwrap();
                    if set.matches_all(&ev).next().is_some() {
                        failures.push(format!("{}: matches the near miss {miss}", file.display()));
                    }
                }
            }
        }
    }
    eprintln!(
        "conformance: {loaded} standalone rules loaded, {covered} covered ({near_misses} with a \
         near miss); left out: {skipped:?}"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(
        covered * 100 >= loaded * 90,
        "the model covers only {covered} of {loaded} rules: {skipped:?}"
    );
}
