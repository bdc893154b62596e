"""Microsoft Entra's provisioning job, simulated: sends one Gatehouse tenant a directory over SCIM the way Entra's
provisioning service does (`../shared/reference/entra-provisioning.md`), so a tenant can be tried without Entra.

    python -m tools.simulate_entra --base http://127.0.0.1:7071 --tenant acme-1a2b3c --token gh_scim_…

What one run sends, in Entra's order and request shapes (Entra's default dialect, no `aadOptscim062020` flag):
1. Test Connection: `GET /Users?filter=userName eq "<random GUID>"` (must be an empty ListResponse);
2. each user in scope: `GET /Users?filter=userName eq "<UPN>"`, then `POST /Users` with the full profile of the
   default attribute mappings plus objectId → externalId (0 hits), or the differences as `PATCH` (1 hit);
   the manager is linked by a separate PATCH (a bare id string, as Entra sends it);
3. each group: `GET /Groups?excludedAttributes=members&filter=displayName eq "…"`, `POST /Groups` with no members
   and Entra's group schema, then `PATCH` members `Add` with `[{"$ref": null, "value": id}]`;
4. an update (a job title and department changed in Entra: `Replace` ops with URN and filtered paths);
5. a dismissal (user disabled in Entra: `Replace active "False"`) and a rehire (`Replace active "True"`).
Running it again is safe: users and groups are matched first, as Entra matches them.

`EntraProvisioning` is the client itself; the tests use it too (tests/audit/provisioning.py), so the requests
the tests send Gatehouse and the ones a newcomer sends are the same.
"""
from __future__ import annotations

import argparse
import json
import sys
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

import requests

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
ENTERPRISE_USER = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTRA_GROUP = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
SCIM_JSON = "application/scim+json"


class ProvisioningError(Exception):
    """Gatehouse refused a request Entra would have sent; the message says which and why."""


@dataclass(frozen=True)
class Person:
    """One user in the simulated Entra directory (what the default attribute mappings read)."""

    given_name: str
    surname: str
    upn: str
    job_title: str
    department: str
    employee_id: str
    object_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    mobile: str | None = None
    office: str | None = None
    mail: str | None = None  # Entra's `mail`; the UPN when absent

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.surname}"

    def scim_user(self) -> dict[str, Any]:
        """POST /Users as Entra sends it: every mapped attribute, `meta.resourceType`, `roles: []`."""
        body: dict[str, Any] = {
            "schemas": [CORE_USER, ENTERPRISE_USER],
            "externalId": self.object_id,
            "userName": self.upn,
            "active": True,
            "displayName": self.display_name,
            "title": self.job_title,
            "emails": [{"primary": True, "type": "work", "value": self.mail or self.upn}],
            "meta": {"resourceType": "User"},
            "name": {"formatted": self.display_name, "familyName": self.surname, "givenName": self.given_name},
            "preferredLanguage": "en-US",
            "roles": [],
            ENTERPRISE_USER: {"department": self.department, "employeeNumber": self.employee_id},
        }
        if self.mobile:
            body["phoneNumbers"] = [{"type": "mobile", "value": self.mobile}]
        if self.office:
            body["addresses"] = [{"type": "work", "formatted": self.office}]
        return body


