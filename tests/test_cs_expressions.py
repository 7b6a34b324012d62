"""The alert-rule expression language: parsing, errors with positions, three-valued
evaluation (missing data never fires) and robustness on random text."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cs_metrics.expressions import (
    MAX_DEPTH,
    MAX_LENGTH,
    ExpressionError,
    evaluate,
    metric_names,
    parse,
)

pytestmark = pytest.mark.database_free

KNOWN = {
    "usage_m0": "number",
    "usage_m1": "number",
    "health_score": "number",
    "nps_category": "text",
    "band_changed": "bool",
    "open_questions": "number",
}


def fires(text: str, **metrics) -> bool:
    return evaluate(parse(text, KNOWN), metrics)


@pytest.mark.parametrize(
    ("text", "metrics", "expected"),
    [
        ("health_score < 50", {"health_score": 40}, True),
        ("health_score < 50", {"health_score": 50}, False),
        ("health_score <= 50", {"health_score": 50}, True),
        ("health_score >= 50 and health_score != 60", {"health_score": 60}, False),
        ("nps_category == 'detractor'", {"nps_category": "detractor"}, True),
        ('nps_category != "promoter"', {"nps_category": "passive"}, True),
        ("band_changed", {"band_changed": True}, True),
        ("band_changed == false", {"band_changed": False}, True),
        ("NOT band_changed Or health_score > 1", {"band_changed": True, "health_score": 0}, False),
        ("usage_m0 < usage_m1 * 0.5", {"usage_m0": 40, "usage_m1": 100}, True),
        ("(usage_m1 - usage_m0) / usage_m1 >= 0.6", {"usage_m0": 40, "usage_m1": 100}, True),
        ("abs(usage_m0 - usage_m1) > 10", {"usage_m0": 100, "usage_m1": 80}, True),
        ("max(usage_m0, usage_m1, 5) == 5", {"usage_m0": 1, "usage_m1": 2}, True),
        ("min(usage_m0, usage_m1) > 1_000", {"usage_m0": 1500, "usage_m1": 2000}, True),
        ("-health_score < -10", {"health_score": 11}, True),
        ("1 + 2 * 3 == 7", {}, True),
        ("(1 + 2) * 3 == 9", {}, True),
        ("10 - 2 - 3 == 5", {}, True),
        ("true", {}, True),
    ],
)
def test_expressions_evaluate(text, metrics, expected):
    assert fires(text, **metrics) is expected


@pytest.mark.parametrize(
    "text",
    [
        "health_score < 50",
        "not (health_score < 50)",
        "health_score + 1 > 0",
        "usage_m0 / usage_m1 < 2",
        "abs(health_score) >= 0",
        "health_score == health_score",
        "band_changed or health_score > 10",
        "not band_changed",
    ],
)
def test_missing_data_never_fires(text):
    assert fires(text, health_score=None, usage_m0=None, usage_m1=None, band_changed=None) is False
    assert fires(text) is False  # absent from the mapping: the same as None


def test_unknown_spreads_like_sql_null():
    # A known side can still decide: false and unknown is false, true or unknown is true.
    assert fires("band_changed or health_score > 10", band_changed=True) is True
    assert fires("not (band_changed and health_score > 10)", band_changed=False) is True
    assert fires("usage_m0 / usage_m1 > 0", usage_m0=5, usage_m1=0) is False  # 5/0 is unknown


@pytest.mark.parametrize(
    ("text", "code", "position"),
    [
        ("", "empty", 0),
        ("   ", "empty", 0),
        ("health_score >", "unexpected_end", 14),
        ("health_score > 1 1", "unexpected", 17),
        ("helth_score > 1", "unknown_metric", 0),
        ("health_score = 1", "use_instead", 13),
        ("health_score > 1 && band_changed", "use_instead", 17),
        ("nps_category > 3", "type_mismatch", 0),
        ("nps_category == 3", "type_mismatch", 16),
        ("health_score", "type_mismatch", 0),
        ("band_changed and health_score", "type_mismatch", 17),
        ("1 < health_score < 3", "chained_comparison", 17),
        ("nps_category == 'detractor", "unterminated_string", 16),
        ("(health_score > 1", "unclosed_parenthesis", 0),
        ("sqrt(health_score) > 1", "unknown_function", 0),
        ("abs(health_score, 1) > 1", "bad_arguments", 0),
        ("health_score > 1e5", "bad_number", 15),
        ("health_score > 5$", "bad_character", 16),
        ("__import__('os') == 1", "unknown_function", 0),
    ],
)
def test_errors_name_the_problem_and_its_position(text, code, position):
    with pytest.raises(ExpressionError) as raised:
        parse(text, KNOWN)
    assert raised.value.code == code
    assert raised.value.position == position
    assert f"at character {position + 1}" in str(raised.value)


def test_unknown_metric_error_names_it_and_suggests():
    with pytest.raises(ExpressionError) as raised:
        parse("health_score > 1 and helth_score < 3", KNOWN)
    assert raised.value.params["name"] == "helth_score"
    assert raised.value.params["suggestion"] == "health_score"
    assert "'helth_score'" in raised.value.message


def test_limits():
    with pytest.raises(ExpressionError) as raised:
        parse("health_score > 1 " + " " * MAX_LENGTH, KNOWN)
    assert raised.value.code == "too_long"
    deep = "(" * (MAX_DEPTH + 1) + "band_changed" + ")" * (MAX_DEPTH + 1)
    with pytest.raises(ExpressionError) as raised:
        parse(deep, KNOWN)
    assert raised.value.code == "too_deep"
    with pytest.raises(ExpressionError) as raised:
        parse("not " * (MAX_DEPTH + 1) + "band_changed", KNOWN)
    assert raised.value.code == "too_deep"
    with pytest.raises(ExpressionError) as raised:
        parse("+".join(["1"] * 200) + " > 0", KNOWN)
    assert raised.value.code == "too_long"
    ok = "(" * MAX_DEPTH + "band_changed" + ")" * MAX_DEPTH
    assert evaluate(parse(ok, KNOWN), {"band_changed": True})


def test_a_plain_collection_of_names_skips_metric_types():
    expr = parse("x > 1 and y == 'a'", {"x", "y"})
    assert metric_names(expr) == {"x", "y"}
    assert evaluate(expr, {"x": 2, "y": "a"})
    assert not evaluate(expr, {"x": "2", "y": "a"})  # a text is never greater than 1


def test_no_python_escapes_through():
    for text in ("().__class__", "health_score.__class__ == 1", "[1] == 1", "lambda: 1"):
        with pytest.raises(ExpressionError):
            parse(text, KNOWN)


_ALPHABET = st.sampled_from(
    list("()<>=!+-*/,.'\" _\t\n0123456789abcdefghijklmnopqrstuvwxyz&|$")
    + [
        "and ",
        "or ",
        "not ",
        "true",
        "false",
        "abs(",
        "min(",
        "max(",
        "health_score",
        "nps_category",
        "band_changed",
        "usage_m0",
        "==",
        "<=",
        "'detractor'",
    ]  # fmt: skip
)


@settings(max_examples=400, deadline=None)
@given(st.lists(_ALPHABET, max_size=60).map("".join))
def test_parse_never_crashes_on_token_soup(text):
    try:
        expr = parse(text, KNOWN)
    except ExpressionError as error:
        assert 0 <= error.position <= len(text)
        return
    metrics = {"health_score": 10.0, "nps_category": "detractor", "band_changed": True,
               "usage_m0": 0.0}  # fmt: skip
    assert evaluate(expr, metrics) in (True, False)
    assert evaluate(expr, {}) in (True, False)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_parse_never_crashes_on_any_text(text):
    with contextlib.suppress(ExpressionError):
        parse(text, KNOWN)
