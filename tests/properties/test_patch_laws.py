"""Laws of the SCIM PATCH engine (`shared_code/scim/patch.py`), checked by hypothesis on operations generated
from the declared schema — every User attribute, sub-attribute, extension attribute and value-filtered path,
with well-typed values most of the time and arbitrary JSON otherwise — applied to stored-shape users.

Deeper than `tests/scim/test_properties.py`: an operation on path P changes nothing outside P, down to the
sub-attributes of a complex attribute and the values a value filter does not select; any operation repeated
changes nothing more (Entra re-sends); a PATCH leaves data exactly as a POST of it would store it; Entra's
no-path dialect equals its path dialect; and group member operations net out exactly like a set model.
"""
from __future__ import annotations

import copy

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared_code.platform.errors import BadRequest
from shared_code.scim import patch
from shared_code.scim.resources import clean_body
from shared_code.scim.schemas import ENTERPRISE_USER, GROUP_KIND, USER_KIND
from tests.support.exercised import exercised, refused, requires_exercised

LAWS = settings(max_examples=75, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER_ID, OTHER_ID = "0123456789abcdef" * 2, "fedcba9876543210" * 2

# --- stored-shape users ---------------------------------------------------------------------------------------------

texts = st.sampled_from(["a", "B", "Ab", "", "x y"])
labels = st.sampled_from(["work", "home", "mobile", "other"])
emails = st.sampled_from(["a@x.example", "b@y.example", "C@z.example"])


def _values(value: st.SearchStrategy) -> st.SearchStrategy:
    # Distinct labels, as Entra sends them (its filtered paths assume `type` values are unique).
    element = st.fixed_dictionaries({"value": value, "type": labels})
    return st.lists(element, max_size=3, unique_by=lambda e: e["type"])


user_bodies = st.fixed_dictionaries(
    {"schemas": st.just([CORE_USER, ENTERPRISE_USER]), "userName": st.sampled_from(["u@x.example", "v@y.example"])},
    optional={
        "externalId": st.sampled_from(["obj-1", "obj-2"]), "displayName": texts, "title": texts, "nickName": texts,
        "active": st.booleans(), "preferredLanguage": st.sampled_from(["en-US", "de-DE"]),
        "name": st.fixed_dictionaries({}, optional={"givenName": texts, "familyName": texts, "middleName": texts}),
        "emails": _values(emails), "phoneNumbers": _values(texts.filter(bool)),
        "addresses": st.lists(st.fixed_dictionaries({"type": labels}, optional={
            "formatted": texts, "locality": texts}), max_size=2, unique_by=lambda e: e["type"]),
        ENTERPRISE_USER: st.fixed_dictionaries({}, optional={
            "department": texts, "employeeNumber": texts, "costCenter": texts, "manager": st.just(OTHER_ID)}),
    })
users = user_bodies.map(lambda body: clean_body(USER_KIND, body))

# --- operations from the schema --------------------------------------------------------------------------------------

# (path, root key in the data, sub-key inside the root or None, value strategy)
E = ENTERPRISE_USER
TARGETS = [
    ("displayName", "displayName", None, texts), ("title", "title", None, texts), ("nickName", "nickName", None, texts),
    ("userName", "userName", None, emails), ("externalId", "externalId", None, st.sampled_from(["obj-3", "", " "])),
    ("active", "active", None, st.sampled_from([True, False, "True", "False", "false"])),
    ("preferredLanguage", "preferredLanguage", None, st.sampled_from(["fr-FR", None])),
    ("name", "name", None, st.fixed_dictionaries({}, optional={"givenName": texts, "formatted": texts})),
    ("name.givenName", "name", "givenName", texts), ("name.familyName", "name", "familyName", texts),
    ("emails", "emails", None, _values(emails)), ("phoneNumbers", "phoneNumbers", None, _values(texts.filter(bool))),
    ('emails[type eq "work"].value', "emails", None, emails),
    ('phoneNumbers[type eq "mobile"].value', "phoneNumbers", None, texts.filter(bool)),
    ('phoneNumbers[type eq "fax"]', "phoneNumbers", None, st.fixed_dictionaries({"value": texts.filter(bool)})),
    ('addresses[type eq "work"].locality', "addresses", None, texts),
    (f"{E}:department", E, "department", texts), (f"{E}:employeeNumber", E, "employeeNumber", texts),
    (f"{E}:manager", E, "manager", st.sampled_from([OTHER_ID, "", {"value": OTHER_ID}])),
    (E, E, None, st.fixed_dictionaries({}, optional={"division": texts, "department": texts})),
]
ops = st.sampled_from(["add", "replace", "remove", "Add", "Replace", "Remove"])


@st.composite
def operations(draw, typed: bool = True) -> tuple[dict, tuple]:
    path, root, sub, values = target = draw(st.sampled_from(TARGETS))
    op = draw(ops)
    if op.lower() == "remove":
        return {"op": op, "path": path}, target
    value = draw(values) if typed else draw(st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=6),
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
        max_leaves=6))
    return {"op": op, "path": path, "value": value}, target


