"""Replays every request shape of Entra's provisioning client (reference/entra-provisioning.md) against the
app over HTTP on a real Azurite: the default dialect and `aadOptscim062020`, users and groups."""
from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import quote

import pytest
from entra_client import SCIM_JSON, assert_scim_error, load

ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
LIST = "urn:ietf:params:scim:api:messages:2.0:ListResponse"


def entra_user(scim, **values):
    """POST the Create User body of Entra's docs; returns (response, the values used)."""
    token = uuid.uuid4().hex[:12]
    values = {"externalId": str(uuid.uuid4()), "userName": f"Test_User_{token}@contoso.example",
              "email": f"Test_User_{token}@contoso.example", **values}
    return scim.post("/Users", load("entra-dev-create-user.json", **values)), values


def filter_users(scim, expression: str):
    response = scim.get("/Users?filter=" + quote(expression))
    assert response.status_code == 200, response.text
    return response.json()


# --- connection and matching ---------------------------------------------------------------------------------

def test_test_connection_query_for_a_random_guid_answers_an_empty_list_not_404(scim):
    body = filter_users(scim, f'userName eq "{uuid.uuid4()}"')
    assert body == {"schemas": [LIST], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []}
    groups = scim.get("/Groups?excludedAttributes=members&filter=" + quote(f'displayName eq "{uuid.uuid4()}"'))
    assert groups.status_code == 200 and groups.json()["totalResults"] == 0


def test_plus_encoded_filter_as_entra_sends_it_matches_the_user(scim):
    scim.create_user("dale.mohr@romaguera.uk")
    response = scim.get('/Users?filter=userName+eq+"dale.mohr%40romaguera.uk"')
    assert response.status_code == 200
    assert [u["userName"] for u in response.json()["Resources"]] == ["dale.mohr@romaguera.uk"]


def test_user_name_matching_is_case_insensitive_and_the_value_is_stored_as_sent(scim):
    scim.create_user("Adele.Vance@Contoso.example")
    body = filter_users(scim, 'userName eq "adele.vance@contoso.EXAMPLE"')
    assert body["totalResults"] == 1
    assert body["Resources"][0]["userName"] == "Adele.Vance@Contoso.example"
    assert filter_users(scim, 'USERNAME EQ "ADELE.VANCE@CONTOSO.EXAMPLE"')["totalResults"] == 1


def test_matching_on_external_id_is_exact(scim):
    user = scim.create_user(externalId="Object-ABC")
    assert [u["id"] for u in filter_users(scim, 'externalId eq "Object-ABC"')["Resources"]] == [user["id"]]
    assert filter_users(scim, 'externalId eq "object-abc"')["totalResults"] == 0


def test_legacy_manager_check_with_id_and_manager_and_attributes_id(scim):
    manager = scim.create_user()
    user = scim.create_user(**{"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE],
                               ENTERPRISE: {"manager": {"value": manager["id"]}}})
    response = scim.get("/Users?attributes=id&filter=" + quote(
        f'id eq "{user["id"]}" and {ENTERPRISE}:manager.value eq "{manager["id"]}"'))
    assert response.status_code == 200
    assert response.json()["Resources"] == [{"schemas": user["schemas"], "id": user["id"]}]


# --- users ------------------------------------------------------------------------------------------------------

def test_create_user_as_entra_sends_it_answers_201_with_id_location_etag_and_scim_json(scim):
    response, values = entra_user(scim)
    assert response.status_code == 201, response.text
    assert response.headers["Content-Type"].startswith(SCIM_JSON)
    user = response.json()
    assert user["id"] and user["userName"] == values["userName"] and user["externalId"] == values["externalId"]
    assert response.headers["Location"] == user["meta"]["location"] == f"{scim.base}/Users/{user['id']}"
    assert response.headers["ETag"] == user["meta"]["version"]
    assert user["meta"]["resourceType"] == "User" and user["meta"]["created"]
    assert user["emails"] == [{"primary": True, "type": "work", "value": values["email"]}]
    assert "roles" not in user and "title" not in user  # [] and null are "unassigned"
    assert scim.get(f"/Users/{user['id']}").json() == user


