"""Test support shared by the core, HTTP and browser tests (a test IdP that signs real SAML documents)."""
