use super::*;
use crate::lookup::CACHED_SLOTS;
use crate::matcher::Anchor;
use serde_json::json;

fn field(path: &str, test: FieldTest) -> Detection {
    Detection {
        searches: Box::new([]),
        condition: Node::Field(FieldMatcher {
            paths: Box::new([FieldPath::new(path)]),
            test,
        }),
    }
}

fn any_of(patterns: Vec<ValuePattern>) -> FieldTest {
    FieldTest::AnyOf {
        patterns: patterns.into(),
        or_null: false,
    }
}

fn lit(s: &str, anchor: Anchor) -> ValuePattern {
    ValuePattern::Str(StrMatcher::literal(s, anchor, false))
}

#[test]
fn string_patterns_meet_numbers_by_their_text() {
    let f = field("process.pid", any_of(vec![lit("42", Anchor::Exact)]));
    assert!(f.is_match(&json!({"process": {"pid": 42}})));
    assert!(f.is_match(&json!({"process": {"pid": "42"}})));
    assert!(!f.is_match(&json!({"process": {"pid": 420}})));
    let f = field("x", any_of(vec![lit("1.5", Anchor::Exact)]));
    assert!(f.is_match(&json!({"x": 1.5})));
}

#[test]
fn number_patterns_match_numbers_and_their_string_form() {
    let n = ValuePattern::Num {
        n: Number::from(0),
        text: "0".into(),
    };
    let f = field("process.auid", any_of(vec![n]));
    assert!(f.is_match(&json!({"process": {"auid": 0}})));
    assert!(f.is_match(&json!({"process": {"auid": 0.0}})));
    assert!(f.is_match(&json!({"process": {"auid": "0"}})));
    assert!(!f.is_match(&json!({"process": {"auid": 1000}})));
    assert!(!f.is_match(&json!({"process": {}})));
}

#[test]
fn null_means_absent_or_null() {
    let f = field("a.b", FieldTest::IsNull);
    assert!(f.is_match(&json!({})));
    assert!(f.is_match(&json!({"a": {"b": null}})));
    assert!(!f.is_match(&json!({"a": {"b": ""}})));
    let or_null = field(
        "a.b",
        FieldTest::AnyOf {
            patterns: Box::new([lit("x", Anchor::Exact)]),
            or_null: true,
        },
    );
    assert!(or_null.is_match(&json!({})));
    assert!(or_null.is_match(&json!({"a": {"b": "X"}})));
    assert!(!or_null.is_match(&json!({"a": {"b": "y"}})));
}

#[test]
fn exists_sees_presence_even_of_null() {
    let yes = field("a", FieldTest::Exists(true));
    let no = field("a", FieldTest::Exists(false));
    for (doc, present) in [
        (json!({"a": null}), true),
        (json!({"a": ""}), true),
        (json!({}), false),
    ] {
        assert_eq!(yes.is_match(&doc), present);
        assert_eq!(no.is_match(&doc), !present);
    }
}

#[test]
fn all_of_requires_every_group_and_arrays_match_any_element() {
    let f = field(
        "cmd",
        FieldTest::AllOf(Box::new([
            Box::new([lit("-d", Anchor::Contains)]),
            Box::new([lit("base64", Anchor::Contains)]),
        ])),
    );
    assert!(f.is_match(&json!({"cmd": "base64 -d x"})));
    assert!(!f.is_match(&json!({"cmd": "base64 x"})));
    let arr = field("tags", any_of(vec![lit("b", Anchor::Exact)]));
    assert!(arr.is_match(&json!({"tags": ["a", "B"]})));
    assert!(!arr.is_match(&json!({"tags": ["a", ["b"]]})));
}