def test_disable_in_the_default_dialect_sends_the_string_false_and_the_user_stays_visible(scim):
    response, values = entra_user(scim)
    user_id = response.json()["id"]
    patched = scim.patch(f"/Users/{user_id}", load("entra-default-disable-user.json"))
    assert patched.status_code == 200 and patched.json()["active"] is False
    assert scim.get(f"/Users/{user_id}").json()["active"] is False
    found = filter_users(scim, f'userName eq "{values["userName"]}"')
    assert found["totalResults"] == 1 and found["Resources"][0]["active"] is False
    enabled = scim.patch(f"/Users/{user_id}", load("entra-default-enable-user.json"))
    assert enabled.json()["active"] is True


def test_disable_with_aadoptscim062020_sends_a_json_boolean(scim):
    user = scim.create_user()
    patched = scim.patch(f"/Users/{user['id']}", load("entra-aadoptscim062020-disable-user.json"))
    assert patched.status_code == 200 and patched.json()["active"] is False


def test_filtered_path_replace_updates_only_the_work_email(scim):
    user = scim.create_user(emails=[{"type": "work", "value": "old@contoso.example", "primary": True},
                                    {"type": "home", "value": "me@home.example"}], name={"familyName": "Old"})
    patched = scim.patch(f"/Users/{user['id']}", load("entra-dev-patch-user-multi-valued.json")).json()
    assert patched["emails"] == [{"type": "work", "value": "updatedEmail@contoso.example", "primary": True},
                                 {"type": "home", "value": "me@home.example"}]
    assert patched["name"] == {"familyName": "updatedFamilyName"}


def test_user_name_replace_moves_the_lookup_to_the_new_name(scim):
    user = scim.create_user("before@contoso.example")
    patched = scim.patch(f"/Users/{user['id']}", load("entra-dev-patch-user-single-valued.json",
                                                      userName="After@contoso.example"))
    assert patched.json()["userName"] == "After@contoso.example"
    assert filter_users(scim, 'userName eq "before@contoso.example"')["totalResults"] == 0
    assert filter_users(scim, 'userName eq "after@contoso.example"')["Resources"][0]["id"] == user["id"]
    # the old name is free again
    assert scim.create_user("before@contoso.example")["id"] != user["id"]


def test_add_on_filtered_paths_creates_the_values_they_describe(scim):
    user = scim.create_user()
    patched = scim.patch(f"/Users/{user['id']}", load("entra-default-add-attributes.json")).json()
    assert patched["displayName"] == "Babs Jensen" and patched["title"] == "Sales Lead"
    assert patched["phoneNumbers"] == [{"type": "mobile", "value": "+1 (555) 010-0000"}]  # stored as sent
    assert patched["addresses"] == [{"type": "work", "formatted": "1 Main St, Springfield",
                                     "locality": "Springfield"}]


def test_no_path_replace_applies_dotted_keys_as_sub_attributes_and_urn_keys_to_the_extension(scim):
    user = scim.create_user(emails=[{"type": "work", "value": "x@contoso.example"}],
                            phoneNumbers=[{"type": "work", "value": "1"}])
    response = scim.patch(f"/Users/{user['id']}", load("entra-aadoptscim062020-replace-multiple-attributes.json"))
    assert response.status_code == 200, response.text
    patched = response.json()
    assert patched["displayName"] == "Pvlo"
    assert patched["name"] == {"givenName": "Gtfd", "familyName": "Pkqf"}
    assert patched[ENTERPRISE] == {"employeeNumber": "Eqpj", "department": "Research"}
    assert patched["emails"] == [{"type": "work", "value": "TestBcwqnm@contoso.example"}]
    assert patched["phoneNumbers"] == [{"type": "work", "value": "+1 555 0199"}]


def test_mixed_replace_and_add_with_extension_urn_paths(scim):
    user = scim.create_user(phoneNumbers=[{"type": "work", "value": "0"}])
    patched = scim.patch(f"/Users/{user['id']}", load("laravel-scim-server-34-mixed-replace-and-add.json")).json()
    assert patched["displayName"] == "Jane Doe"
    assert patched[ENTERPRISE] == {"department": "Engineering", "employeeNumber": "12345"}
    assert patched["phoneNumbers"] == [{"type": "work", "value": "+44 20 7946 0000"}]


