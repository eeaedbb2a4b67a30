"""`scry demo`: the daemon plus the simulated system in one process, with a fault injected.

The demo prints each injected fault and, read back from the daemon's incident API, each incident
that opens with its top root cause. The test runs it briefly on free ports and checks that the
fault-free history and live traffic open no incident, and that the injected fault opens one that
involves the faulty service.
"""

from __future__ import annotations

import queue
import re
import subprocess
import threading
import time

import requests

from e2e_util import HTTP_TIMEOUT, free_ports

INJECT = re.compile(r"injecting (?P<kind>.+) into (?P<service>\S+) for")
OPENED = re.compile(r"incident #(?P<id>\d+) opened: top root cause (?P<top>\S+)")


def test_demo_injects_a_fault_and_reports_the_incident(scry_bin, tmp_path):
    grpc, http_otlp, api = free_ports(3)
    cmd = [
        str(scry_bin), "demo",
        "--data-dir", str(tmp_path / "data"),
        "--otlp-grpc-addr", f"127.0.0.1:{grpc}",
        "--otlp-http-addr", f"127.0.0.1:{http_otlp}",
        "--http-addr", f"127.0.0.1:{api}",
        "--fault-every", "40s", "--fault-for", "90s", "--history-minutes", "6", "--duration", "170s",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    injected = opened = None
    deadline = time.monotonic() + 170
    try:
        while time.monotonic() < deadline and opened is None:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                continue
            seen.append(line)
            if m := INJECT.search(line):
                injected = injected or m
            elif m := OPENED.search(line):
                assert injected is not None, f"an incident opened before any fault:\n{''.join(seen)}"
                opened = m
        assert injected, "".join(seen)
        assert opened, f"no incident after injecting {injected.group(0)}:\n{''.join(seen[-60:])}"
        detail = requests.get(f"http://127.0.0.1:{api}/api/v1/incidents/{opened['id']}", timeout=HTTP_TIMEOUT).json()
        assert injected["service"] in detail["services"], (injected.group(0), detail["services"], detail["ranking"][:3])
        ranked = [c["service"] for c in detail["ranking"]]
        print(f"fault {injected.group(0)} -> ranking {ranked}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
