"""The platform pieces every area stands on: settings, errors, outbound calls (one SSRF policy), rate
limits, sealed tokens, hashed credentials, queues and small HTML pages.
(Storage has its own package, `shared_code/storage`.)
"""
