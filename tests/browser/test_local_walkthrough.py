"""The README's local walk-through, as a newcomer runs it on a fresh clone: `make run` in one terminal, `make demo`
in another, then the curl steps against the development IdP and a browser (headless Chromium).

In a copy of the project (tests/test_make_run.py's: the shared venv and node_modules linked in, free ports):
`make run` serves the app with the sample settings (DEV_IDP=true); `make demo` creates a tenant, connects it to
the development IdP by its metadata URL, simulates Entra's provisioning and starts the demo product, printing the
URLs. The README's curl steps connect a second tenant the same way and run `python -m tools.simulate_entra`.
Then the browser: the demo product → Gatehouse → the development IdP's page (pick an employee) → the ACS → the
product shows the ID token's claims and the webhook events arrive; sign out through Gatehouse and the IdP.
Screenshots of the development IdP's page and the demo product land in test-output/walkthrough/ (the README's
are copies of them in docs/screenshots/)."""
from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
import time

import pytest
import requests

from tests.conftest import ROOT, free_port
from tests.test_make_run import _processes_under, _project_copy

pytestmark = pytest.mark.browser


def readme_walkthrough() -> str:
    """The bash block between the README's `<!-- local-walkthrough -->` markers."""
    text = (ROOT / "README.md").read_text()
    section = text.split("<!-- local-walkthrough -->", 1)[1].split("<!-- /local-walkthrough -->", 1)[0]
    return section.split("```bash\n", 1)[1].rsplit("```", 1)[0]


def _read_until(process: subprocess.Popen, marker: str, log: list[str], timeout: float) -> None:
    """Read the process's output into `log` (one entry per line) until a line contains `marker`. Reads the pipe
    with os.read: a buffered readline would keep lines that select() then no longer sees."""
    deadline, pending = time.monotonic() + timeout, b""
    descriptor = process.stdout.fileno()
    while time.monotonic() < deadline:
        ready, _, _ = select.select([descriptor], [], [], 0.5)
        chunk = os.read(descriptor, 65536) if ready else b""
        if ready and not chunk:
            process.wait(timeout=30)
            raise AssertionError(f"exited with {process.returncode}:\n" + "\n".join(log) + pending.decode())
        pending += chunk
        *lines, pending = pending.split(b"\n")
        log.extend(line.decode(errors="replace") for line in lines)
        if any(marker in line for line in log):
            return
    raise AssertionError(f"no {marker!r} within {timeout}s:\n" + "\n".join(log))


