"""Laws of the SCIM filter engine (`shared_code/scim/filter.py`), checked by hypothesis on filters generated
from the User schema and on stored-shape resources (built through `clean_body`, as the service stores them).

Deeper than `tests/scim/test_properties.py` (arbitrary text, token soup): here the filters are well-typed
syntax trees, so the laws speak about meaning — printing and parsing round-trips, `not` is the complement,
`ne` is `not eq`, case rules follow `caseExact`, `attr[value op x]` is `attr.value op x`, the equality the
service turns into a point read holds for every match — and text mutated near the grammar, deep nesting and
maximal lengths still only ever fail as `400 invalidFilter`.
"""
from __future__ import annotations

import json

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from shared_code.platform.errors import BadRequest
from shared_code.scim.filter import (
    MAX_FILTER_LENGTH,
    And,
    AttrPath,
    Compare,
    Not,
    Or,
    Present,
    ValuePath,
    equality,
    matches,
    parse_filter,
    validate,
)
from shared_code.scim.resources import clean_body, render
from shared_code.scim.schemas import ENTERPRISE_USER, USER_KIND
from tests.support.exercised import exercised, refused, requires_exercised

LAWS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"

# --- resources in the shape the service stores and renders them -------------------------------------------------

WORDS = ["a", "A", "ab", "aB", "b", "Bc", "x@y.example", "X@Y.example", ""]
words = st.sampled_from(WORDS)
instants = st.sampled_from(["2024-01-01T00:00:00Z", "2024-06-01T12:30:00.000Z", "2025-03-04T05:06:07+00:00"])
labels = st.sampled_from(["work", "home", "Work", "mobile"])


def _multi(value: st.SearchStrategy) -> st.SearchStrategy:
    element = st.fixed_dictionaries({"value": value}, optional={"type": labels, "display": words})
    return st.lists(element, max_size=3)


user_bodies = st.fixed_dictionaries(
    {"schemas": st.just([CORE_USER, ENTERPRISE_USER]),
     "userName": st.sampled_from(["a", "A", "ab", "aB", "x@y.example"])},
    optional={
        "externalId": st.sampled_from(["a", "A", "ab", "Obj-1"]), "displayName": words, "title": words,
        "nickName": words, "active": st.booleans(),
        "name": st.fixed_dictionaries({}, optional={"givenName": words, "familyName": words}),
        "emails": _multi(st.sampled_from(["a@x.example", "A@x.example", "b@y.example"])),
        "phoneNumbers": _multi(words.filter(bool)),
        ENTERPRISE_USER: st.fixed_dictionaries({}, optional={"department": words, "employeeNumber": words}),
    })


@st.composite
def resources(draw) -> dict:
    data = clean_body(USER_KIND, draw(user_bodies))
    stamps = sorted([draw(instants), draw(instants)])
    return render(USER_KIND, draw(st.sampled_from(["0" * 32, "ab" * 16, "AB" * 16])), data, created=stamps[0],
                  last_modified=stamps[1], version=1, base_url="https://gatehouse.example/api/scim/t/v2")


# --- well-typed filters ---------------------------------------------------------------------------------------------

STRING_OPS = ("eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le")
ORDER_OPS = ("eq", "ne", "gt", "ge", "lt", "le")
# (path, literal strategy, operators); names in varied case because attribute names are case-insensitive.
COMPARABLE = [
    (AttrPath(None, "userName"), words, STRING_OPS), (AttrPath(None, "USERNAME"), words, STRING_OPS),
    (AttrPath(None, "externalId"), words, STRING_OPS), (AttrPath(None, "id"), st.sampled_from(["0" * 32, "AB" * 16]), STRING_OPS),
    (AttrPath(None, "title"), words, STRING_OPS), (AttrPath(None, "displayName"), words, STRING_OPS),
    (AttrPath(None, "name", "givenName"), words, STRING_OPS), (AttrPath(None, "Name", "FamilyName"), words, STRING_OPS),
    (AttrPath(None, "emails"), words, STRING_OPS), (AttrPath(None, "emails", "value"), words, STRING_OPS),
    (AttrPath(None, "emails", "type"), labels, STRING_OPS), (AttrPath(None, "phoneNumbers", "value"), words, STRING_OPS),
    (AttrPath(None, "active"), st.booleans(), ("eq", "ne")),
    (AttrPath(None, "meta", "lastModified"), instants, ORDER_OPS), (AttrPath(None, "meta", "created"), instants, ORDER_OPS),
    (AttrPath(ENTERPRISE_USER, "department"), words, STRING_OPS),
    (AttrPath(CORE_USER, "userName"), words, STRING_OPS),
]
VALUE_PATHS = [AttrPath(None, "emails"), AttrPath(None, "phoneNumbers")]
SUBS = [("value", words, STRING_OPS), ("type", labels, STRING_OPS), ("display", words, STRING_OPS)]


