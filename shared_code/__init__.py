"""Gatehouse cores: SAML, SCIM, tenants, domain audit, mobile config and storage. No Azure Functions types here."""
