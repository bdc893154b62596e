"""PATCH (RFC 7644 §3.5.2) as a pure module, with Entra's dialects; fixtures named after their source."""
from __future__ import annotations

import pytest
from entra_client import load

from shared_code.platform.errors import BadRequest
from shared_code.scim import patch
from shared_code.scim.schemas import GROUP_KIND, USER_KIND

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
ALICE = {"userName": "alice@contoso.example", "active": True, "displayName": "Alice",
         "emails": [{"type": "work", "value": "alice@contoso.example", "primary": True}],
         "name": {"givenName": "Alice", "familyName": "Wonder"}, ENTERPRISE: {"department": "Sales"}}
U1, U2, U3 = "1" * 32, "2" * 32, "3" * 32


def apply(body, data=ALICE, kind=USER_KIND):
    return patch.apply(data, patch.parse(body, kind), kind)


def ops(*operations):
    return {"schemas": [PATCH_OP], "Operations": list(operations)}


def test_entra_default_disable_turns_the_string_into_a_boolean_and_touches_nothing_else():
    assert apply(load("entra-default-disable-user.json")) == {**ALICE, "active": False}


def test_op_names_are_case_insensitive():
    for name in ("replace", "Replace", "REPLACE"):
        assert apply(ops({"op": name, "path": "title", "value": "x"}))["title"] == "x"


def test_replace_on_a_complex_attribute_keeps_unnamed_sub_attributes():
    result = apply(ops({"op": "replace", "path": "name", "value": {"familyName": "Liddell"}}))
    assert result["name"] == {"givenName": "Alice", "familyName": "Liddell"}


def test_add_to_a_multi_valued_attribute_appends_and_ignores_duplicates():
    home = {"type": "home", "value": "a@home.example"}
    once = apply(ops({"op": "add", "path": "emails", "value": [home]}))
    twice = apply(ops({"op": "add", "path": "emails", "value": [home]}), once)
    assert once["emails"] == ALICE["emails"] + [home] == twice["emails"]


def test_remove_with_a_value_filter_removes_only_matching_values():
    data = {**ALICE, "emails": ALICE["emails"] + [{"type": "home", "value": "a@home.example"}]}
    assert apply(ops({"op": "remove", "path": 'emails[type eq "home"]'}), data)["emails"] == ALICE["emails"]


def test_removing_what_is_not_there_is_not_an_error():
    assert apply(ops({"op": "remove", "path": "nickName"})) == ALICE
    assert apply(ops({"op": "remove", "path": 'emails[type eq "fax"]'})) == ALICE


def test_the_whole_extension_can_be_added_and_removed_by_its_urn():
    added = apply(ops({"op": "add", "path": ENTERPRISE, "value": {"employeeNumber": "7"}}))
    assert added[ENTERPRISE] == {"department": "Sales", "employeeNumber": "7"}
    assert ENTERPRISE not in apply(ops({"op": "remove", "path": ENTERPRISE}))


def test_removing_the_last_extension_attribute_unassigns_the_extension():
    assert ENTERPRISE not in apply(ops({"op": "remove", "path": f"{ENTERPRISE}:department"}))


def test_a_bare_manager_id_is_stored_as_its_value_and_an_empty_string_removes_it():
    managed = apply(load("entra-dev-add-manager.json", managerId=U1))
    assert managed[ENTERPRISE]["manager"] == {"value": U1}
    assert "manager" not in apply(load("entra-onboarding-remove-manager.json"), managed)[ENTERPRISE]
    assert apply(ops({"op": "replace", "path": f"{ENTERPRISE}:manager.value", "value": U2}),
                 managed)[ENTERPRISE]["manager"] == {"value": U2}


def test_no_path_add_with_an_extension_object_value():
    result = apply(ops({"op": "add", "value": {ENTERPRISE: {"costCenter": "42", "manager": U3}}}))
    assert result[ENTERPRISE] == {"department": "Sales", "costCenter": "42", "manager": {"value": U3}}


def test_a_failing_operation_leaves_the_input_untouched():
    data = {**ALICE}
    with pytest.raises(BadRequest):
        apply(ops({"op": "replace", "path": "title", "value": "x"}, {"op": "remove", "path": "userName"}), data)
    assert data == ALICE


def test_group_member_operations_become_steps_on_member_rows():
    operations = patch.parse(load("entra-dev-add-members.json", first=U1, second=U2), GROUP_KIND) + \
        patch.parse(load("entra-dev-remove-member.json", memberId=U1), GROUP_KIND) + \
        patch.parse(load("entra-aadoptscim062020-remove-member.json", memberId=U3), GROUP_KIND) + \
        patch.parse(load("entra-dev-replace-group-display-name.json", displayName="New"), GROUP_KIND)
    rest, steps = patch.split_members(operations)
    assert [op.path.attr.name for op in rest] == ["displayName"]
    assert not patch.needs_current_members(steps)
    adds, removes = patch.member_delta(steps, None)
    assert adds == {U2: {"value": U2}} and removes == {U1, U3}


def test_replacing_members_clears_the_group_first():
    rest, steps = patch.split_members(patch.parse(ops({"op": "replace", "path": "members",
                                                         "value": [{"value": U3}]}), GROUP_KIND))
    assert patch.needs_current_members(steps)
    adds, removes = patch.member_delta(steps, {U1: {"value": U1}, U3: {"value": U3}})
    assert adds == {U3: {"value": U3}} and removes == {U1}


def test_members_must_be_user_ids():
    for value in ([{"value": "not-an-id"}], [{"value": U1, "type": "Group"}], [{"display": "x"}], "x"):
        with pytest.raises(BadRequest) as raised:
            patch.split_members(patch.parse(ops({"op": "add", "path": "members", "value": value}), GROUP_KIND))
        assert raised.value.scim_type == "invalidValue"


def test_one_value_may_stand_for_a_list_of_one_in_add_and_remove():
    home = {"type": "home", "value": "a@home.example"}
    added = apply(ops({"op": "add", "path": "emails", "value": home}))
    assert added["emails"] == ALICE["emails"] + [home]
    assert apply(ops({"op": "remove", "path": "emails", "value": home}), added)["emails"] == ALICE["emails"]