@st.composite
def comparisons(draw, catalogue=COMPARABLE) -> Compare | Present:
    path, literal, ops = draw(st.sampled_from(catalogue))
    kind = draw(st.sampled_from(["compare", "compare", "compare", "present", "null"]))
    if kind == "present":
        return Present(path)
    if kind == "null":
        return Compare(path, draw(st.sampled_from(["eq", "ne"])), None)
    return Compare(path, draw(st.sampled_from(ops)), draw(literal))


def _tree(leaves: st.SearchStrategy) -> st.SearchStrategy:
    return st.recursive(leaves, lambda inner: st.one_of(
        st.builds(And, inner, inner), st.builds(Or, inner, inner), st.builds(Not, inner)), max_leaves=6)


sub_filters = _tree(comparisons([(AttrPath(None, n), lit, ops) for n, lit, ops in SUBS]))
filters = _tree(st.one_of(comparisons(), st.builds(ValuePath, st.sampled_from(VALUE_PATHS), sub_filters)))


# --- printing a tree as a client would write it ------------------------------------------------------------------

@st.composite
def spellings(draw, node) -> str:
    """Text for `node`: keywords in any case, any amount of space, redundant parentheses here and there."""
    space = draw(st.sampled_from([" ", "  ", "\t", " \n "]))
    word = lambda w: draw(st.sampled_from([w, w.upper(), w.capitalize()]))  # noqa: E731

    def text(n, parent: str | None = None, right: bool = False) -> str:
        if isinstance(n, (And, Or)):
            op = "and" if isinstance(n, And) else "or"
            out = f"{text(n.left, op)}{space}{word(op)}{space}{text(n.right, op, True)}"
            needs = (parent == "and" and op == "or") or (right and parent == op) or \
                (parent == "and" and right and op == "and")
            return f"({out})" if needs or draw(st.integers(0, 9)) == 0 else out
        if isinstance(n, Not):
            return f"{word('not')}{draw(st.sampled_from(['', ' ']))}({text(n.inner)})"
        if isinstance(n, ValuePath):
            return f"{n.path}[{text(n.filter)}]"
        if isinstance(n, Present):
            return f"{n.path}{space}{word('pr')}"
        literal = "null" if n.value is None else json.dumps(n.value)
        if isinstance(n.value, bool):
            literal = word(literal)
        return f"{n.path}{space}{word(n.op)}{space}{literal}"

    return text(node)


@st.composite
def written_filters(draw) -> tuple:
    node = draw(filters)
    return node, draw(spellings(node))


def holds(text: str, resource: dict) -> bool:
    node = parse_filter(text)
    validate(node, USER_KIND)
    return matches(node, resource, USER_KIND)


# --- the laws -----------------------------------------------------------------------------------------------------------

@LAWS
@given(written_filters())
def test_a_written_filter_parses_back_to_the_tree_it_was_written_from(case):
    node, text = case
    assert parse_filter(text) == node


@LAWS
@given(written_filters(), resources())
def test_a_well_typed_filter_validates_and_evaluates_on_any_stored_resource(case, resource):
    node, text = case
    assert holds(text, resource) in (True, False)


@LAWS
@given(written_filters(), resources())
def test_not_is_the_complement(case, resource):
    _, text = case
    assert holds(f"not ({text})", resource) is (not holds(text, resource))


@LAWS
@given(comparisons(), resources())
def test_ne_is_not_eq_also_for_null_and_absent_values(node, resource):
    assume(isinstance(node, Compare))
    eq, ne = Compare(node.path, "eq", node.value), Compare(node.path, "ne", node.value)
    assert matches(ne, resource, USER_KIND) is (not matches(eq, resource, USER_KIND))


@LAWS
@given(st.sampled_from([p for p, _, ops in COMPARABLE if ops is STRING_OPS]), st.sampled_from(STRING_OPS),
       words, resources())
def test_case_matters_exactly_for_case_exact_attributes(path, op, literal, resource):
    exact = path.name.lower() in ("externalid", "id")
    original = matches(Compare(path, op, literal), resource, USER_KIND)
    for variant in (literal.upper(), literal.lower(), literal.swapcase()):
        same = matches(Compare(path, op, variant), resource, USER_KIND)
        if not exact:
            assert same is original, (path, op, literal, variant)
        elif same is not original:
            assert variant != literal  # a case-exact attribute may tell them apart, an equal literal may not


