//! The compiled form of a rule's detection, and its evaluation against one event.
//!
//! This is the hot path: evaluation walks borrowed JSON, compares with pre-compiled matchers and
//! never allocates (numbers are rendered into a stack buffer when a string pattern meets them).

use std::cmp::Ordering;
use std::fmt::Write as _;
use std::net::IpAddr;

use serde_json::{Number, Value};

use crate::lookup::{FieldPath, Lookups, SlotAssigner};
use crate::matcher::StrMatcher;

/// A numeric comparison (`|lt`, `|lte`, `|gt`, `|gte`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    /// `<`.
    Lt,
    /// `<=`.
    Lte,
    /// `>`.
    Gt,
    /// `>=`.
    Gte,
}

/// An IP network (`|cidr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    /// Network address.
    pub(crate) addr: IpAddr,
    /// Prefix length in bits.
    pub(crate) bits: u8,
}

impl Cidr {
    fn contains(&self, ip: IpAddr) -> bool {
        let (net, ip, width) = match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(i)) => {
                (u128::from(n.to_bits()), u128::from(i.to_bits()), 32)
            }
            (IpAddr::V6(n), IpAddr::V6(i)) => (n.to_bits(), i.to_bits(), 128),
            _ => return false,
        };
        let bits = u32::from(self.bits);
        if bits == 0 {
            return true;
        }
        let shift = width - bits;
        (net >> shift) == (ip >> shift)
    }
}

/// One Sigma value, compiled.
#[derive(Debug, Clone)]
pub(crate) enum ValuePattern {
    /// A string pattern; numbers and booleans in the event are compared by their text.
    Str(StrMatcher),
    /// A number: equal numbers match, and so does a string equal to `text`.
    Num {
        /// The number.
        n: Number,
        /// Its text form.
        text: Box<str>,
    },
    /// A boolean: equal booleans match, and so does the string `true` / `false` in any case.
    Bool(bool),
    /// A numeric comparison against a number or a numeric string.
    Cmp(CmpOp, f64),
    /// An IP address inside a network.
    Cidr(Cidr),
}

impl ValuePattern {
    /// Whether one event value matches. Arrays match when any element does.
    fn matches(&self, value: &Value) -> bool {
        if let Value::Array(items) = value {
            return items.iter().any(|v| !v.is_array() && self.matches(v));
        }
        match self {
            Self::Str(m) => with_text(value, |t| m.is_match(t)),
            Self::Num { n, text } => match value {
                Value::Number(v) => num_eq(v, n),
                Value::String(s) => s == &**text,
                _ => false,
            },
            Self::Bool(b) => match value {
                Value::Bool(v) => v == b,
                Value::String(s) => s.eq_ignore_ascii_case(if *b { "true" } else { "false" }),
                _ => false,
            },
            Self::Cmp(op, rhs) => {
                let lhs = match value {
                    Value::Number(n) => n.as_f64(),
                    Value::String(s) => s.trim().parse::<f64>().ok(),
                    _ => None,
                };
                lhs.and_then(|l| l.partial_cmp(rhs))
                    .is_some_and(|ord| match op {
                        CmpOp::Lt => ord == Ordering::Less,
                        CmpOp::Lte => ord != Ordering::Greater,
                        CmpOp::Gt => ord == Ordering::Greater,
                        CmpOp::Gte => ord != Ordering::Less,
                    })
            }
            Self::Cidr(net) => match value {
                Value::String(s) => s.parse::<IpAddr>().is_ok_and(|ip| net.contains(ip)),
                _ => false,
            },
        }
    }
}

/// Numeric equality across integer and float representations.
fn num_eq(a: &Number, b: &Number) -> bool {
    match (a.as_i64(), b.as_i64(), a.as_u64(), b.as_u64()) {
        (Some(x), Some(y), _, _) => x == y,
        (_, _, Some(x), Some(y)) => x == y,
        _ => match (a.as_f64(), b.as_f64()) {
            (Some(x), Some(y)) => x == y,
            _ => false,
        },
    }
}