def applied(data: dict, *operations_: dict, kind=USER_KIND) -> dict:
    return patch.apply(data, patch.parse({"schemas": [PATCH_OP], "Operations": list(operations_)}, kind), kind)


def _selected(path: str, element: dict) -> bool:
    """Whether a value filter `attr[type eq "t"]` of `path` selects this value."""
    wanted = path.split('"')[1]
    return str(element.get("type", "")).lower() == wanted


# --- the laws ------------------------------------------------------------------------------------------------------------

@LAWS
@given(users, operations(typed=False))
def test_any_value_at_any_schema_path_applies_or_is_a_scim_400_and_the_input_is_untouched(data, case):
    operation, _ = case
    before = copy.deepcopy(data)
    try:
        applied(data, operation)
    except BadRequest as error:
        assert error.scim_type in ("invalidValue", "invalidPath", "invalidSyntax", "invalidFilter", "mutability",
                                   "noTarget", "tooMany"), error.scim_type
    assert data == before


@requires_exercised(25)
@LAWS
@given(users, operations())
def test_an_operation_changes_nothing_outside_its_path(data, case):
    operation, (path, root, sub, _) = case
    try:
        result = applied(data, operation)
    except BadRequest:
        return refused()
    exercised()
    for key in set(data) | set(result):
        if key != root:
            assert result.get(key) == data.get(key), (operation, key)
    if sub is not None:  # a sub-attribute of a single complex attribute: its siblings stay
        for other in set(data.get(root) or {}) | set(result.get(root) or {}):
            if other != sub:
                assert (result.get(root) or {}).get(other) == (data.get(root) or {}).get(other), (operation, other)
    if "[" in path:  # a value filter: the values it does not select stay, in order
        untouched = [e for e in data.get(root) or [] if not _selected(path, e)]
        assert [e for e in result.get(root) or [] if not _selected(path, e)] == untouched, operation


@requires_exercised(25)
@LAWS
@given(users, operations())
def test_repeating_an_operation_changes_nothing_more(data, case):
    operation, _ = case
    try:
        once = applied(data, operation)
    except BadRequest:
        return refused()
    exercised()
    assert applied(once, operation) == once, operation


@requires_exercised(20)
@LAWS
@given(users, st.lists(operations(), min_size=1, max_size=4))
def test_patched_data_is_exactly_what_a_post_of_it_would_store(data, cases):
    try:
        result = applied(data, *(operation for operation, _ in cases))
    except BadRequest:
        return refused()
    exercised()
    schemas = [CORE_USER] + ([ENTERPRISE_USER] if ENTERPRISE_USER in result else [])
    assert clean_body(USER_KIND, {"schemas": schemas, **result}) == result, [c[0] for c in cases]


NO_PATH_KEYS = {"displayName": texts, "title": texts, "name.givenName": texts, "name.familyName": texts,
                "active": st.sampled_from(["True", "False", True]), f"{E}:department": texts,
                f"{E}:employeeNumber": texts, "externalId": st.sampled_from(["obj-9"])}


@requires_exercised(25)
@LAWS
@given(users, st.sampled_from(["replace", "add", "Replace"]),
       st.dictionaries(st.sampled_from(sorted(NO_PATH_KEYS)), st.just(None), min_size=1).flatmap(
           lambda keys: st.fixed_dictionaries({k: NO_PATH_KEYS[k] for k in keys})))