@LAWS
@given(st.sampled_from(VALUE_PATHS), st.sampled_from(["eq", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr"]),
       words, resources())
def test_a_value_filter_on_value_is_the_dotted_comparison_and_the_bare_one(path, op, literal, resource):
    if op == "pr":
        inner, dotted, bare = Present(AttrPath(None, "value")), Present(AttrPath(None, path.name, "value")), Present(path)
    else:
        inner = Compare(AttrPath(None, "value"), op, literal)
        dotted, bare = Compare(AttrPath(None, path.name, "value"), op, literal), Compare(path, op, literal)
    filtered = matches(ValuePath(path, inner), resource, USER_KIND)
    assert filtered is matches(dotted, resource, USER_KIND) is matches(bare, resource, USER_KIND)


@st.composite
def point_read_cases(draw) -> tuple:
    """A resource and a filter holding an `attr eq` term the service can read by point, its literal most
    often the resource's own value in another case (so the filter matches and the law has something to say),
    sometimes a word; the term alone, or `and`-ed with any filter on either side."""
    resource = draw(resources())
    attribute = draw(st.sampled_from(["userName", "USERNAME", "externalId", "id"]))
    own = resource.get({"USERNAME": "userName"}.get(attribute, attribute))
    if isinstance(own, str) and draw(st.sampled_from(["own", "own", "own", "word"])) == "own":
        literal = draw(st.sampled_from([own, own.upper(), own.lower(), own.swapcase()]))
    else:
        literal = draw(words)
    term = Compare(AttrPath(None, attribute), "eq", literal)
    shape = draw(st.sampled_from(["alone", "alone", "with a comparison", "with a filter"]))
    rest = None if shape == "alone" else draw(comparisons() if shape == "with a comparison" else filters)
    node = term if rest is None else draw(st.sampled_from([And(term, rest), And(rest, term)]))
    return (node, draw(spellings(node))), resource


@requires_exercised(20)
@LAWS
@given(point_read_cases())
def test_the_equality_the_service_reads_by_point_holds_for_every_match(drawn):
    """The service answers `userName eq "x" and …` by reading only the row for "x": sound only if every
    resource the filter matches has that value."""
    (node, text), resource = drawn
    found = equality(parse_filter(text), ("id", "externalId", "userName"))
    if found is None or not holds(text, resource):
        return refused("no point-read equality, or no match")
    exercised()
    attribute, value = found
    actual = resource.get(attribute)
    if attribute == "userName":
        assert isinstance(actual, str) and actual.casefold() == value.casefold()
    else:
        assert actual == value


@LAWS
@given(written_filters(), st.data())
def test_text_mutated_near_the_grammar_parses_or_is_invalid_filter(case, data):
    _, text = case
    for _ in range(3):
        at = data.draw(st.integers(0, len(text)))
        edit = data.draw(st.sampled_from(["delete", "insert", "duplicate"]))
        piece = data.draw(st.sampled_from(['"', "(", ")", "[", "]", " ", "\\", ".", ":", "not", "and", "pr",
                                           "eq", "null", "emails[", "urn:", "\x00", "é", "1e999"]))
        if edit == "delete":
            text = text[:at] + text[at + 1:]
        elif edit == "insert":
            text = text[:at] + piece + text[at:]
        else:
            text = text[:at] + text[at:at + 5] + text[at:]
    try:
        node = parse_filter(text)
        validate(node, USER_KIND)
        matches(node, {"userName": "a", "emails": [{"value": "a@x.example"}]}, USER_KIND)
    except BadRequest as error:
        assert error.scim_type == "invalidFilter", (text, error.message)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 400), st.sampled_from(["(", "not (", "not(", "emails[", "( not ("]))
def test_any_nesting_depth_is_parsed_or_refused_never_a_recursion_error(depth, opener):
    closer = {"(": ")", "not (": ")", "not(": ")", "emails[": "]", "( not (": "))"}[opener]
    inner = 'value eq "a"' if opener == "emails[" else 'userName eq "a"'
    text = opener * depth + inner + closer * depth
    try:
        parse_filter(text)
    except BadRequest as error:
        assert error.scim_type == "invalidFilter"
        assert len(text) > MAX_FILTER_LENGTH or "deeper" in error.message or "value filter" in error.message


# The costliest shapes of the longest filter allowed; bench/filter.py times parsing them.
COSTLIEST_FILTERS = ['userName eq "' + '\\"' * (MAX_FILTER_LENGTH // 2 - 10) + '"',
                     " or ".join(['title eq "a"'] * (MAX_FILTER_LENGTH // 17)),
                     '"' * MAX_FILTER_LENGTH, "a" * MAX_FILTER_LENGTH, "(" * MAX_FILTER_LENGTH]


def test_the_longest_filters_of_the_costliest_shapes_are_parsed_or_refused_as_invalid_filter():
    """4,096 characters of long strings with escapes, long or-chains, unbalanced quotes and parentheses: each
    is a tree or a 400 invalidFilter, never a recursion error or another exception (how long parsing takes
    is measured by bench/filter.py, not asserted here)."""
    outcomes = []
    for text in COSTLIEST_FILTERS:
        assert len(text) <= MAX_FILTER_LENGTH
        try:
            outcomes.append(type(parse_filter(text)).__name__)
        except BadRequest as error:
            assert error.scim_type == "invalidFilter"
            outcomes.append("invalidFilter")
    assert outcomes == ["Compare", "Or", "invalidFilter", "invalidFilter", "invalidFilter"]
