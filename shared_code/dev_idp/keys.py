"""The development IdP's signing key: RSA-2048, derived from SESSION_SIGNING_KEY, never stored.

Why derived and not generated and stored: the development IdP must keep its key across restarts of `make run`
(a tenant connected to its metadata keeps the certificate it read; a new key would break every sign-in until
"Check now" again), and each deployment must have its own key (so one developer's IdP cannot sign in at
another's Gatehouse). A key derived from the deployment's own secret gives both without a row, a blob, a
migration or a private key at rest. It is for development only: the development IdP exists only with
DEV_IDP=true on an http:// PUBLIC_BASE_URL (`shared_code.dev_idp.enabled`), where SESSION_SIGNING_KEY is a
local value; whoever knows that value can already forge sessions. (The public key is a function of the secret,
so a guessable SESSION_SIGNING_KEY can be found from the metadata: another reason it is never on in production.)

The derivation: an HMAC-SHA-512 stream keyed with HKDF(SESSION_SIGNING_KEY, info="gatehouse dev-idp rsa v1")
draws candidate primes, tested by trial division and 8 Miller-Rabin rounds (FIPS 186-4 table C.3 asks 5 for
random 1024-bit candidates, error below 2^-100); p and q are 1024-bit with the top two bits set, so n has exactly
2048 bits; e = 65537. A fraction of a second, once per process: `warm_up()` does it in the background when the
development IdP's routes are registered, so the first sign-in does not wait for it (nor does a "Check now" whose
fetch of the metadata has a deadline).
The certificate is fixed by the key and the year: serial from the stream, valid from January 1st of the current
year for three years, so it is the same document on every restart (and rolls over once a year, as Entra's do).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import threading
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shared_code.dev_idp.documents import SigningIdentity, self_signed_identity

CERTIFICATE_SUBJECT = "Gatehouse development IdP (for development only)"
_E = 65537
_SMALL_PRIMES: tuple[int, ...] = tuple(p for p in range(3, 2000, 2) if all(p % d for d in range(3, int(p ** 0.5) + 1, 2)))


class _Stream:
    """Deterministic bytes: HMAC-SHA-512(seed, counter) blocks."""

    def __init__(self, seed: bytes):
        self._seed, self._counter = seed, 0

    def read(self, n: int) -> bytes:
        out = b""
        while len(out) < n:
            self._counter += 1
            out += hmac.new(self._seed, self._counter.to_bytes(8, "big"), hashlib.sha512).digest()
        return out[:n]


def _probably_prime(n: int, stream: _Stream, rounds: int = 8) -> bool:
    for p in _SMALL_PRIMES:
        if n % p == 0:
            return n == p
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    for _ in range(rounds):
        a = 2 + int.from_bytes(stream.read(128), "big") % (n - 3)
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def _prime(stream: _Stream, bits: int) -> int:
    while True:
        candidate = int.from_bytes(stream.read(bits // 8), "big") | (3 << (bits - 2)) | 1
        if (candidate - 1) % _E and _probably_prime(candidate, stream):
            return candidate


def _seed(secret: str, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=64, salt=b"gatehouse", info=info).derive(secret.encode("utf-8"))


def derive_private_key(secret: str) -> rsa.RSAPrivateKey:
    """The RSA-2048 key of this secret: the same secret gives the same key, another secret another key."""
    stream = _Stream(_seed(secret, b"gatehouse dev-idp rsa v1"))
    p = _prime(stream, 1024)
    q = _prime(stream, 1024)
    while q == p:
        q = _prime(stream, 1024)
    d = pow(_E, -1, (p - 1) * (q - 1))
    numbers = rsa.RSAPrivateNumbers(p, q, d, rsa.rsa_crt_dmp1(d, p), rsa.rsa_crt_dmq1(d, q), rsa.rsa_crt_iqmp(p, q),
                                    rsa.RSAPublicNumbers(_E, p * q))
    return numbers.private_key()


_derivation = threading.Lock()  # one derivation at a time: a request arriving during the warm-up waits for it


def signing_identity(secret: str, year: int) -> SigningIdentity:
    """The key and its certificate for `secret`, valid from January 1st of `year` for three years."""
    with _derivation:
        return _signing_identity(secret, year)


def warm_up(secret: str) -> threading.Thread:
    """Derive this year's key in a background thread (the development IdP's first request then finds it)."""
    year = dt.datetime.now(dt.timezone.utc).year
    thread = threading.Thread(target=signing_identity, args=(secret, year), name="dev-idp-key", daemon=True)
    thread.start()
    return thread


@lru_cache(maxsize=4)
def _signing_identity(secret: str, year: int) -> SigningIdentity:
    key = derive_private_key(secret)
    serial = int.from_bytes(_seed(secret, b"gatehouse dev-idp serial v1")[:16], "big") >> 1
    start = dt.datetime(year, 1, 1, tzinfo=dt.timezone.utc)
    return self_signed_identity(key, subject=CERTIFICATE_SUBJECT, not_before=start,
                                not_after=start.replace(year=year + 3), serial_number=serial or 1)
