"""Properties over arbitrary input (hypothesis): the filter parser and PATCH never crash on anything a client
can send (only a SCIM 400), and a PATCH never changes anything outside its path."""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_code.platform.errors import BadRequest
from shared_code.scim import patch
from shared_code.scim.filter import matches, parse_filter, validate
from shared_code.scim.resources import clean_body
from shared_code.scim.schemas import GROUP_KIND, USER_KIND
from tests.support.exercised import exercised, refused, requires_exercised

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12)
attribute_names = st.sampled_from([
    "userName", "displayName", "title", "nickName", "active", "emails", "name", "name.givenName",
    "phoneNumbers", "addresses", "roles", "externalId", "id", "meta", "members", "password", "x509Certificates",
    f"{ENTERPRISE}:department", f"{ENTERPRISE}:manager", ENTERPRISE, 'emails[type eq "work"].value',
    'emails[type eq "work"]', "urn:bogus:x", "", "a.b.c", "emails[", "USERNAME"])
filter_tokens = st.sampled_from([
    "userName", "emails", "emails.value", "name.givenName", "active", "meta.lastModified", "title", "members",
    f"{ENTERPRISE}:department", "eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le", "pr", "and", "or", "not",
    "(", ")", "[", "]", ".value", '"x"', '"work"', "true", "false", "null", "1", "2.5", "type", "value", " "])
user_data = st.fixed_dictionaries(
    {"userName": st.text(min_size=1, max_size=12).filter(lambda s: s.strip() and s.isprintable())},
    optional={
        "displayName": st.text(max_size=10), "title": st.text(max_size=10), "active": st.booleans(),
        "name": st.fixed_dictionaries({}, optional={"givenName": st.text(max_size=5),
                                                    "familyName": st.text(max_size=5)}),
        "emails": st.lists(st.fixed_dictionaries({"value": st.sampled_from(["a@x.example", "b@y.example"])},
                                                 optional={"type": st.sampled_from(["work", "home"])}),
                           max_size=3),
        ENTERPRISE: st.fixed_dictionaries({}, optional={"department": st.text(max_size=5),
                                                        "employeeNumber": st.text(max_size=5)}),
    })


@FAST
@given(st.text(max_size=200))
def test_any_text_parses_or_is_a_400(text):
    try:
        node = parse_filter(text)
        validate(node, USER_KIND)
        matches(node, {"userName": "a", "emails": [{"value": "x"}]}, USER_KIND)
    except BadRequest as error:
        assert error.scim_type == "invalidFilter"


@FAST
@given(st.lists(filter_tokens, max_size=14).map(" ".join), user_data)
def test_filter_shaped_text_parses_and_evaluates_or_is_a_400(text, data):
    try:
        node = parse_filter(text)
        validate(node, USER_KIND)
        assert matches(node, data, USER_KIND) in (True, False)
    except BadRequest as error:
        assert error.scim_type == "invalidFilter"


@FAST
@given(st.text(min_size=1, max_size=20).filter(lambda s: "\\" not in s and '"' not in s))
def test_user_name_equality_ignores_case(name):
    node = parse_filter(f'userName eq "{name.swapcase()}"')
    assert matches(node, {"userName": name}, USER_KIND)


@FAST
@given(user_data, st.lists(st.fixed_dictionaries(
    {"op": st.sampled_from(["add", "Add", "replace", "Replace", "remove", "Remove", "bogus"])},
    optional={"path": attribute_names, "value": json_values}), max_size=4))
def test_any_patch_applies_or_is_a_400_and_never_changes_its_input(data, operations):
    before = copy.deepcopy(data)
    try:
        result = patch.apply(data, patch.parse({"schemas": [PATCH_OP], "Operations": operations}, USER_KIND),
                             USER_KIND)
        assert isinstance(result, dict) and result.get("userName")
    except BadRequest as error:
        assert error.scim_type
    assert data == before


@FAST
@given(json_values)
def test_any_body_is_a_resource_or_a_400(body):
    for kind in (USER_KIND, GROUP_KIND):
        try:
            clean_body(kind, body)
        except BadRequest as error:
            assert error.scim_type in ("invalidSyntax", "invalidValue", "tooMany")


SIMPLE_PATHS = {"displayName": "displayName", "title": "title", "nickName": "nickName", "active": "active",
                "name.givenName": "name", "name.familyName": "name", "emails": "emails",
                'emails[type eq "work"].value': "emails", f"{ENTERPRISE}:department": ENTERPRISE}


@requires_exercised(20)
@FAST
@given(user_data, st.sampled_from(sorted(SIMPLE_PATHS)), st.sampled_from(["add", "replace", "remove"]),
       st.one_of(st.text(max_size=8), st.booleans(), st.just("c@z.example"),
                 st.just([{"value": "d@z.example", "type": "other"}])))
def test_a_patch_changes_nothing_outside_its_path(data, path, op, value):
    operation = {"op": op, "path": path} if op == "remove" else {"op": op, "path": path, "value": value}
    try:
        result = patch.apply(data, patch.parse({"schemas": [PATCH_OP], "Operations": [operation]}, USER_KIND),
                             USER_KIND)
    except BadRequest:
        return refused()
    exercised()
    root = SIMPLE_PATHS[path]
    for key in set(data) | set(result):
        if key != root:
            assert result.get(key) == data.get(key), (key, path)
    if root in ("name", ENTERPRISE):
        touched = path.rsplit(":", 1)[-1].split(".")[-1]
        for sub in set(data.get(root) or {}) | set(result.get(root) or {}):
            if sub != touched:
                assert (result.get(root) or {}).get(sub) == (data.get(root) or {}).get(sub)
