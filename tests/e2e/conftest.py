"""Fixtures for the scry end-to-end tests: start the real binary, talk to it, clean up.

The binary is taken from $SCRY_BIN, or ${CARGO_TARGET_DIR:-$HOME/.cache/scry-target}/debug/scry.
Each daemon gets free ports on 127.0.0.1, its own temporary data dir, and a log file holding its
stderr (shown in the report of a failing test).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from e2e_util import HTTP_TIMEOUT, free_ports, wait_until

START_TIMEOUT = float(os.environ.get("SCRY_E2E_START_TIMEOUT", "30"))
STOP_TIMEOUT = float(os.environ.get("SCRY_E2E_STOP_TIMEOUT", "30"))
VISIBLE_TIMEOUT = 10.0  # how long acknowledged rows may take to show up in queries

# Daemons started and not yet closed; their logs are attached to the report of a failing test.
_LIVE: list["Scry"] = []


def _die_with_parent():  # runs in the child before exec: a daemon never outlives the test run
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:  # noqa: BLE001 - not Linux/glibc: cleanup relies on the fixtures
        pass


def default_binary() -> Path:
    explicit = os.environ.get("SCRY_BIN")
    if explicit:
        return Path(explicit)
    target = os.environ.get("CARGO_TARGET_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "scry-target")
    return Path(target) / "debug" / "scry"


class DaemonError(AssertionError):
    pass


class Scry:
    """One scry daemon process (restartable on the same data dir and ports)."""

    def __init__(self, binary: Path, workdir: Path, extra_args=(), name: str = "scry"):
        self.binary = Path(binary)
        self.name = name
        self.data_dir = workdir / "data"
        self.log_dir = workdir / "logs"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.extra_args = [str(a) for a in extra_args]
        self.grpc_port, self.otlp_http_port, self.http_port = free_ports(3)
        self.proc: subprocess.Popen | None = None
        self.log_path: Path | None = None
        self._log_file = None
        self._starts = 0

    # ---- addresses
    @property
    def grpc_target(self) -> str:
        return f"127.0.0.1:{self.grpc_port}"

    @property
    def grpc_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.grpc_port}"

    @property
    def otlp_http_url(self) -> str:
        return f"http://127.0.0.1:{self.otlp_http_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    # ---- process control
    def command(self) -> list[str]:
        return [
            str(self.binary),
            "serve",
            "--data-dir",
            str(self.data_dir),
            "--otlp-grpc-addr",
            self.grpc_target,
            "--otlp-http-addr",
            f"127.0.0.1:{self.otlp_http_port}",
            "--http-addr",
            f"127.0.0.1:{self.http_port}",
            *self.extra_args,
        ]

    @staticmethod
    def _env() -> dict:
        # The daemon reads SCRY_* (and the SDKs OTEL_*) from the environment: keep the caller's
        # out so that only the command line configures it.
        env = {k: v for k, v in os.environ.items() if not k.startswith(("SCRY_", "OTEL_"))}
        env.setdefault("RUST_BACKTRACE", "1")
        return env

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout: float = START_TIMEOUT, new_ports_on_conflict: bool = True):
        assert not self.running, "daemon already running"
        for attempt in range(4):
            self._spawn()
            try:
                self.wait_ready(timeout)
                return self
            except DaemonError:
                if self.running or not self._port_conflict() or attempt == 3:
                    raise
                # someone took one of our ports between probing and binding: try again
                if new_ports_on_conflict:
                    self.grpc_port, self.otlp_http_port, self.http_port = free_ports(3)
                else:
                    time.sleep(0.5)
        return self

    def _spawn(self):
        self._starts += 1
        if self._log_file:
            self._log_file.close()
        self.log_path = self.log_dir / f"{self.name}.{self._starts}.log"
        self._log_file = open(self.log_path, "wb")
        self._log_file.write(("$ " + " ".join(self.command()) + "\n").encode())
        self._log_file.flush()
        self.proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env=self._env(),
            start_new_session=True,  # a Ctrl-C at the terminal reaches pytest, not the daemons
            preexec_fn=_die_with_parent,
        )
        if self not in _LIVE:
            _LIVE.append(self)

    def _port_conflict(self) -> bool:
        text = self.log_tail(4000).lower()
        return "address already in use" in text or "addrinuse" in text or "address in use" in text

    def wait_ready(self, timeout: float = START_TIMEOUT):
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if self.proc.poll() is not None:
                raise DaemonError(
                    f"scry exited with code {self.proc.returncode} before /readyz was 200.\n{self.log_excerpt()}"
                )
            try:
                r = requests.get(self.api_url + "/readyz", timeout=2)
                if r.status_code == 200:
                    return
                last = f"/readyz -> {r.status_code}"
            except requests.RequestException as exc:
                last = f"/readyz: {exc.__class__.__name__}"
            if time.monotonic() > deadline:
                self.kill9()
                raise DaemonError(f"scry not ready after {timeout}s ({last}).\n{self.log_excerpt()}")
            time.sleep(0.05)

    def kill9(self):
        """SIGKILL and reap: a crash, as far as the daemon can tell."""
        if self.running:
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=STOP_TIMEOUT)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = STOP_TIMEOUT):
        """Graceful shutdown; asserts the daemon exits 0 in time."""
        assert self.running, f"daemon is not running (exit code {self.proc and self.proc.returncode}).\n{self.log_excerpt()}"
        self.proc.send_signal(sig)
        try:
            code = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill9()
            raise DaemonError(f"scry did not exit within {timeout}s of signal {sig}.\n{self.log_excerpt()}")
        if code != 0:
            raise DaemonError(f"scry exited with code {code} after signal {sig}, expected 0.\n{self.log_excerpt()}")
        if self._log_file:
            self._log_file.flush()
        if self.log_path and b"panicked at" in self.log_path.read_bytes():
            raise DaemonError(f"scry panicked (exit code was still 0).\n{self.log_excerpt()}")

    def restart(self, timeout: float = START_TIMEOUT):
        """Start again on the same data dir and ports (stopping gracefully first if running)."""
        if self.running:
            self.stop()
        self.start(timeout=timeout, new_ports_on_conflict=False)
        return self

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            try:
                self.proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                pass
        if self._log_file:
            self._log_file.close()
            self._log_file = None
        if self in _LIVE:
            _LIVE.remove(self)

    # ---- logs
    def log_tail(self, max_chars: int = 12000) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        data = self.log_path.read_bytes()
        return data[-max_chars:].decode("utf-8", "replace")

    def log_excerpt(self) -> str:
        return f"--- {self.log_path} (tail) ---\n{self.log_tail()}\n--- end of log ---"

    # ---- API
    def get(self, path: str, **kw) -> requests.Response:
        return requests.get(self.api_url + path, timeout=HTTP_TIMEOUT, **kw)

    def query_response(self, sql: str, accept: str | None = None) -> requests.Response:
        headers = {"Content-Type": "application/json"}
        if accept:
            headers["Accept"] = accept
        return requests.post(self.api_url + "/api/v1/query", json={"sql": sql}, headers=headers, timeout=HTTP_TIMEOUT)

    def query_json(self, sql: str) -> dict:
        r = self.query_response(sql)
        assert r.status_code == 200, f"query failed ({r.status_code}): {r.text[:2000]}\nSQL: {sql}"
        body = r.json()
        assert isinstance(body.get("rows"), list), f"no rows list in {body!r}"
        return body

    def query(self, sql: str) -> list[dict]:
        return self.query_json(sql)["rows"]

    def scalar(self, sql: str):
        body = self.query_json(sql)
        assert len(body["rows"]) == 1, f"expected one row, got {body['rows']!r}\nSQL: {sql}"
        col = body["columns"][0]["name"]
        return body["rows"][0].get(col)

    def count(self, table: str, where: str = "TRUE") -> int:
        return int(self.scalar(f"SELECT COUNT(*) AS n FROM {table} WHERE {where}"))

    def wait_count(self, table: str, where: str, expected: int, timeout: float = VISIBLE_TIMEOUT) -> int:
        """Wait until exactly `expected` rows match; fail at once if more ever do."""
        deadline = time.monotonic() + timeout
        while True:
            n = self.count(table, where)
            assert n <= expected, f"{n} rows in {table} WHERE {where}, expected {expected} (duplicates?)"
            if n == expected:
                return n
            if time.monotonic() > deadline:
                raise AssertionError(f"{n} rows in {table} WHERE {where} after {timeout}s, expected {expected}")
            time.sleep(0.1)

    def flush(self) -> dict:
        r = requests.post(self.api_url + "/api/v1/admin/flush", timeout=120)
        assert r.status_code == 200, f"flush failed ({r.status_code}): {r.text[:2000]}"
        return r.json() if r.content.strip() else {}

    def metrics_text(self) -> str:
        r = self.get("/metrics")
        assert r.status_code == 200, f"/metrics -> {r.status_code}"
        return r.text

    def assert_healthy(self):
        assert self.running, f"scry is not running (exit code {self.proc.returncode}).\n{self.log_excerpt()}"
        wait_until(lambda: self.get("/healthz").status_code == 200, 5, what="/healthz 200")

    def parquet_files(self, table: str) -> list[Path]:
        return sorted((self.data_dir / "tables" / table).glob("*/*/*.parquet"))


class ScryFactory:
    """Starts daemons on demand and kills whatever is left at teardown."""

    def __init__(self, binary: Path, base: Path):
        self.binary = binary
        self.base = base
        self.instances: list[Scry] = []

    def __call__(self, extra_args=(), *, flush_interval: str | None = "1h", start: bool = True, name: str | None = None) -> Scry:
        args = list(extra_args)
        # A long flush interval keeps rows where a test put them unless it flushes explicitly.
        if flush_interval and "--flush-interval" not in args:
            args += ["--flush-interval", flush_interval]
        name = name or f"scry{len(self.instances)}"
        scry = Scry(self.binary, self.base / name, args, name=name)
        self.instances.append(scry)
        if start:
            scry.start()
        return scry

    def close(self):
        for scry in self.instances:
            scry.close()


# ------------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="session", autouse=True)
def scry_bin() -> Path:
    path = default_binary()
    if not path.is_file() or not os.access(path, os.X_OK):
        pytest.exit(
            f"scry binary not found or not executable at {path}. Build it with `cargo build --bin scry` "
            f"(CARGO_TARGET_DIR={os.environ.get('CARGO_TARGET_DIR', '<unset>')}) or point SCRY_BIN at it.",
            returncode=3,
        )
    return path


@pytest.fixture
def scry_factory(scry_bin, tmp_path):
    factory = ScryFactory(scry_bin, tmp_path)
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def module_scry_factory(scry_bin, tmp_path_factory, request):
    factory = ScryFactory(scry_bin, tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1]))
    yield factory
    factory.close()


@pytest.fixture(scope="module")
def scry(module_scry_factory) -> Scry:
    """One daemon shared by the tests of a module (they isolate their rows by service name)."""
    return module_scry_factory()


# ------------------------------------------------------------------------------------- hooks


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for scry in list(_LIVE):
            state = "running" if scry.running else f"exited {scry.proc.returncode if scry.proc else '-'}"
            report.sections.append((f"scry {scry.name} ({state}) log {scry.log_path}", scry.log_tail(6000)))
