"""Benchmark of the assertion consumer: median time to validate one Entra-shaped SAML response.

Runs, on the same signed responses in the same process:
  * Gatehouse `consume` (lxml + xmlsec bindings, in process);
  * pysaml2 `Saml2Client.parse_authn_request_response` with its default backend, the `xmlsec1` program
    (Debian package `xmlsec1`; installed here if missing and we are root, unless --no-install);
  * the same pysaml2 client with our in-process CryptoBackend swapped in (pysaml2's own overhead);
  * python3-saml (OneLogin) `OneLogin_Saml2_Response.is_valid`.
Each library must first accept the responses (sanity), otherwise its row says why it was skipped.

    .venv/bin/python bench/acs.py [--iterations N] [--no-install]
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from shared_code.saml.assertion_consumer import consume  # noqa: E402
from shared_code.saml.metadata import parse_idp_metadata  # noqa: E402
from shared_code.saml.service_provider import ServiceProvider  # noqa: E402
from tests.support.idp import BINDING_POST, TestIdp  # noqa: E402

SP = ServiceProvider("https://gatehouse.example/api/sso/acme/metadata", "https://gatehouse.example/api/sso/acme/acs")
TARGET_MS = 3.0


def timed(fn, responses: list[str], iterations: int) -> list[float]:
    samples = []
    for i in range(iterations):
        response = responses[i % len(responses)]
        start = time.perf_counter()
        fn(response)
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def ensure_xmlsec1(install: bool) -> str | None:
    found = shutil.which("xmlsec1")
    if found or not install:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        return None
    print("installing Debian xmlsec1 for the comparison (apt-get install -y xmlsec1) ...", flush=True)
    try:
        subprocess.run(["apt-get", "install", "-y", "-qq", "xmlsec1"], check=True, timeout=300,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    except (subprocess.SubprocessError, OSError):
        try:
            subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            subprocess.run(["apt-get", "install", "-y", "-qq", "xmlsec1"], check=True, timeout=300,
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except (subprocess.SubprocessError, OSError):
            return None
    return shutil.which("xmlsec1")


def pysaml2_client(idp: TestIdp, xmlsec1: str):
    from saml2 import config
    from saml2.client import Saml2Client

    conf = config.SPConfig()
    conf.load({
        "entityid": SP.entity_id,
        "xmlsec_binary": xmlsec1,
        "metadata": {"inline": [idp.metadata_xml().decode()]},
        "accepted_time_diff": 180,
        "service": {"sp": {
            "endpoints": {"assertion_consumer_service": [(SP.acs_url, BINDING_POST)]},
            "allow_unsolicited": True,
            "want_assertions_signed": True,
            "want_response_signed": False,
            "only_use_keys_in_metadata": True,
        }},
    })
    return Saml2Client(conf)


def python3_saml_validator(idp: TestIdp):
    from onelogin.saml2.response import OneLogin_Saml2_Response
    from onelogin.saml2.settings import OneLogin_Saml2_Settings

    settings = OneLogin_Saml2_Settings({
        "strict": True,
        "sp": {"entityId": SP.entity_id, "assertionConsumerService": {"url": SP.acs_url, "binding": BINDING_POST}},
        "idp": {"entityId": idp.entity_id, "singleSignOnService": {"url": idp.sso_url},
                "x509cert": idp.identity.cert_b64},
        "security": {"wantAssertionsSigned": True, "wantMessagesSigned": False, "rejectDeprecatedAlgorithm": True},
    }, sp_validation_only=True)
    request = {"https": "on", "http_host": "gatehouse.example", "script_name": "/api/sso/acme/acs",
               "get_data": {}, "post_data": {}}

    def validate(response: str) -> None:
        parsed = OneLogin_Saml2_Response(settings, response)
        parsed.is_valid(request, raise_exceptions=True)
        parsed.get_nameid()

    return validate


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=400)
    parser.add_argument("--no-install", action="store_true", help="do not apt-get install xmlsec1 when missing")
    args = parser.parse_args()

    idp = TestIdp(key_label="bench-idp")
    metadata = parse_idp_metadata(idp.metadata_xml(), dt.datetime.now(dt.timezone.utc))
    responses = [idp.response(SP.entity_id, SP.acs_url, f"user{i}@contoso.example") for i in range(20)]
    print(f"{len(responses)} Entra-shaped responses (assertion signed, RSA-SHA256, ~{len(responses[0]) * 3 // 4} bytes "
          f"of XML), {args.iterations} validations for in-process validators\n")

    rows: list[tuple[str, float | None, str]] = []
    ours = timed(lambda r: consume(r, SP, metadata), responses, args.iterations)
    ours_median = statistics.median(ours)
    rows.append(("gatehouse consume (lxml + xmlsec bindings)", ours_median,
                 f"p95 {sorted(ours)[int(len(ours) * 0.95)]:.3f} ms"))

    xmlsec1 = ensure_xmlsec1(not args.no_install)
    if not xmlsec1:
        rows.append(("pysaml2 + xmlsec1 program (default backend)", None, "skipped: xmlsec1 not installed"))
        rows.append(("pysaml2 + our in-process backend", None, "skipped: pysaml2's client needs xmlsec1 to start"))
    else:
        try:
            from saml2 import BINDING_HTTP_POST

            from shared_code.saml.pysaml2_backend import InProcessXmlsecBackend

            client = pysaml2_client(idp, xmlsec1)

            def pysaml2_validate(response: str) -> None:
                result = client.parse_authn_request_response(response, BINDING_HTTP_POST)
                assert result is not None and result.name_id.text.endswith("@contoso.example")

            slow_iterations = max(20, args.iterations // 10)
            pysaml2_validate(responses[0])
            samples = timed(pysaml2_validate, responses, slow_iterations)
            rows.append(("pysaml2 + xmlsec1 program (default backend)", statistics.median(samples),
                         f"{slow_iterations} runs"))
            client.sec.crypto = InProcessXmlsecBackend(metadata.certificates)
            pysaml2_validate(responses[0])
            samples = timed(pysaml2_validate, responses, slow_iterations)
            rows.append(("pysaml2 + our in-process backend", statistics.median(samples), f"{slow_iterations} runs"))
        except Exception as exc:  # report, don't hide: a comparison that cannot run says why
            rows.append(("pysaml2", None, f"skipped: {type(exc).__name__}: {str(exc)[:120]}"))

    try:
        validate = python3_saml_validator(idp)
        validate(responses[0])
        samples = timed(validate, responses, args.iterations)
        rows.append(("python3-saml (OneLogin)", statistics.median(samples), ""))
    except ImportError as exc:
        rows.append(("python3-saml (OneLogin)", None, f"skipped: not installed ({exc}); pip install python3-saml"))
    except Exception as exc:
        rows.append(("python3-saml (OneLogin)", None, f"skipped: {type(exc).__name__}: {str(exc)[:120]}"))

    width = max(len(name) for name, _, _ in rows)
    print(f"{'validator'.ljust(width)}  median ms   × ours   note")
    for name, median, note in rows:
        if median is None:
            print(f"{name.ljust(width)}  {'-':>9}  {'-':>7}   {note}")
        else:
            print(f"{name.ljust(width)}  {median:9.3f}  {median / ours_median:6.1f}×   {note}")
    verdict = "OK" if ours_median < TARGET_MS else "OVER"
    print(f"\ntarget: under {TARGET_MS} ms per validation for gatehouse consume: {verdict} ({ours_median:.3f} ms)")
    return 0 if ours_median < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