def test_manager_arrives_as_a_bare_id_and_leaves_as_value_and_ref_and_an_empty_string_removes_it(scim):
    manager, report = scim.create_user(), scim.create_user()
    added = scim.patch(f"/Users/{report['id']}", load("entra-dev-add-manager.json", managerId=manager["id"]))
    assert added.status_code == 200, added.text
    assert added.json()[ENTERPRISE]["manager"] == {"value": manager["id"], "$ref": f"{scim.base}/Users/{manager['id']}"}
    assert scim.get(f"/Users/{report['id']}").json()[ENTERPRISE]["manager"]["value"] == manager["id"]
    removed = scim.patch(f"/Users/{report['id']}", load("entra-onboarding-remove-manager.json")).json()
    assert "manager" not in removed.get(ENTERPRISE, {})


def test_a_manager_that_is_not_a_user_of_this_tenant_is_refused(scim, new_tenant):
    report = scim.create_user()
    response = scim.patch(f"/Users/{report['id']}", load("entra-dev-add-manager.json", managerId="0" * 32))
    assert_scim_error(response, 400, "invalidValue")


def test_repeating_a_patch_with_values_already_set_changes_nothing(scim):
    user = scim.create_user()
    first = scim.patch(f"/Users/{user['id']}", load("entra-default-disable-user.json")).json()
    again = scim.patch(f"/Users/{user['id']}", load("entra-default-disable-user.json")).json()
    assert again["meta"]["version"] == first["meta"]["version"]


def test_hard_delete_answers_204_then_404(scim):
    user = scim.create_user()
    assert scim.delete(f"/Users/{user['id']}").status_code == 204
    assert_scim_error(scim.get(f"/Users/{user['id']}"), 404)
    assert_scim_error(scim.delete(f"/Users/{user['id']}"), 404)


def test_unknown_ids_are_404_with_the_scim_error_schema(scim):
    for path in ("/Users/" + "f" * 32, "/Users/not-an-id", "/Groups/" + "0" * 32):
        assert_scim_error(scim.get(path), 404)


# --- create retries and uniqueness ---------------------------------------------------------------------------

def test_a_create_retried_after_a_timeout_answers_with_the_existing_user(scim):
    first, values = entra_user(scim)
    retried, _ = entra_user(scim, **values)
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == first.json()["id"]
    assert filter_users(scim, f'userName eq "{values["userName"]}"')["totalResults"] == 1


def test_a_duplicate_user_name_in_another_case_is_409_uniqueness(scim):
    scim.create_user("Megan.Bowen@contoso.example", externalId="a")
    response = scim.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                    "userName": "megan.bowen@CONTOSO.example", "externalId": "b"})
    assert_scim_error(response, 409, "uniqueness")


def test_a_duplicate_external_id_is_409_uniqueness(scim):
    scim.create_user(externalId="same-object-id")
    response = scim.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                    "userName": "someone.else@contoso.example", "externalId": "same-object-id"})
    assert_scim_error(response, 409, "uniqueness")


def test_of_ten_parallel_creates_of_one_user_name_exactly_one_wins(scim):
    def create(i):
        return scim.post("/Users", {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                                    "userName": "Race@contoso.example", "externalId": f"object-{i}"})
    with ThreadPoolExecutor(10) as pool:
        statuses = sorted(r.status_code for r in pool.map(create, range(10)))
    assert statuses == [201] + [409] * 9
    assert filter_users(scim, 'userName eq "race@contoso.example"')["totalResults"] == 1


# --- paging ---------------------------------------------------------------------------------------------------------

def test_index_paging_with_count_5_walks_every_user_once_in_a_stable_order(scim):
    created = [scim.create_user(f"page{i:02d}@contoso.example")["id"] for i in range(12)]
    seen, start = [], 1
    while True:
        page = scim.get(f"/Users?startIndex={start}&count=5").json()
        assert page["totalResults"] == 12 and page["startIndex"] == start
        assert page["itemsPerPage"] == len(page["Resources"]) <= 5
        if not page["Resources"]:
            break
        seen += [u["id"] for u in page["Resources"]]
        start += 5
    assert seen == created  # ids sort by creation: a listing is stable while users are added
    assert scim.get("/Users?count=0").json()["Resources"] == []
    assert scim.get("/Users?startIndex=0&count=2").json()["startIndex"] == 1


# --- groups -------------------------------------------------------------------------------------------------------

