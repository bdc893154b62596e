"""Hostile or broken requests get a precise SCIM error (RFC 7644 §3.12) and change nothing; versions and
preconditions (ETag, If-Match, If-None-Match) are honoured."""
from __future__ import annotations

from urllib.parse import quote

import pytest
from entra_client import assert_scim_error, load

USER = "urn:ietf:params:scim:schemas:core:2.0:User"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"


def patch_body(*operations):
    return {"schemas": [PATCH], "Operations": list(operations)}


@pytest.fixture
def user(scim):
    return scim.create_user("kept@contoso.example", displayName="Kept", emails=[
        {"type": "work", "value": "kept@contoso.example", "primary": True}])


def unchanged(scim, user):
    assert scim.get(f"/Users/{user['id']}").json() == user


def test_malformed_json_is_invalid_syntax(scim):
    response = scim.request("POST", "/Users", data=b'{"schemas": [', headers={"Content-Type": "application/scim+json"})
    assert_scim_error(response, 400, "invalidSyntax")
    assert scim.get("/Users").json()["totalResults"] == 0


@pytest.mark.parametrize("body", [b"[" * 60_000, b'{"schemas": ' + b"[" * 200 + b"]" * 200 + b"}"],
                         ids=["60-kb-of-brackets", "200-levels"])
def test_deeply_nested_json_is_invalid_syntax_not_a_500(scim, body):
    response = scim.request("POST", "/Users", data=body, headers={"Content-Type": "application/scim+json"})
    assert_scim_error(response, 400, "invalidSyntax")
    assert "Traceback" not in response.text