def _stop(process: subprocess.Popen | None) -> None:
    if process is not None and process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)  # Ctrl-C, as the README says
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _api_ready(base: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            requests.get(f"{base}/api/openapi.json", timeout=5)
            return
        except requests.ConnectionError:
            time.sleep(0.3)
    raise AssertionError(f"make run did not answer on {base}")


def test_the_readme_walkthrough_on_make_run_with_the_development_idp(tmp_path, chromium, test_output):
    copy = _project_copy(tmp_path)
    values = json.loads((copy / "local.settings.json").read_text())["Values"]
    assert values["DEV_IDP"] == "true" and values["ALLOW_PRIVATE_METADATA_URLS"] == "true"
    port, demo_port = free_port(), free_port()
    base = f"http://127.0.0.1:{port}"
    env = {name: value for name, value in os.environ.items() if name not in values and name != "PORT"}
    shots = test_output / "walkthrough"
    shots.mkdir(parents=True, exist_ok=True)
    run = demo = None
    demo_log: list[str] = []
    try:
        # Terminal 1: make run.
        run = subprocess.Popen(["make", "run", f"PORT={port}"], cwd=copy, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
        _api_ready(base)

        # Terminal 2: make demo, until it prints the URLs to open.
        demo = subprocess.Popen(["make", "demo", f"PORT={port}", f"DEMO_PORT={demo_port}"], cwd=copy, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
        _read_until(demo, "Press Ctrl-C", demo_log, timeout=180)
        printed = "\n".join(demo_log)
        product_url = f"http://127.0.0.1:{demo_port}"
        assert f"{product_url}/" in printed, printed
        wizard_url = re.search(r"(http://\S+/api/setup/\S+#t=\S+)", printed).group(1)
        tenant = re.search(r"\bT=(\S+)", printed).group(1)
        assert "POST /Users → 201" in printed and "PATCH /Groups/" in printed  # Entra's requests, simulated

        # The README's curl block, run as it stands (only BASE names this run's port): a second tenant
        # connected to the development IdP by its metadata URL, Entra's provisioning simulated, its events.
        script = readme_walkthrough().replace("BASE=http://127.0.0.1:7071", f"BASE={base}", 1)
        assert f"OP={values['PLATFORM_ADMIN_KEY']}" in script
        curl = subprocess.run(["bash", "-euo", "pipefail", "-c", script], cwd=copy, capture_output=True, text=True,
                              timeout=180)
        assert curl.returncode == 0, curl.stdout + curl.stderr
        output = curl.stdout
        assert '"connection":"established"' in output.replace(" ", ""), output
        summary = json.loads(output[output.index('{\n  "users"'):output.index("\n}\n") + 2])
        assert summary["dismissed"] and summary["rehired"] and len(summary["users"]) == 5
        for event_type in ("employee.created", "employee.dismissed", "employee.rehired", "group.created"):
            assert f'"type":"{event_type}"' in output.replace(" ", ""), event_type
        self_check_url = output.strip().splitlines()[-1]
        assert self_check_url.startswith(f"{base}/api/sso/"), output

        # Step 5 in a browser: the self-check through the development IdP's page.
        context = chromium.new_context(viewport={"width": 1100, "height": 800})
        page = context.new_page()
        page.goto(self_check_url)
        page.wait_for_selector("#employees")
        page.click(f'button[data-upn="{summary["rehired"]}"]')
        page.wait_for_selector("h1.ok")
        assert page.text_content("h1") == "The test was successful"
        context.close()

        # The browser: sign in on the demo product through the development IdP's page.
        context = chromium.new_context(viewport={"width": 1100, "height": 800})
        page = context.new_page()
        page.goto(f"{product_url}/")
        assert page.text_content("#who") == "Nobody is signed in."
        page.click("#sign-in")
        page.wait_for_selector("#employees")
        assert "for development only" in page.text_content("#dev-banner")
        page.screenshot(path=str(shots / "dev-idp-sign-in.png"))
        page.click('button[data-upn="adele.vance@contoso.example"]')
        page.wait_for_url(f"{product_url}/")
        assert page.text_content("#who") == "adele.vance@contoso.example"
        claims = page.text_content("#claims")
        assert "iss" in claims and f"/api/oidc/{tenant}" in claims and "sid" in claims

        # The webhooks arrive (delivered from the Storage Queue by make run's host): the provisioning's events.
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            received = requests.get(f"{product_url}/events.json", timeout=10).json()["events"]
            if {"employee.created", "employee.dismissed", "employee.rehired"} <= {e["type"] for e in received}:
                break
            time.sleep(0.5)
        assert {"employee.created", "employee.dismissed", "employee.rehired"} <= {e["type"] for e in received}
        assert all(e["tenant"] == tenant for e in received)
        page.reload()
        assert "employee.dismissed" in page.text_content("#events")
        page.screenshot(path=str(shots / "demo-product-signed-in.png"), full_page=True)

        # Sign out: the product → Gatehouse's end_session → the IdP's single logout → back to the product.
        page.click("#sign-out")
        page.wait_for_url(re.compile(re.escape(f"{product_url}/signed-out")))
        page.goto(f"{product_url}/")
        assert page.text_content("#who") == "Nobody is signed in."

        # A login_hint goes through the product's request and Gatehouse to the IdP: no page (headless CI).
        page.goto(f"{product_url}/login?login_hint=megan.bowen@contoso.example")
        page.wait_for_url(f"{product_url}/")
        assert page.text_content("#who") == "megan.bowen@contoso.example"

        # The wizard link from make demo opens the tenant's setup, connected to the development IdP.
        page.goto(wizard_url)
        page.wait_for_load_state("networkidle")
        assert tenant in page.content()
        context.close()
    finally:
        _stop(demo)
        _stop(run)
        for pid in _processes_under(copy):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not _processes_under(copy)