def entra_group(scim, name=None):
    response = scim.post("/Groups", load("entra-dev-create-group.json", externalId=str(uuid.uuid4()),
                                         displayName=name or f"Group {uuid.uuid4().hex[:6]}"))
    assert response.status_code == 201, response.text
    return response.json()


def members_of(scim, group_id):
    return sorted(m["value"] for m in scim.get(f"/Groups/{group_id}").json().get("members", []))


def test_group_created_with_entra_schema_urn_and_no_members_then_found_by_display_name(scim):
    group = entra_group(scim, "Sales Team")
    assert group["schemas"] == ["urn:ietf:params:scim:schemas:core:2.0:Group"]
    response = scim.get("/Groups?excludedAttributes=members&filter=" + quote('displayName eq "sales team"'))
    body = response.json()
    assert body["totalResults"] == 1 and body["Resources"][0]["id"] == group["id"]
    assert "members" not in body["Resources"][0]
    single = scim.get(f"/Groups/{group['id']}?excludedAttributes=members").json()
    assert "members" not in single and single["displayName"] == "Sales Team"


def test_member_add_answers_204_and_readding_existing_members_is_not_an_error(scim):
    group, a, b = entra_group(scim), scim.create_user(), scim.create_user()
    body = load("entra-dev-add-members.json", first=a["id"], second=b["id"])
    first = scim.patch(f"/Groups/{group['id']}", body)
    assert first.status_code == 204 and first.text == ""
    assert scim.patch(f"/Groups/{group['id']}", body).status_code == 204
    assert members_of(scim, group["id"]) == sorted([a["id"], b["id"]])


def test_member_remove_with_a_value_list_removes_only_the_listed_member(scim):
    group, a, b = entra_group(scim), scim.create_user(), scim.create_user()
    added = scim.patch(f"/Groups/{group['id']}", load("entra-dev-add-members.json", first=a["id"], second=b["id"]))
    assert added.status_code == 204 and members_of(scim, group["id"]) == sorted([a["id"], b["id"]]), added.text
    response = scim.patch(f"/Groups/{group['id']}", load("entra-dev-remove-member.json", memberId=a["id"]))
    assert response.status_code == 204
    assert members_of(scim, group["id"]) == [b["id"]]
    # removing someone who is not a member is not an error either
    assert scim.patch(f"/Groups/{group['id']}", load("entra-dev-remove-member.json",
                                                     memberId=a["id"])).status_code == 204


def test_member_remove_with_a_value_filter_removes_only_that_member(scim):
    group, a, b = entra_group(scim), scim.create_user(), scim.create_user()
    added = scim.patch(f"/Groups/{group['id']}", load("entra-dev-add-members.json", first=a["id"], second=b["id"]))
    assert added.status_code == 204 and members_of(scim, group["id"]) == sorted([a["id"], b["id"]]), added.text
    response = scim.patch(f"/Groups/{group['id']}", load("entra-aadoptscim062020-remove-member.json",
                                                         memberId=b["id"]))
    assert response.status_code == 204
    assert members_of(scim, group["id"]) == [a["id"]]


def test_adding_a_member_that_is_not_a_user_changes_nothing(scim):
    group, a = entra_group(scim), scim.create_user()
    response = scim.patch(f"/Groups/{group['id']}", load("entra-dev-add-members.json", first=a["id"],
                                                         second="0" * 32))
    assert_scim_error(response, 400, "invalidValue")
    assert members_of(scim, group["id"]) == []


def test_group_display_name_replace_and_uniqueness(scim):
    group = entra_group(scim, "Old Name")
    entra_group(scim, "Taken Name")  # the name the rename below must not take
    response = scim.patch(f"/Groups/{group['id']}", load("entra-dev-replace-group-display-name.json",
                                                         displayName="New Name"))
    assert response.status_code == 204
    assert scim.get(f"/Groups/{group['id']}").json()["displayName"] == "New Name"
    clash = scim.patch(f"/Groups/{group['id']}", load("entra-dev-replace-group-display-name.json",
                                                      displayName="taken name"))
    assert_scim_error(clash, 409, "uniqueness")
    duplicate = scim.post("/Groups", load("entra-dev-create-group.json", externalId="x", displayName="NEW NAME"))
    assert_scim_error(duplicate, 409, "uniqueness")