def test_the_no_path_dialect_is_the_same_as_one_operation_per_path(data, op, values):
    one = {"op": op, "value": values}
    each = [{"op": op, "path": key, "value": value} for key, value in values.items()]
    try:
        expected = applied(data, *each)
    except BadRequest:
        try:
            applied(data, one)
        except BadRequest:
            return refused("both forms refused")
        raise AssertionError(f"the no-path form was accepted where path operations were not: {values}")
    exercised()
    assert applied(data, one) == expected


# --- group members against a set model --------------------------------------------------------------------------------

MEMBER_IDS = [f"{i:032x}" for i in range(1, 6)]
member_lists = st.lists(st.sampled_from(MEMBER_IDS), min_size=1, max_size=3, unique=True)


@st.composite
def member_operations(draw) -> tuple[dict, object]:
    """A member operation in one of Entra's or the RFC's shapes, and its meaning on a model of the member
    rows ({id: type}; Entra sends no type, other clients send "User")."""
    ids = draw(member_lists)
    typed = draw(st.booleans())
    values = [{"value": i, "type": "User"} if typed else {"value": i} for i in ids]
    added = {i: "User" if typed else None for i in ids}
    shape = draw(st.sampled_from(["add", "remove-values", "remove-filter", "remove-all", "replace",
                                  "remove-type-filter"]))
    if shape == "add":
        return {"op": "Add", "path": "members", "value": values}, lambda rows: {**rows, **added}
    if shape == "remove-values":
        return {"op": "Remove", "path": "members", "value": values}, \
            lambda rows: {k: t for k, t in rows.items() if k not in added}
    if shape == "remove-filter":
        where = " or ".join(f'value eq "{i}"' for i in ids)
        return {"op": "remove", "path": f"members[{where}]"}, \
            lambda rows: {k: t for k, t in rows.items() if k not in added}
    if shape == "remove-all":
        return {"op": "remove", "path": "members"}, lambda rows: {}
    if shape == "replace":
        return {"op": "replace", "path": "members", "value": values}, lambda rows: dict(added)
    return {"op": "remove", "path": 'members[type eq "user"]'}, \
        lambda rows: {k: t for k, t in rows.items() if t != "User"}


@LAWS
@given(st.dictionaries(st.sampled_from(MEMBER_IDS), st.sampled_from(["User", None])),
       st.lists(member_operations(), min_size=1, max_size=5))
def test_member_operations_net_out_like_a_model_of_the_member_rows(current, cases):
    operations_ = patch.parse({"schemas": [PATCH_OP], "Operations": [c[0] for c in cases]}, GROUP_KIND)
    rest, steps = patch.split_members(operations_)
    assert rest == []
    rows = {i: ({"value": i, "type": t} if t else {"value": i}) for i, t in current.items()}
    # The service reads the current members only when a step needs them; give them only then.
    adds, removes = patch.member_delta(steps, rows if patch.needs_current_members(steps) else None)
    written = {i: m for i, m in rows.items() if i not in removes}
    written.update(adds)
    expected = dict(current)
    for _, meaning in cases:
        expected = meaning(expected)
    assert {i: m.get("type") for i, m in written.items()} == expected


@LAWS
@given(st.lists(st.fixed_dictionaries({"op": ops}, optional={
    "path": st.sampled_from(["members", "displayName", "externalId", 'members[value eq "x"]', "members.value",
                             'members[type eq "User"].display', "urn:bogus:x", "id", "meta.version"]),
    "value": st.recursive(st.none() | st.text(max_size=6) | st.sampled_from(MEMBER_IDS),
                          lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                              st.sampled_from(["value", "type", "$ref", "display", "x"]), inner, max_size=3),
                          max_leaves=6)}), min_size=1, max_size=4))
def test_any_group_patch_is_applied_or_is_a_scim_400(operations_):
    data = {"displayName": "Group"}
    try:
        parsed = patch.parse({"schemas": [PATCH_OP], "Operations": operations_}, GROUP_KIND)
        rest, steps = patch.split_members(parsed)
        patch.apply(data, rest, GROUP_KIND)
        patch.member_delta(steps, {MEMBER_IDS[0]: {"value": MEMBER_IDS[0]}})
    except BadRequest as error:
        assert error.scim_type
    assert data == {"displayName": "Group"}
