"""Bodies of the tenant admin's employee endpoints (`shared_code/directory/employees.py`). The address rules stay in
`employees.valid_email` (called from here)."""
from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from shared_code.directory import employees
from shared_code.bodies import Answer, Body, core_rule
from shared_code.bodies.directory import DirectoryEmployee


class EmailChange(Body):
    """`PATCH …/employees/{id}`: only the work email can be fixed here; the rest comes from Entra."""

    messages = {
        ":extra_forbidden": "Only email can be changed here ('{field}' cannot): names, departments and the rest "
                            "come from Microsoft Entra.",
        "email:missing": 'email is required, such as {{"email": "name@yourcompany.com"}}.',
        "email": "email must be an email address such as name@yourcompany.com.",
    }

    # Surrounding blanks are allowed (the core strips them); only the ones every regex dialect and str.strip()
    # agree on, so a schema-valid address is never refused as malformed.
    email: str = Field(min_length=3, max_length=254, pattern=r"^[ \t\r\n]*[^\s@]+@[^\s@]+[ \t\r\n]*$",
                       description="Surrounding spaces are removed first.")

    @field_validator("email", mode="before")
    @classmethod
    def _address(cls, value: Any) -> Any:
        return core_rule(employees.valid_email, value)


class Employee(Answer, DirectoryEmployee):
    """One employee as the tenant admin sees them: the whole employee (as events and the directory listing show
    them), with the domain audit's verdict on their email."""

    why_outside: str | None
    why_not_admin: str = Field("", description="Present when the employee's Entra groups map to the admin role "
                                               "but a rehire withheld it: a tenant admin must grant it again.")
    warning: str = Field("", description="Present when Entra provisions this employee: it will overwrite an email "
                                         "fixed here unless it is changed in Entra too.")