#[test]
fn neq_cmp_and_cidr() {
    let neq = field(
        "u",
        FieldTest::NoneOf(Box::new([lit("root", Anchor::Exact)])),
    );
    assert!(neq.is_match(&json!({"u": "alice"})));
    assert!(!neq.is_match(&json!({"u": "ROOT"})));
    let gt = field("n", any_of(vec![ValuePattern::Cmp(CmpOp::Gt, 10.0)]));
    assert!(gt.is_match(&json!({"n": 11})));
    assert!(gt.is_match(&json!({"n": "10.5"})));
    assert!(!gt.is_match(&json!({"n": 10})));
    let lte = field("n", any_of(vec![ValuePattern::Cmp(CmpOp::Lte, 10.0)]));
    assert!(lte.is_match(&json!({"n": 10})));
    let net = Cidr {
        addr: "10.0.0.0".parse().unwrap(),
        bits: 8,
    };
    let cidr = field("ip", any_of(vec![ValuePattern::Cidr(net)]));
    assert!(cidr.is_match(&json!({"ip": "10.1.2.3"})));
    assert!(!cidr.is_match(&json!({"ip": "11.1.2.3"})));
    assert!(!cidr.is_match(&json!({"ip": "::1"})));
    let v6 = Cidr {
        addr: "fe80::".parse().unwrap(),
        bits: 10,
    };
    assert!(v6.contains("fe80::1".parse().unwrap()));
    assert!(!v6.contains("fec0::1".parse().unwrap()));
}

#[test]
fn fieldref_compares_two_fields() {
    let f = field(
        "a",
        FieldTest::SameAs {
            others: Box::new([Box::new([FieldPath::new("b")])]),
            cased: false,
        },
    );
    assert!(f.is_match(&json!({"a": "X", "b": "x"})));
    assert!(!f.is_match(&json!({"a": "X", "b": "y"})));
    assert!(!f.is_match(&json!({"a": "X"})));
}

#[test]
fn lookups_share_slots_and_fall_back_beyond_the_cache() {
    let n = CACHED_SLOTS + 10;
    let nodes: Vec<Node> = (0..n)
        .chain([3])
        .map(|i| {
            Node::Field(FieldMatcher {
                paths: Box::new([FieldPath::new(&format!("f{i}.v"))]),
                test: any_of(vec![lit("x", Anchor::Exact)]),
            })
        })
        .collect();
    let mut det = Detection {
        searches: Box::new([]),
        condition: Node::And(nodes.into()),
    };
    let mut slots = SlotAssigner::default();
    det.assign_slots(&mut slots);
    assert_eq!(slots.slots.len(), n, "equal paths share a slot");
    let doc = |odd_one: usize| {
        Value::Object(
            (0..n)
                .map(|i| {
                    let v = if i == odd_one { "y" } else { "X" };
                    (format!("f{i}"), json!({ "v": v }))
                })
                .collect(),
        )
    };
    let all_x = doc(usize::MAX);
    let mut ctx = Lookups::new(&all_x);
    assert!(det.is_match_in(&mut ctx));
    assert!(
        det.is_match_in(&mut ctx),
        "a warm cache gives the same answer"
    );
    assert!(!det.is_match(&doc(3)), "a cached path");
    assert!(!det.is_match(&doc(n - 1)), "a path beyond the cache");
}

#[test]
fn stack_text_formats_large_numbers() {
    let f = field(
        "n",
        any_of(vec![lit("18446744073709551615", Anchor::Exact)]),
    );
    assert!(f.is_match(&json!({"n": u64::MAX})));
    assert!(with_text(&json!(-1.2345678901234567e-300), |t| t.contains("e-300")));
}

#[test]
fn integers_render_as_serde_json_displays_them() {
    let values = [
        json!(0),
        json!(7),
        json!(-7),
        json!(10),
        json!(4444),
        json!(-1_000_000),
        json!(u64::MAX),
        json!(i64::MIN),
        json!(i64::MAX),
        json!(1.5),
        json!(-0.0),
        json!(1e300),
    ];
    for v in values {
        let Value::Number(n) = &v else { unreachable!() };
        let want = n.to_string();
        assert!(with_text(&v, |t| t == want), "{v} renders as {want}");
    }
}
