"""Gatehouse's cores, free of Azure Functions types (`functions/` adapts them to HTTP, timers and queues).

The sign-in side: `tenancy` (a tenant and its SSO setup), `sign_in` (an employee's sign-in, sessions, mobile, the
end of sessions when trust ends), `saml` and `entra` (the protocols with Entra), `dev_idp` (Entra on one machine).
The directory side: `scim` (the protocol), `directory` (employees, roles, domains, the audit, the listing).
The product side: `oidc` (the OpenID Provider), `events` (the event log: the spine every reaction consumes),
`webhooks` (a consumer of the log). The platform: `storage` (Table Storage, nothing else touches it), `jobs`
(background work over queues), `platform` (settings, errors, outbound calls, rate limits, sealing, credentials,
queues, pages), `openapi` (the API's description), `bodies` (JSON bodies as pydantic models). README, "Layout",
maps each behaviour to its module.
"""