/// Calls `f` with the text of a scalar value (numbers rendered on the stack), or returns false.
pub(crate) fn with_text(value: &Value, f: impl FnOnce(&str) -> bool) -> bool {
    match value {
        Value::String(s) => f(s),
        Value::Bool(b) => f(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            let mut buf = StackText::default();
            let rendered = match (n.as_u64(), n.as_i64()) {
                (Some(u), _) => {
                    buf.push_integer(u, false);
                    Ok(())
                }
                (None, Some(i)) => {
                    buf.push_integer(i.unsigned_abs(), i < 0);
                    Ok(())
                }
                _ => write!(buf, "{n}"),
            };
            match rendered {
                Ok(()) => f(buf.as_str()),
                Err(_) => false,
            }
        }
        Value::Null | Value::Array(_) | Value::Object(_) => false,
    }
}

/// A small fixed buffer that numbers are formatted into.
struct StackText {
    buf: [u8; 40],
    len: usize,
}

impl Default for StackText {
    fn default() -> Self {
        Self {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl StackText {
    /// Renders an integer as `{n}` does (`-` and decimal digits), without the formatting
    /// machinery: into an empty buffer.
    fn push_integer(&mut self, mut magnitude: u64, negative: bool) {
        let mut digits = [0u8; 20];
        let mut at = digits.len();
        loop {
            at -= 1;
            digits[at] = b'0' + (magnitude % 10) as u8;
            magnitude /= 10;
            if magnitude == 0 {
                break;
            }
        }
        let mut len = 0;
        if negative {
            self.buf[0] = b'-';
            len = 1;
        }
        let digits = &digits[at..];
        self.buf[len..len + digits.len()].copy_from_slice(digits);
        self.len = len + digits.len();
    }

    fn as_str(&self) -> &str {
        // Only whole `&str`s are ever copied in, so the prefix is valid UTF-8.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or_default()
    }
}

impl std::fmt::Write for StackText {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        let slot = self.buf.get_mut(self.len..end).ok_or(std::fmt::Error)?;
        slot.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// What a field must satisfy.
#[derive(Debug, Clone)]
pub(crate) enum FieldTest {
    /// Some value of the field matches one of the patterns, or (`or_null`) the field is null.
    AnyOf {
        /// The patterns.
        patterns: Box<[ValuePattern]>,
        /// Also match when the field is absent or null.
        or_null: bool,
    },
    /// `|all`: every group has a pattern that some value of the field matches.
    AllOf(Box<[Box<[ValuePattern]>]>),
    /// `|neq`: no value of the field matches any of the patterns (so an absent field passes).
    NoneOf(Box<[ValuePattern]>),
    /// `|exists`: the field is (or is not) present.
    Exists(bool),
    /// `null`: the field is absent or null.
    IsNull,
    /// `|fieldref`: the field equals one of the other fields.
    SameAs {
        /// The other fields, each with its paths.
        others: Box<[Box<[FieldPath]>]>,
        /// Compare letter case.
        cased: bool,
    },
}

/// A test on one Sigma field, which reads one or more OCSF paths.
#[derive(Debug, Clone)]
pub(crate) struct FieldMatcher {
    /// The paths the field maps to; the field matches when any of them does.
    pub(crate) paths: Box<[FieldPath]>,
    /// The test.
    pub(crate) test: FieldTest,
}

impl FieldMatcher {
    /// Whether the field test holds on a whole document (used to decide constant fields when
    /// a rule is compiled).
    pub(crate) fn is_match_on(&self, data: &Value) -> bool {
        self.is_match(&mut Lookups::new(data))
    }

    /// Whether some non-null value of the field satisfies `pred`.
    fn any_value(&self, ctx: &mut Lookups<'_>, mut pred: impl FnMut(&Value) -> bool) -> bool {
        let mut next = 0;
        while let Some(value) = ctx.next_value(&self.paths, &mut next) {
            if pred(value) {
                return true;
            }
        }
        false
    }

    fn is_match(&self, ctx: &mut Lookups<'_>) -> bool {
        match &self.test {
            FieldTest::AnyOf { patterns, or_null } => {
                let mut present = false;
                let hit = self.any_value(ctx, |value| {
                    present = true;
                    patterns.iter().any(|p| p.matches(value))
                });
                hit || (*or_null && !present)
            }
            FieldTest::AllOf(groups) => groups
                .iter()
                .all(|group| self.any_value(ctx, |value| group.iter().any(|p| p.matches(value)))),
            FieldTest::NoneOf(patterns) => {
                !self.any_value(ctx, |value| patterns.iter().any(|p| p.matches(value)))
            }
            FieldTest::Exists(want) => self.paths.iter().any(|p| ctx.get(p).is_some()) == *want,
            FieldTest::IsNull => !self.any_value(ctx, |_| true),
            FieldTest::SameAs { others, cased } => {
                let mut next = 0;
                while let Some(mine) = ctx.next_value(&self.paths, &mut next) {
                    for other in others.iter() {
                        for path in other.iter() {
                            if ctx
                                .get(path)
                                .is_some_and(|theirs| same_value(mine, theirs, *cased))
                            {
                                return true;
                            }
                        }
                    }
                }
                false
            }
        }
    }

    fn assign_slots(&mut self, slots: &mut SlotAssigner) {
        self.paths.iter_mut().for_each(|p| slots.assign(p));
        if let FieldTest::SameAs { others, .. } = &mut self.test {
            others
                .iter_mut()
                .flat_map(|o| o.iter_mut())
                .for_each(|p| slots.assign(p));
        }
    }
}

/// Equality for `|fieldref`: strings ignoring case unless `cased`, numbers numerically.
fn same_value(a: &Value, b: &Value, cased: bool) -> bool {
    match (a, b) {
        (Value::String(x), Value::String(y)) if !cased => x.eq_ignore_ascii_case(y),
        (Value::Number(x), Value::Number(y)) => num_eq(x, y),
        (Value::Null, _) | (_, Value::Null) => false,
        _ => a == b,
    }
}

/// A keyword search: patterns looked for in the text attributes of the event (numbers,
/// booleans and objects are not searched).
#[derive(Debug, Clone)]
pub(crate) struct KeywordMatcher {
    /// The attributes searched.
    pub(crate) paths: Box<[FieldPath]>,
    /// The keywords, as groups: any pattern of a group may match.
    pub(crate) groups: Box<[Box<[ValuePattern]>]>,
    /// Every group must match (`|all`), instead of any.
    pub(crate) all: bool,
}

impl KeywordMatcher {
    fn is_match(&self, ctx: &mut Lookups<'_>) -> bool {
        // Keywords are looked for in text only: strings, and strings inside arrays.
        let text_matches = |group: &[ValuePattern], value: &Value| match value {
            Value::String(_) => group.iter().any(|p| p.matches(value)),
            Value::Array(items) => items
                .iter()
                .any(|v| v.is_string() && group.iter().any(|p| p.matches(v))),
            _ => false,
        };
        let mut group_matches = |group: &[ValuePattern]| {
            self.paths
                .iter()
                .any(|p| ctx.get(p).is_some_and(|value| text_matches(group, value)))
        };
        if self.all {
            self.groups.iter().all(|g| group_matches(g))
        } else {
            self.groups.iter().any(|g| group_matches(g))
        }
    }
}

/// A node of the compiled detection.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    /// Every child matches.
    And(Box<[Node]>),
    /// Some child matches.
    Or(Box<[Node]>),
    /// The child does not match.
    Not(Box<Node>),
    /// A field test.
    Field(FieldMatcher),
    /// A keyword search.
    Keyword(KeywordMatcher),
    /// A search identifier, by its index in [`Detection::searches`].
    Search(usize),
}

/// A compiled detection: its search identifiers and the condition over them.
#[derive(Debug, Clone)]
pub(crate) struct Detection {
    /// Search identifiers, in the rule's order.
    pub(crate) searches: Box<[Node]>,
    /// The condition.
    pub(crate) condition: Node,
}

impl Detection {
    /// Whether the event document `data` satisfies the detection.
    #[cfg(test)]
    pub(crate) fn is_match(&self, data: &Value) -> bool {
        self.is_match_in(&mut Lookups::new(data))
    }

    /// Whether the event behind `ctx` satisfies the detection.
    pub(crate) fn is_match_in(&self, ctx: &mut Lookups<'_>) -> bool {
        self.eval(&self.condition, ctx)
    }

    fn eval(&self, node: &Node, ctx: &mut Lookups<'_>) -> bool {
        match node {
            Node::And(children) => children.iter().all(|c| self.eval(c, ctx)),
            Node::Or(children) => children.iter().any(|c| self.eval(c, ctx)),
            Node::Not(child) => !self.eval(child, ctx),
            Node::Field(f) => f.is_match(ctx),
            Node::Keyword(k) => k.is_match(ctx),
            Node::Search(i) => self.searches.get(*i).is_some_and(|s| self.eval(s, ctx)),
        }
    }

    /// The detection's outcome when it is the same for every event: `Some` when every test it
    /// depends on reads no attribute (a closed view's absent fields, decided constants), `None`
    /// when some event could go either way.
    pub(crate) fn fixed(&self) -> Option<bool> {
        self.fixed_node(&self.condition)
    }

    fn fixed_node(&self, node: &Node) -> Option<bool> {
        let nothing = Value::Null;
        match node {
            Node::And(children) => {
                let mut all = Some(true);
                for c in children.iter() {
                    match self.fixed_node(c) {
                        Some(false) => return Some(false),
                        Some(true) => {}
                        None => all = None,
                    }
                }
                all
            }
            Node::Or(children) => {
                let mut any = Some(false);
                for c in children.iter() {
                    match self.fixed_node(c) {
                        Some(true) => return Some(true),
                        Some(false) => {}
                        None => any = None,
                    }
                }
                any
            }
            Node::Not(child) => self.fixed_node(child).map(|b| !b),
            Node::Field(f) if f.paths.is_empty() => Some(f.is_match_on(&nothing)),
            Node::Keyword(k) if k.paths.is_empty() => Some(k.is_match(&mut Lookups::new(&nothing))),
            Node::Field(_) | Node::Keyword(_) => None,
            Node::Search(i) => self.searches.get(*i).and_then(|s| self.fixed_node(s)),
        }
    }

    /// ANDs `other` (a filter) to this detection: its searches are appended and its condition
    /// must hold too.
    pub(crate) fn and_also(&mut self, other: Detection) {
        fn shift(node: &mut Node, offset: usize) {
            match node {
                Node::And(children) | Node::Or(children) => {
                    children.iter_mut().for_each(|c| shift(c, offset));
                }
                Node::Not(child) => shift(child, offset),
                Node::Search(i) => *i += offset,
                Node::Field(_) | Node::Keyword(_) => {}
            }
        }
        let offset = self.searches.len();
        let mut searches = std::mem::take(&mut self.searches).into_vec();
        for mut search in other.searches.into_vec() {
            shift(&mut search, offset);
            searches.push(search);
        }
        let mut condition = other.condition;
        shift(&mut condition, offset);
        let mine = std::mem::replace(&mut self.condition, Node::And(Box::new([])));
        self.condition = Node::And(Box::new([mine, condition]));
        self.searches = searches.into();
    }

    /// Appends the dotted form of every path the detection reads.
    #[cfg(test)]
    pub(crate) fn paths(&self, out: &mut Vec<String>) {
        fn visit(node: &Node, out: &mut Vec<String>) {
            match node {
                Node::And(children) | Node::Or(children) => {
                    children.iter().for_each(|c| visit(c, out));
                }
                Node::Not(child) => visit(child, out),
                Node::Field(f) => {
                    out.extend(f.paths.iter().map(FieldPath::dotted));
                    if let FieldTest::SameAs { others, .. } = &f.test {
                        out.extend(others.iter().flat_map(|o| o.iter()).map(FieldPath::dotted));
                    }
                }
                Node::Keyword(k) => out.extend(k.paths.iter().map(FieldPath::dotted)),
                Node::Search(_) => {}
            }
        }
        self.searches.iter().for_each(|s| visit(s, out));
        visit(&self.condition, out);
    }

    /// Gives every path of the detection its slot in `slots`.
    pub(crate) fn assign_slots(&mut self, slots: &mut SlotAssigner) {
        fn visit(node: &mut Node, slots: &mut SlotAssigner) {
            match node {
                Node::And(children) | Node::Or(children) => {
                    children.iter_mut().for_each(|c| visit(c, slots));
                }
                Node::Not(child) => visit(child, slots),
                Node::Field(f) => f.assign_slots(slots),
                Node::Keyword(k) => k.paths.iter_mut().for_each(|p| slots.assign(p)),
                Node::Search(_) => {}
            }
        }
        self.searches.iter_mut().for_each(|s| visit(s, slots));
        visit(&mut self.condition, slots);
    }
}

#[cfg(test)]
mod tests;
