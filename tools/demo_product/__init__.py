"""A demo SaaS product for trying Gatehouse on one machine (`make demo`): a small web app on 127.0.0.1 that
registers itself as an OpenID Connect client of one tenant (with the operator key), signs employees in through the
tenant (authlib's OIDC client: PKCE, state, nonce, RFC 9207 `iss`; every endpoint from discovery), shows the ID
token's claims, receives the tenant's webhooks (Standard Webhooks signatures verified with `standardwebhooks`),
lists the events, hears back-channel logout and signs out through Gatehouse.

The relying party (OIDC client, back-channel logout receiver, the HTTP server) is relying_party.py; the tests'
sample product (tests/support/sample_product.py) builds on it too. app.py adds pages for a person, the webhook
receiver and registration.

Routes:
  /                      the product's home: who is signed in (the ID token's claims) and the events received
  /login[?login_hint=]   starts the authorization request (login_hint goes through Gatehouse to the IdP)
  /start?iss=…           initiate_login_uri: a sign-in started from Entra's My Apps (OIDC Core §4)
  /callback              code → tokens (client_secret_basic); the ID token verified by authlib
  /logout                RP-initiated logout through Gatehouse (and the IdP's single logout)
  /signed-out            where Gatehouse returns after logout
  /backchannel-logout    OIDC Back-Channel Logout 1.0 logout tokens
  /webhooks              the tenant's webhook deliveries (POST)
  /events.json           the events received so far, oldest first (for curl and tests)
"""
from tools.demo_product.app import DemoProduct

__all__ = ["DemoProduct"]