@pytest.mark.parametrize("body", [
    {"userName": "x@contoso.example"},
    {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "userName": "x@contoso.example"},
    {"schemas": [USER, "urn:example:unknown"], "userName": "x@contoso.example"},
    {"schemas": [USER], "userName": "x@contoso.example", "favouriteColour": "blue"},
    {"schemas": [USER], "userName": "x@contoso.example",
     "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "Sales"}},
    {"schemas": [USER], "userName": "x@contoso.example", "name": {"givenName": "B", "nickname": "Babs"}},
    [{"schemas": [USER], "userName": "x@contoso.example"}],
], ids=["no-schemas", "group-schema", "unknown-schema", "unknown-attribute", "extension-not-listed",
        "unknown-sub-attribute", "array"])
def test_wrong_schemas_and_unknown_attributes_are_invalid_syntax(scim, body):
    assert_scim_error(scim.post("/Users", body), 400, "invalidSyntax")
    assert scim.get("/Users").json()["totalResults"] == 0


@pytest.mark.parametrize("extra", [
    {"userName": 42},
    {"userName": ""},
    {"active": "maybe"},
    {"emails": {"value": "x"}},
    {"emails": [{"value": "not an email"}]},
    {"emails": [{"value": "a@x.example", "primary": True}, {"value": "b@x.example", "primary": True}]},
    {"name": "Barbara"},
    {"profileUrl": "not a uri"},
    {"x509Certificates": [{"value": "***"}]},
    {"userName": "tab\tinside@contoso.example"},
], ids=["number", "empty", "bad-boolean", "not-a-list", "bad-email", "two-primaries", "not-complex",
        "bad-reference", "bad-binary", "control-character"])
def test_wrong_types_and_values_are_invalid_value(scim, extra):
    body = {"schemas": [USER], "userName": "valid@contoso.example", **extra}
    assert_scim_error(scim.post("/Users", body), 400, "invalidValue")
    assert scim.get("/Users").json()["totalResults"] == 0


def test_a_password_is_refused_because_employees_sign_in_with_sso(scim):
    body = {"schemas": [USER], "userName": "p@contoso.example", "password": "hunter2"}
    assert_scim_error(scim.post("/Users", body), 400, "invalidSyntax")


def test_a_body_over_the_size_cap_is_413(scim):
    body = {"schemas": [USER], "userName": "big@contoso.example", "displayName": "x" * (70 * 1024)}
    response = scim.post("/Users", body)
    assert_scim_error(response, 413)
    assert scim.get("/Users").json()["totalResults"] == 0


@pytest.mark.parametrize("operation,scim_type", [
    ({"op": "remove"}, "noTarget"),
    ({"op": "Remove", "path": ""}, "noTarget"),
    ({"op": "replace", "path": "favouriteColour", "value": "blue"}, "invalidPath"),
    ({"op": "replace", "path": "name.nickname", "value": "x"}, "invalidPath"),
    ({"op": "replace", "path": "urn:example:ext:thing", "value": "x"}, "invalidPath"),
    ({"op": "replace", "path": "emails[type eq]", "value": "x"}, "invalidFilter"),
    ({"op": "replace", "path": "emails[type eq \"home\"]", "value": {"value": "h@x.example"}}, "noTarget"),
    ({"op": "replace", "path": "id", "value": "0" * 32}, "mutability"),
    ({"op": "remove", "path": "userName"}, "mutability"),
    ({"op": "replace", "path": "active", "value": "perhaps"}, "invalidValue"),
    ({"op": "move", "path": "active", "value": True}, "invalidSyntax"),
    ({"op": "replace", "path": "userName"}, "invalidValue"),
], ids=["remove-without-path", "remove-empty-path", "unknown-attribute", "unknown-sub-attribute",
        "unknown-schema", "broken-filter", "filter-matches-nothing", "read-only", "required", "bad-value",
        "unknown-op", "missing-value"])
def test_a_bad_patch_operation_gets_a_precise_error_and_changes_nothing(scim, user, operation, scim_type):
    good = {"op": "replace", "path": "displayName", "value": "Changed"}
    response = scim.patch(f"/Users/{user['id']}", patch_body(good, operation))
    assert_scim_error(response, 400, scim_type)
    unchanged(scim, user)


@pytest.mark.parametrize("body", [
    {"Operations": [{"op": "replace", "path": "displayName", "value": "x"}]},
    {"schemas": [PATCH]},
    {"schemas": [PATCH], "Operations": []},
    {"schemas": [PATCH], "Operations": ["replace"]},
], ids=["no-schemas", "no-operations", "empty-operations", "operation-not-object"])
def test_a_malformed_patch_message_is_invalid_syntax(scim, user, body):
    assert_scim_error(scim.patch(f"/Users/{user['id']}", body), 400, "invalidSyntax")
    unchanged(scim, user)


def test_a_patch_on_an_unknown_user_is_404(scim):
    assert_scim_error(scim.patch("/Users/" + "a" * 32, load("entra-default-disable-user.json")), 404)


@pytest.mark.parametrize("expression", [
    "userName", 'userName eq', 'userName xx "a"', 'userName eq "a" and', '(userName eq "a"', 'userName eq "a")',
    'favouriteColour eq "blue"', 'userName eq 42', 'active gt true', 'name eq "x"', 'emails[type eq "work"',
    'emails[value[type eq "x"]]', 'userName eq "unterminated', "not userName eq \"a\"", "@@@",
    'meta.lastModified gt "yesterday"',
])
def test_a_filter_that_is_not_one_is_400_invalid_filter_never_404(scim, expression):
    assert_scim_error(scim.get("/Users?filter=" + quote(expression)), 400, "invalidFilter")


@pytest.mark.parametrize("query", ["startIndex=one", "count=many", "attributes=favouriteColour"])
def test_bad_query_parameters_are_invalid_value(scim, query):
    assert_scim_error(scim.get("/Users?" + query), 400, "invalidValue")


def test_if_match_is_honoured_and_a_stale_version_is_412(scim, user):
    stale = user["meta"]["version"]
    fresh = scim.patch(f"/Users/{user['id']}", load("entra-default-disable-user.json"),
                       headers={"If-Match": stale})
    assert fresh.status_code == 200 and fresh.headers["ETag"] != stale
    response = scim.patch(f"/Users/{user['id']}", load("entra-default-enable-user.json"), headers={"If-Match": stale})
    assert_scim_error(response, 412)
    assert scim.get(f"/Users/{user['id']}").json()["active"] is False
    assert_scim_error(scim.delete(f"/Users/{user['id']}", headers={"If-Match": stale}), 412)
    assert scim.delete(f"/Users/{user['id']}", headers={"If-Match": fresh.headers["ETag"]}).status_code == 204


def test_if_none_match_with_the_current_version_is_304(scim, user):
    response = scim.get(f"/Users/{user['id']}", headers={"If-None-Match": user["meta"]["version"]})
    assert response.status_code == 304 and response.content == b""
    assert scim.get(f"/Users/{user['id']}", headers={"If-None-Match": 'W/"0"'}).status_code == 200


def test_unsupported_methods_and_paths_get_scim_errors(scim):
    assert_scim_error(scim.put("/Users", {}), 405)
    assert_scim_error(scim.post("/ServiceProviderConfig", {}), 405)
    assert_scim_error(scim.get("/Bulk"), 404)


def test_attributes_and_excluded_attributes_shape_the_answer(scim, user):
    only = scim.get(f"/Users/{user['id']}?attributes=userName,emails.value").json()
    assert only == {"schemas": user["schemas"], "id": user["id"], "userName": "kept@contoso.example",
                    "emails": [{"value": "kept@contoso.example"}]}
    without = scim.get(f"/Users/{user['id']}?excludedAttributes=emails,meta").json()
    assert "emails" not in without and "meta" not in without and without["displayName"] == "Kept"


def test_search_with_post_takes_the_query_in_the_body(scim, user):
    body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "filter": 'displayName eq "kept"',
            "attributes": ["userName"], "startIndex": 1, "count": 10}
    response = scim.post("/Users/.search", body)
    assert response.status_code == 200, response.text
    assert response.json()["Resources"] == [{"schemas": user["schemas"], "id": user["id"],
                                             "userName": "kept@contoso.example"}]
    assert_scim_error(scim.post("/Users/.search", {"filter": "x"}), 400, "invalidSyntax")


def test_search_at_the_root_covers_users_and_groups(scim, user):
    group = scim.create_group("Kept Team")
    search = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"]}
    everything = scim.post("/.search", {**search, "attributes": ["displayName"]}).json()
    assert [r.get("displayName") for r in everything["Resources"]] == ["Kept", "Kept Team"]
    users_only = scim.post("/.search", {**search, "filter": 'userName sw "kept"'}).json()
    assert [r["id"] for r in users_only["Resources"]] == [user["id"]]
    groups_only = scim.post("/.search", {**search, "filter": 'displayName eq "kept team"'}).json()
    assert [r["id"] for r in groups_only["Resources"]] == [group["id"]]
    assert_scim_error(scim.post("/.search", {**search, "filter": 'favourite eq "x"'}), 400, "invalidFilter")


def test_a_bad_projection_on_a_write_is_refused_before_anything_is_written(scim, user):
    body = {"schemas": [USER], "userName": "projected@contoso.example"}
    assert_scim_error(scim.post("/Users?attributes=favouriteColour", body), 400, "invalidValue")
    assert scim.get("/Users?filter=" + quote('userName eq "projected@contoso.example"')).json()["totalResults"] == 0
    response = scim.patch(f"/Users/{user['id']}?excludedAttributes=nope", load("entra-default-disable-user.json"))
    assert_scim_error(response, 400, "invalidValue")
    unchanged(scim, user)
