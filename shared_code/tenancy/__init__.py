"""A tenant and its SSO setup: creation by the operator, the admin key and SCIM token, the setup wizard's
access, the connection to the identity provider (Entra's App Federation Metadata) and its refresh.
"""