def test_deleting_a_user_removes_their_memberships(scim):
    group, a, b = entra_group(scim), scim.create_user(), scim.create_user()
    added = scim.patch(f"/Groups/{group['id']}", load("entra-dev-add-members.json", first=a["id"], second=b["id"]))
    assert added.status_code == 204, added.text
    assert members_of(scim, group["id"]) == sorted([a["id"], b["id"]])  # both were members before the delete
    assert scim.delete(f"/Users/{a['id']}").status_code == 204
    assert members_of(scim, group["id"]) == [b["id"]]


def test_group_delete_answers_204_and_frees_the_name(scim):
    group, a = entra_group(scim, "Leaving"), scim.create_user()
    added = scim.patch(f"/Groups/{group['id']}", load("entra-dev-add-members.json", first=a["id"], second=a["id"]))
    assert added.status_code == 204, added.text
    assert members_of(scim, group["id"]) == [a["id"]]  # the group had a member to take with it
    assert scim.delete(f"/Groups/{group['id']}").status_code == 204
    assert_scim_error(scim.get(f"/Groups/{group['id']}"), 404)
    assert entra_group(scim, "Leaving")["id"] != group["id"]
    assert scim.delete(f"/Users/{a['id']}").status_code == 204  # no membership left behind to trip over


# --- discovery ------------------------------------------------------------------------------------------------------

def test_schema_discovery_describes_exactly_users_with_the_enterprise_extension_and_groups(scim):
    schemas = {s["id"]: s for s in scim.get("/Schemas").json()["Resources"]}
    user = {a["name"] for a in schemas["urn:ietf:params:scim:schemas:core:2.0:User"]["attributes"]}
    assert {"userName", "active", "emails", "name", "displayName"} <= user
    assert "password" not in user and "groups" not in user  # not supported, so not described
    enterprise = {a["name"] for a in schemas[ENTERPRISE]["attributes"]}
    assert {"department", "employeeNumber", "manager"} <= enterprise
    types = {t["id"]: t for t in scim.get("/ResourceTypes").json()["Resources"]}
    assert types["User"]["schemaExtensions"] == [{"schema": ENTERPRISE, "required": False}]
    config = scim.get("/ServiceProviderConfig").json()
    assert config["patch"]["supported"] and config["filter"]["supported"] and config["etag"]["supported"]
    assert not config["bulk"]["supported"] and not config["sort"]["supported"]
    assert scim.get("/Schemas/" + ENTERPRISE).json()["name"] == "EnterpriseUser"
    assert scim.get("/ResourceTypes/Group").json()["endpoint"] == "/Groups"


@pytest.mark.parametrize("path", ["/Users", "/Groups", "/Schemas", "/ServiceProviderConfig", "/ResourceTypes"])
def test_every_endpoint_requires_the_tenants_secret_token(scim, new_tenant, path):
    other = new_tenant("Other Corp")
    other_token = other.scim_token()
    for headers in ({"Authorization": ""}, {"Authorization": "Bearer wrong"},
                    {"Authorization": f"Bearer {other_token}"}):
        response = scim.get(path, headers=headers)
        assert_scim_error(response, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_a_bad_token_is_401_before_any_404_or_400_and_learns_nothing(scim):
    user = scim.create_user()
    bad = {"Authorization": "Bearer not-the-token"}
    for response in (scim.get(f"/Users/{user['id']}", headers=bad), scim.get("/Users/" + "0" * 32, headers=bad),
                     scim.get("/Users?filter=" + quote("userName eq"), headers=bad),
                     scim.get("/Users?filter=" + quote(f'userName eq "{user["userName"]}"'), headers=bad),
                     scim.patch(f"/Users/{user['id']}", {"bogus": True}, headers=bad),
                     scim.request("POST", "/Users", data=b"{not json", headers=bad),
                     scim.patch("/Groups/" + "0" * 32, load("entra-dev-remove-member.json", memberId=user["id"]),
                                headers=bad),
                     scim.delete(f"/Users/{user['id']}", headers=bad)):
        body = assert_scim_error(response, 401)
        assert user["id"] not in response.text and user["userName"] not in body["detail"]
    assert scim.get(f"/Users/{user['id']}").status_code == 200
