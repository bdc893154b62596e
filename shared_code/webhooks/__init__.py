"""Webhooks (Standard Webhooks 1.0) for the product that embeds Gatehouse: every event of the tenant's event
log (shared_code/events/) is POSTed to the tenant's endpoint, in sequence order, at least once.

- `endpoint.py`: the endpoint (PUT/GET/DELETE), its `whsec_` secret stored encrypted, the rotation that signs
  with both secrets for 24 h;
- `delivery.py`: one tenant's delivery run (a lease per tenant keeps the order; backoff, Retry-After, 410), and
  the test delivery;
- `queue.py`: the Storage Queue `webhook-deliveries` that wakes a tenant's log consumers (the delivery run, the
  end-of-trust reactions of shared_code/sign_in/trust.py), and the notifier that puts a
  message there after a commit, off the request path (the sweep timer covers a message that never came).
"""
