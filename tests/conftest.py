"""Shared fixtures: a real Azurite on a free port, the app served by the local host over real HTTP, tenants.

Every test session starts its own Azurite (stopped by its PID at the end) and one local host process serving
`function_app` against it. Tests that call cores directly use the same Azurite through the same settings.
"""
from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

import pytest
import requests

from tests.support import oidc_keys

ROOT = Path(__file__).resolve().parent.parent
AZURITE = ROOT / "node_modules" / ".bin" / "azurite-table"
AZURITE_QUEUE = ROOT / "node_modules" / ".bin" / "azurite-queue"
OPERATOR_KEY = "test-operator-key-" + uuid.uuid4().hex
DEV_ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 30.0, process: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"process exited early with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on port {port} after {timeout}s")


def stop_process_group(process: subprocess.Popen | None, first_signal: int) -> None:
    """Stop a child we started in its own session: `first_signal`, then SIGKILL after ten seconds."""
    if process is None or process.poll() is not None:
        return
    os.killpg(process.pid, first_signal)
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def check_consistency(settings: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess:
    """`tools.check_consistency --all` against the store these settings name; its last line says how many
    problems it found ("0 problems")."""
    return subprocess.run([sys.executable, "-m", "tools.check_consistency", "--all"], cwd=ROOT,
                          env={**os.environ, **settings}, capture_output=True, text=True, timeout=timeout)


class Azurite:
    """A real Azurite (Table and Queue services) on loopback; `stop()`/`start()` simulate a storage outage.
    `accounts` (name → base64 key) adds storage accounts next to devstoreaccount1 (AZURITE_ACCOUNTS)."""

    def __init__(self, location: Path, accounts: dict[str, str] | None = None):
        self.port = free_port()
        self.queue_port = free_port()
        self.location = location
        self.accounts = dict(accounts or {})
        self.process: subprocess.Popen | None = None
        self.queue_process: subprocess.Popen | None = None

    @property
    def connection_string(self) -> str:
        return self.connection_string_for("devstoreaccount1", DEV_ACCOUNT_KEY)

    def connection_string_for(self, account: str, key: str) -> str:
        """The Table service connection string of one of this Azurite's accounts."""
        return (f"DefaultEndpointsProtocol=http;AccountName={account};"
                f"AccountKey={key};TableEndpoint=http://127.0.0.1:{self.port}/{account};")

    def _env(self) -> dict[str, str] | None:
        if not self.accounts:
            return None
        listed = {"devstoreaccount1": DEV_ACCOUNT_KEY, **self.accounts}  # custom accounts replace the default one
        return {**os.environ, "AZURITE_ACCOUNTS": ";".join(f"{name}:{key}" for name, key in listed.items())}

    @property
    def queue_connection_string(self) -> str:
        return ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                f"AccountKey={DEV_ACCOUNT_KEY};QueueEndpoint=http://127.0.0.1:{self.queue_port}/devstoreaccount1;")

    def start(self) -> None:
        if not AZURITE.exists():
            pytest.exit("Azurite is not installed: run `make test` (it runs `npm ci`).", returncode=2)
        self.process = subprocess.Popen(
            [str(AZURITE), "--tableHost", "127.0.0.1", "--tablePort", str(self.port), "--location",
             str(self.location), "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--silent", "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=self._env())
        wait_for_port(self.port, process=self.process)
        self.queue_process = subprocess.Popen(
            [str(AZURITE_QUEUE), "--queueHost", "127.0.0.1", "--queuePort", str(self.queue_port), "--location",
             str(self.location), "--skipApiVersionCheck", "--loose", "--disableProductStyleUrl", "--silent",
             "--disableTelemetry"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=self._env())
        wait_for_port(self.queue_port, process=self.queue_process)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGCONT)  # a frozen Azurite would never see the SIGINT
        # SIGINT lets Azurite save to disk; SIGTERM loses up to 5 s of acknowledged writes.
        stop_process_group(self.process, signal.SIGINT)
        stop_process_group(self.queue_process, signal.SIGINT)
        self.process = self.queue_process = None

    def freeze(self) -> None:
        """A hung store: SIGSTOP, so the kernel still accepts connections but nothing ever answers."""
        os.killpg(self.process.pid, signal.SIGSTOP)

    def thaw(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    @classmethod
    @contextmanager
    def temporary(cls, prefix: str = "gatehouse-azurite-",
                  accounts: dict[str, str] | None = None) -> Iterator["Azurite"]:
        """A private Azurite on a free port with its data in a new temporary directory, removed afterwards."""
        location = Path(tempfile.mkdtemp(prefix=prefix))
        server = cls(location, accounts)
        try:
            server.start()
            yield server
        finally:
            server.stop()
            shutil.rmtree(location, ignore_errors=True)


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    with Azurite.temporary() as server:
        yield server


@pytest.fixture(scope="session")
def entra_stand_in():
    """Microsoft Entra's keys endpoint and ID token minter on loopback (tests/support/entra.py); the app fetches
    Entra's keys from it (ENTRA_LOGIN_URL)."""
    from tests.support.entra import EntraStandIn

    with EntraStandIn() as stand_in:
        yield stand_in


@pytest.fixture(scope="session")
def dns_server():
    """A DNS server on loopback (tests/support/dns_server.py); the app's domain verification asks it
    (DNS_NAMESERVERS). Tests publish the TXT records they need."""
    from tests.support.dns_server import DnsServer

    with DnsServer() as server:
        yield server


@pytest.fixture(scope="session")
def app_settings(azurite: Azurite, entra_stand_in, dns_server) -> dict[str, str]:
    """The settings the app runs with in tests (and that this process uses for direct core calls)."""
    port = free_port()
    settings = {
        "TABLES_CONNECTION_STRING": azurite.connection_string,
        "TABLES_ENDPOINT": "",
        "PLATFORM_ADMIN_KEY": OPERATOR_KEY,
        "SESSION_SIGNING_KEY": "test-session-key-" + uuid.uuid4().hex,
        "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}",
        "DOMAIN_AUDIT_SCHEDULE": "0 0 0 1 1 *",  # once a year: tests run the audit through the admin API, and a suite
        # crossing 03:00 UTC must not see a nightly run add its events to the ones a test counts
        "ALLOW_PRIVATE_METADATA_URLS": "true",
        "DEV_IDP": "true",  # as local.settings.sample.json: the development IdP's routes are served (tests/dev_idp)
        "MOBILE_IOS_BUNDLE_ID": "com.example.gatehouse",
        "MOBILE_ANDROID_PACKAGE_NAME": "com.example.gatehouse",
        "MOBILE_ANDROID_SIGNATURE_HASH": "2pmj9i4rSx0yEb/viWBYkE/ZQrk=",
        "GATEHOUSE_QUEUES": azurite.queue_connection_string,
        "WEBHOOK_SWEEP_SCHEDULE": "*/5 * * * * *",  # every 5 s: tests wait for what a lost message left behind
        "ENTRA_LOGIN_URL": entra_stand_in.url,
        # The first key signs; the second plays a retired key that stays published during a rollover.
        "OIDC_SIGNING_KEYS": oidc_keys.setting("op-current", "op-retired"),
        "OIDC_BACKCHANNEL_RETRY_SCHEDULE": "0 * * * * *",
        "DNS_NAMESERVERS": dns_server.address,
        "PORT": str(port),
    }
    os.environ.update(settings)
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    get_settings.cache_clear()
    tables.reset_clients()
    return settings


class LocalHost:
    """The Function App served by tools.local_host in its own process."""

    def __init__(self, settings: dict[str, str], log_path: Path):
        self.settings = settings
        self.port = int(settings["PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        env = {**os.environ, **self.settings, "PYTHONDONTWRITEBYTECODE": "1"}
        self._log = open(self.log_path, "ab")
        # Only the suite's settings: a developer's local.settings.json (written by `make run`) holds schedules
        # and roles of its own, which would otherwise fill every setting the suite leaves out.
        no_settings = self.log_path.with_name(self.log_path.stem + ".settings.json")
        no_settings.write_text('{"IsEncrypted": false, "Values": {}}')
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tools.local_host", "--port", str(self.port), "--settings", str(no_settings)],
            cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for_port(self.port, process=self.process, timeout=60)

    def stop(self) -> None:
        stop_process_group(self.process, signal.SIGTERM)
        self.process = None
        self._log.close()

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def storage_of(azurite: "Azurite") -> Iterator[None]:
    """This process's cores read and write `azurite` (Tables and Queues) inside the block, as the app it serves
    does, and the suite's own storage again after it."""
    from shared_code.platform import queues
    from shared_code.platform.settings import get_settings
    from shared_code.storage import tables

    def forget_clients() -> None:
        get_settings.cache_clear()
        tables.reset_clients()
        queues.reset()

    switched = {"TABLES_CONNECTION_STRING": azurite.connection_string,
                "GATEHOUSE_QUEUES": azurite.queue_connection_string}
    saved = {name: os.environ.get(name) for name in switched}
    os.environ.update(switched)
    forget_clients()
    try:
        yield
    finally:
        for name, value in saved.items():
            os.environ[name] = value or ""
        forget_clients()


_TIMER_NAMES = ("import json, function_app; print(json.dumps([f.get_function_name() for f in "
                "function_app.app.get_functions() if f.get_trigger().get_binding_name() == 'timerTrigger']))")


@functools.lru_cache(maxsize=1)
def _timer_names() -> tuple[str, ...]:
    """The app's timer functions, read in a process of its own: importing the blueprints installs the app's
    process-wide hooks (a wake-up message after every commit), which this process must not get."""
    found = subprocess.run([sys.executable, "-c", _TIMER_NAMES], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert found.returncode == 0, found.stderr
    return tuple(json.loads(found.stdout.strip().splitlines()[-1]))


def timers_off() -> dict[str, str]:
    """Settings that turn every timer function off (`AzureWebJobs.<name>.Disabled`, as the Functions host reads
    them), for a test that compares storage before and after and must see only what its own requests wrote."""
    return {f"AzureWebJobs.{name}.Disabled": "true" for name in _timer_names()}


@contextmanager
def private_app(app_settings: dict[str, str], test_output: Path, name: str,
                **extra: str) -> Iterator[tuple[Azurite, LocalHost, dict[str, str]]]:
    """The app on an Azurite of its own (Tables and Queues), for tests that stop, freeze or restart them without
    touching the suite's shared ones; yields (azurite, host, settings)."""
    with Azurite.temporary(prefix=f"gatehouse-{name}-") as azurite:
        port = free_port()
        settings = {**app_settings, "TABLES_CONNECTION_STRING": azurite.connection_string,
                    "GATEHOUSE_QUEUES": azurite.queue_connection_string, "PORT": str(port),
                    "PUBLIC_BASE_URL": f"http://127.0.0.1:{port}", **extra}
        host = LocalHost(settings, test_output / f"{name}-local-host.log")
        host.start()
        try:
            yield azurite, host, settings
        finally:
            host.stop()


@pytest.fixture(scope="session")
def test_output() -> Path:
    path = ROOT / "test-output"
    path.mkdir(exist_ok=True)
    return path


@pytest.fixture(scope="session")
def local_host(app_settings: dict[str, str], test_output: Path) -> Iterator[LocalHost]:
    host = LocalHost(app_settings, test_output / "local-host.log")
    host.start()
    yield host
    host.stop()


@pytest.fixture(scope="session")
def app_url(local_host: LocalHost) -> str:
    """Base URL of the running app (append /api/...)."""
    return local_host.url


@pytest.fixture(scope="session")
def operator_key(app_settings: dict[str, str]) -> str:
    return app_settings["PLATFORM_ADMIN_KEY"]


class TenantHandle:
    """A tenant created over HTTP, with its admin key and helpers to call the API as its admin."""

    def __init__(self, base_url: str, tenant_id: str, admin_key: str, body: dict):
        self.base_url = base_url
        self.tenant_id = tenant_id
        self.admin_key = admin_key
        self.created = body
        self.http = requests.Session()

    @property
    def admin_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        """Call /api/tenants/{tenant}/{path} as this tenant's admin."""
        headers = {**self.admin_headers, **kwargs.pop("headers", {})}
        return self.http.request(method, f"{self.base_url}/api/tenants/{self.tenant_id}/{path}",
                                 headers=headers, timeout=30, **kwargs)

    def scim_token(self) -> str:
        response = self.api("POST", "scim/token")
        assert response.status_code == 201, response.text
        return response.json()["secret_token"]

    @property
    def scim_url(self) -> str:
        return f"{self.base_url}/api/scim/{self.tenant_id}/v2"


@pytest.fixture(scope="session")
def new_tenant(app_url: str, operator_key: str) -> Callable[..., TenantHandle]:
    def create(name: str = "Acme Corp", app_url_: str = "https://acme.example.com") -> TenantHandle:
        return create_tenant(app_url, operator_key, name, app_url_)

    return create


def create_tenant(base_url: str, operator_key: str, name: str,
                  app_url: str = "https://acme.example.com") -> TenantHandle:
    """A tenant created over HTTP by the operator, on the app at `base_url` (the suite's or a private one)."""
    response = requests.post(f"{base_url}/api/tenants", json={"name": name, "app_url": app_url},
                             headers={"Authorization": f"Bearer {operator_key}"}, timeout=30)
    assert response.status_code == 201, response.text
    body = response.json()
    return TenantHandle(base_url, body["tenant_id"], body["admin_key"], body)
