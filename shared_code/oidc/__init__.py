"""Gatehouse as each tenant's OpenID Provider (OpenID Connect Core 1.0 on OAuth 2.0, RFC 6749): the product signs
employees in with any OIDC client library; behind the authorization endpoint is the tenant's SAML sign-in."""
