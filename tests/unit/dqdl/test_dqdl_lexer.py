"""The one DQDL tokenizer: what a token is, where strings and comments end, and a rule's
canonical text (which quality.json carries and the gate parses again)."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from pipeline_core.dqdl import parse_rule, parse_ruleset
from pipeline_core.dqdl.lexer import span_text, tokenize
from pipeline_core.errors import ConfigurationError


def _kinds(text: str, comments: bool = False) -> list[tuple[str, str]]:
    return [(t.kind, t.text) for t in tokenize(text, comments)]


def test_tokens_of_a_rule():
    assert _kinds('ColumnValues "c" >= -1.5 where "x" in [1, 2]') == [
        ("ident", "ColumnValues"), ("str", '"c"'), ("op", ">="), ("op", "-"), ("num", "1.5"),
        ("ident", "where"), ("str", '"x"'), ("ident", "in"), ("[", "["), ("num", "1"), (",", ","),
        ("num", "2"), ("]", "]"), ("end", "end of rule")]
    assert _kinds("a!=b<=c/d*e+f") == [
        ("ident", "a"), ("op", "!="), ("ident", "b"), ("op", "<="), ("ident", "c"), ("op", "/"),
        ("ident", "d"), ("op", "*"), ("ident", "e"), ("op", "+"), ("ident", "f"),
        ("end", "end of rule")]
    # A number followed by a word is two tokens; a dotted name is one identifier.
    assert _kinds("24hours spark.sql_x") == [
        ("num", "24"), ("ident", "hours"), ("ident", "spark.sql_x"), ("end", "end of rule")]


def test_positions_and_lines():
    tokens = tokenize('Rules = [\n  RowCount > 0, # note\n  "a\nb" ]', comments=True)
    assert [(t.text, t.start, t.end, t.line) for t in tokens] == [
        ("Rules", 0, 5, 1), ("=", 6, 7, 1), ("[", 8, 9, 1), ("RowCount", 12, 20, 2),
        (">", 21, 22, 2), ("0", 23, 24, 2), (",", 24, 25, 2), ('"a\nb"', 35, 40, 3),
        ("]", 41, 42, 4), ("end of rule", 42, 42, 4)]


def test_string_escapes():
    (token, _end) = tokenize(r'"a \"quoted\" back\\slash \d"')
    assert token.kind == "str"
    # Only \" and \\ are escapes: a regular expression keeps its backslashes.
    assert token.value == 'a "quoted" back\\slash \\d'


def test_comments_only_in_files():
    assert _kinds('x # a "comment\ny', comments=True) == [
        ("ident", "x"), ("ident", "y"), ("end", "end of rule")]
    assert _kinds('"#not a comment"', comments=True)[0] == ("str", '"#not a comment"')
    # A single rule's text never holds a comment: there '#' is a character out of place.
    bad = tokenize("x # y")[1]
    assert (bad.kind, bad.text, bad.value) == ("bad", "#", "unexpected character '#'")


def test_the_tokenizer_never_raises():
    unterminated = tokenize('x "abc \\" def')[1]
    assert (unterminated.kind, unterminated.value) == ("bad", "unterminated quoted string")
    assert unterminated.text == '"abc \\" def' and unterminated.end == len('x "abc \\" def')
    assert [t.kind for t in tokenize("é²;.{")] == ["bad"] * 5 + ["end"]


@pytest.mark.parametrize(("rule", "problem"), [
    ('ColumnValues "c" = "é"', None),
    ("RowCount > é", "unexpected character 'é'"),
    ("RowCount > ²", "unexpected character '²'"),
    ("RowCount > 1 # no comments here", "unexpected character '#'"),
    ('RowCount > "1', "unterminated quoted string"),
    ("RowCount > 1.", "unexpected character '.'"),
])
def test_characters_out_of_place_are_configuration_errors(rule, problem):
    """Non-ASCII letters and digits used to fail an internal assertion instead."""
    if problem is None:
        parse_rule(rule)
        return
    with pytest.raises(ConfigurationError, match=problem):
        parse_rule(rule)


def test_a_bad_character_is_reported_after_the_section_structure():
    """A section's structure is checked before its rules, as a reader would."""
    text = "Rules = [\n  Foo ; 1,\n  RowCount > 0,\n]"
    with pytest.raises(ConfigurationError, match=r"^f line 4: empty rule"):
        parse_ruleset(text, source="f")
    with pytest.raises(ConfigurationError, match=r"^f line 2: unexpected character ';'"):
        parse_ruleset(text.replace(",\n]", "\n]"), source="f")


@pytest.mark.parametrize(("text", "canonical"), [
    ("RowCount   >\n\t 0", "RowCount > 0"),
    ('ColumnValues "c"  in  ["a  b",\n "c"]', 'ColumnValues "c" in ["a  b", "c"]'),
    ("RowCount>0", "RowCount>0"),
    ('RowCount > "a', 'RowCount > "a'),
])
def test_canonical_text_collapses_whitespace_outside_strings(text, canonical):
    assert span_text(tokenize(text)[:-1]) == canonical


def test_comments_inside_a_rule_become_one_space():
    ruleset = parse_ruleset(
        'Rules = [\n  ColumnValues "c" in [ # the list\n    "a" # first\n  ]\n]')
    assert ruleset.rules[0].text == 'ColumnValues "c" in [ "a" ]'


_pieces = st.sampled_from(['"a b"', '"x\\"y"', "RowCount", ">", "0.5", "(", ")", "[", "]", ",",
                           "#c\n", "\n", " ", "\t", "-", "where", '"#"'])


@example(pieces=['"#"', "#c\n", "RowCount"])
@settings(max_examples=200, deadline=None)
@given(pieces=st.lists(_pieces, max_size=12))
def test_canonical_text_tokenizes_to_the_same_tokens(pieces):
    """What quality.json carries must read back as what the file said."""
    tokens = tokenize("".join(pieces), comments=True)[:-1]
    canonical = span_text(tokens)
    again = tokenize(canonical)[:-1]
    assert [(t.kind, t.text) for t in again] == [(t.kind, t.text) for t in tokens]
    assert span_text(again) == canonical