class EntraProvisioning:
    """Entra's SCIM client for one tenant (Tenant URL + Secret Token). Each call returns Gatehouse's response;
    `log` hears one line per request ("POST /Users → 201")."""

    def __init__(self, scim_url: str, token: str, *, timeout: float = 30,
                 log: Callable[[str], None] | None = None):
        self.scim_url = scim_url.rstrip("/")
        self.timeout = timeout
        self.log = log or (lambda line: None)
        self.http = requests.Session()
        self.http.trust_env = False  # loopback: no proxy
        self.http.headers.update({"Authorization": f"Bearer {token}", "Accept": SCIM_JSON,
                                  "Content-Type": SCIM_JSON, "User-Agent": "Simulated Entra provisioning"})

    # ---- the wire

    def request(self, method: str, path: str, body: Any = None, params: dict | None = None) -> requests.Response:
        response = self.http.request(method, self.scim_url + path, json=body, params=params, timeout=self.timeout)
        shown = path + ("?" + "&".join(f"{k}={v}" for k, v in params.items()) if params else "")
        self.log(f"{method} {shown} → {response.status_code}")
        return response

    def _expect(self, response: requests.Response, *statuses: int) -> requests.Response:
        if response.status_code not in statuses:
            raise ProvisioningError(f"{response.request.method} {response.url} answered {response.status_code}: "
                                    f"{response.text[:500]}")
        return response

    # ---- users

    def test_connection(self) -> None:
        """Entra's Test Connection: a filter for a user that cannot exist must be an empty ListResponse."""
        found = self._expect(self.request("GET", "/Users", params={"filter": f'userName eq "{uuid.uuid4()}"'}), 200)
        if found.json().get("totalResults") != 0:
            raise ProvisioningError("Test Connection expects an empty ListResponse for a random userName.")

    def find_user(self, user_name: str) -> dict | None:
        found = self._expect(self.request("GET", "/Users", params={"filter": f'userName eq "{user_name}"'}), 200)
        resources = found.json().get("Resources") or []
        return resources[0] if resources else None

    def create_user(self, body: dict) -> requests.Response:
        return self.request("POST", "/Users", body)

    def get_user(self, user_id: str) -> requests.Response:
        return self.request("GET", f"/Users/{user_id}")

    def patch_user(self, user_id: str, *operations: dict) -> requests.Response:
        return self.request("PATCH", f"/Users/{user_id}", {"schemas": [PATCH_OP], "Operations": list(operations)})

    def set_active(self, user_id: str, active: bool) -> requests.Response:
        """Entra's default dismissal/rehire: Replace `active` with the *string* "False"/"True"."""
        return self.patch_user(user_id, {"op": "Replace", "path": "active", "value": "True" if active else "False"})

    def set_manager(self, user_id: str, manager_id: str) -> requests.Response:
        return self.patch_user(user_id, {"op": "Add", "path": f"{ENTERPRISE_USER}:manager", "value": manager_id})

    def sync_user(self, person: Person) -> dict:
        """Match by userName, then create, or PATCH what differs (as an incremental cycle does)."""
        existing = self.find_user(person.upn)
        if existing is None:
            return self._expect(self.create_user(person.scim_user()), 201).json()
        operations = []
        if existing.get("displayName") != person.display_name:
            operations.append({"op": "Replace", "path": "displayName", "value": person.display_name})
        if existing.get("title") != person.job_title:
            operations.append({"op": "Replace", "path": "title", "value": person.job_title})
        if (existing.get(ENTERPRISE_USER) or {}).get("department") != person.department:
            operations.append({"op": "Replace", "path": f"{ENTERPRISE_USER}:department", "value": person.department})
        if existing.get("active") is not True:
            operations.append({"op": "Replace", "path": "active", "value": "True"})
        if operations:
            self._expect(self.patch_user(existing["id"], *operations), 200, 204)
        return existing

    # ---- groups

    def find_group(self, display_name: str) -> dict | None:
        found = self._expect(self.request("GET", "/Groups", params={
            "excludedAttributes": "members", "filter": f'displayName eq "{display_name}"'}), 200)
        resources = found.json().get("Resources") or []
        return resources[0] if resources else None

    def create_group(self, display_name: str, object_id: str | None = None) -> requests.Response:
        return self.request("POST", "/Groups", {
            "schemas": [CORE_GROUP, ENTRA_GROUP], "externalId": object_id or str(uuid.uuid4()),
            "displayName": display_name, "members": [], "meta": {"resourceType": "Group"}})

    def add_members(self, group_id: str, user_ids: list[str]) -> requests.Response:
        return self.request("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH_OP], "Operations": [
            {"op": "Add", "path": "members", "value": [{"$ref": None, "value": uid} for uid in user_ids]}]})

    def remove_members(self, group_id: str, user_ids: list[str]) -> requests.Response:
        return self.request("PATCH", f"/Groups/{group_id}", {"schemas": [PATCH_OP], "Operations": [
            {"op": "Remove", "path": "members", "value": [{"$ref": None, "value": uid} for uid in user_ids]}]})

    def sync_group(self, display_name: str, user_ids: list[str]) -> dict:
        group = self.find_group(display_name) or self._expect(self.create_group(display_name), 201).json()
        if user_ids:
            self._expect(self.add_members(group["id"], user_ids), 200, 204)
        return group


# ---- the sample directory ------------------------------------------------------------------------------------

def sample_directory(domain: str) -> tuple[list[Person], dict[str, list[str]]]:
    """A small company (Microsoft's demo tenant names): people, and groups by the UPNs of their members."""
    def person(given: str, surname: str, title: str, department: str, number: str, **more) -> Person:
        return Person(given, surname, f"{given.lower()}.{surname.lower()}@{domain}", title, department, number,
                      **more)

    people = [
        person("Adele", "Vance", "Retail Manager", "Retail", "E1001", mobile="+1 425 555 0101", office="18/2111"),
        person("Alex", "Wilber", "Marketing Assistant", "Marketing", "E1002", office="131/1104"),
        person("Megan", "Bowen", "Marketing Manager", "Marketing", "E1003", mobile="+1 412 555 0109"),
        person("Lee", "Gu", "Director", "Manufacturing", "E1004", office="23/3101"),
        person("Nestor", "Wilke", "Director", "Operations", "E1005"),
    ]
    groups = {
        "Marketing": [people[1].upn, people[2].upn],
        "Leadership": [people[3].upn, people[4].upn, people[2].upn],
    }
    return people, groups


@dataclass
class Report:
    users: dict[str, str] = field(default_factory=dict)  # UPN → SCIM id
    groups: dict[str, str] = field(default_factory=dict)  # display name → SCIM id
    updated: str = ""
    dismissed: str = ""
    rehired: str = ""


def run(client: EntraProvisioning, domain: str) -> Report:
    """One provisioning cycle of the sample directory, then an update, a dismissal and a rehire."""
    people, groups = sample_directory(domain)
    report = Report()
    client.test_connection()
    for person in people:
        report.users[person.upn] = client.sync_user(person)["id"]
    adele, alex, megan, lee, nestor = (report.users[p.upn] for p in people)
    for report_to in (alex, megan):  # manager links come in a PATCH of their own
        client._expect(client.set_manager(report_to, adele), 200, 204)
    for name, upns in groups.items():
        report.groups[name] = client.sync_group(name, [report.users[upn] for upn in upns])["id"]
    # An update: Megan is promoted in Entra (title and department; filtered and URN paths, one PATCH).
    megan_person = people[2]
    client._expect(client.patch_user(megan, {"op": "Replace", "path": "title", "value": "Head of Marketing"},
                                     {"op": "Replace", "path": f"{ENTERPRISE_USER}:department",
                                      "value": "Marketing & Communications"},
                                     {"op": "Replace", "path": 'phoneNumbers[type eq "mobile"].value',
                                      "value": "+1 412 555 0199"}), 200, 204)
    report.updated = megan_person.upn
    # A dismissal: Alex leaves (disabled in Entra); a rehire: Nestor left last cycle and is back.
    client._expect(client.set_active(alex, False), 200, 204)
    report.dismissed = people[1].upn
    client._expect(client.set_active(nestor, False), 200, 204)
    client._expect(client.set_active(nestor, True), 200, 204)
    report.rehired = people[4].upn
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", default="http://127.0.0.1:7071", help="Gatehouse's base URL (PUBLIC_BASE_URL)")
    parser.add_argument("--tenant", required=True, help="the tenant ID")
    parser.add_argument("--token", required=True, help="the tenant's SCIM secret token (POST …/scim/token)")
    parser.add_argument("--domain", default="contoso.example", help="the directory's UPN domain")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    args = parser.parse_args(argv)
    client = EntraProvisioning(f"{args.base.rstrip('/')}/api/scim/{args.tenant}/v2", args.token,
                               log=None if args.quiet else lambda line: print("  " + line, flush=True))
    try:
        report = run(client, args.domain)
    except (ProvisioningError, requests.RequestException) as error:
        print(f"Provisioning failed: {error}", file=sys.stderr)
        return 1
    print(json.dumps({"users": report.users, "groups": report.groups, "updated": report.updated,
                      "dismissed": report.dismissed, "rehired": report.rehired}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
