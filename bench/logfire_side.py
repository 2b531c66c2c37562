"""The Logfire side of the export-retry benchmarks (driven by bench/bench.js).

Drives the Pydantic Logfire SDK's own retry classes, unmodified, against the same
loopback endpoint as export-retry (logfire 5.4.0, `logfire/_internal/exporters/otlp.py`):

- `OTLPExporterHttpSession.post`: the exporter's POST. On a retryable failure it
  sleeps 1 s, posts once more, then hands the body to its `DiskRetryer` and raises.
- `DiskRetryer`: writes each failed body to a file in a `mkdtemp` directory and
  sends the files back one at a time from a daemon thread, sleeping
  `delay * (1 + random())` before every attempt (delay 0.2 s after a success).

Protocol: one JSON command per line on stdin, one JSON answer per line on the
original stdout (anything else the SDK prints goes to stderr). Every command
answers `{"id": ..., "ok": true, ...}` or `{"id": ..., "ok": false, "error": ...}`.

    python bench/logfire_side.py                      # serve commands
    python bench/logfire_side.py --restart-probe URL N  # spool N bodies and exit (see `restart`)
"""

from __future__ import annotations

import json
import os
import sys
import time
from importlib.metadata import version

# Keep the protocol channel clean: whatever else writes to stdout goes to stderr.
_PROTOCOL = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1)
sys.stdout = sys.stderr

import requests  # noqa: E402
from logfire._internal.exporters.otlp import OTLPExporterHttpSession  # noqa: E402

CONTENT_TYPE = {"Content-Type": "application/x-protobuf"}
# What OTLPSpanExporter passes: its timeout (10 s by default); the session's
# `_configure_timeout` turns it into (connect 3 s, read 10 s), as in production.
TIMEOUT = 10.0


def now_ms() -> float:
    return time.perf_counter() * 1000.0


def body_of(size: int) -> bytes:
    return bytes([7]) * size


class Side:
    def __init__(self) -> None:
        self.session = OTLPExporterHttpSession()
        self.bare = requests.Session()
        self.filled: OTLPExporterHttpSession | None = None

    # -- the exporter's POST ------------------------------------------------------

    def post(self, url: str, size: int, n: int) -> dict:
        """Times `n` calls of OTLPExporterHttpSession.post, as the OTLP exporter makes them."""
        body = body_of(size)
        samples, outcomes = [], {}
        for _ in range(n):
            t0 = now_ms()
            try:
                response = self.session.post(url, data=body, headers=CONTENT_TYPE, timeout=TIMEOUT)
                outcome = f"status {response.status_code}"
            except Exception as e:  # what the SDK raises after spooling: HTTPError, SuppressedConnectionError
                outcome = type(e).__name__
            samples.append(now_ms() - t0)
            outcomes[outcome] = outcomes.get(outcome, 0) + 1
        retryer = self.session.__dict__.get("retryer")
        return {"samples": samples, "outcomes": outcomes, "spooled": len(retryer.tasks) if retryer else 0}

    def bare_post(self, url: str, size: int, n: int) -> dict:
        """Times `n` plain requests.Session POSTs: the Python floor for `post`."""
        body = body_of(size)
        samples = []
        for _ in range(n):
            t0 = now_ms()
            response = self.bare.post(url, data=body, headers=CONTENT_TYPE, timeout=TIMEOUT)
            response.content  # noqa: B018 (read the small answer, as requests does for the exporter)
            samples.append(now_ms() - t0)
        return {"samples": samples}

    def reset_session(self) -> dict:
        """Closes the exporter session (and its retryer: its files are deleted) and makes a new one."""
        self.session.close()
        self.session = OTLPExporterHttpSession()
        return {}

    # -- the DiskRetryer ----------------------------------------------------------

    def fill(self, url: str, size: int, m: int) -> dict:
        """A fresh session's DiskRetryer gets `m` failed bodies, as `post` hands them over
        (`_add_task` after the immediate retry failed); its thread starts on the first."""
        if self.filled is not None:
            self.filled.close()
        self.filled = OTLPExporterHttpSession()
        kwargs = {"headers": CONTENT_TYPE, "timeout": TIMEOUT}
        self.filled._configure_timeout(kwargs)
        retryer = self.filled.retryer
        body = body_of(size)
        samples = []
        for _ in range(m):
            t0 = now_ms()
            retryer.add_task(body, {"url": url, **kwargs})
            samples.append(now_ms() - t0)
        return {"samples": samples, "dir": str(retryer.dir), "tasks": len(retryer.tasks)}

    def retryer_state(self) -> dict:
        retryer = self.filled.retryer if self.filled is not None else None
        if retryer is None:
            return {"tasks": 0, "files": 0, "thread": False}
        with retryer.lock:
            tasks = len(retryer.tasks)
            thread = retryer.thread is not None and retryer.thread.is_alive()
        files = len(os.listdir(retryer.dir)) if retryer.dir.exists() else 0
        return {"tasks": tasks, "files": files, "thread": thread, "bytes": retryer.total_size}

    def close_filled(self) -> dict:
        if self.filled is not None:
            self.filled.close()
            self.filled = None
        return {}

    def spool_write(self, size: int, n: int, url: str) -> dict:
        """Times DiskRetryer.add_task alone (its spool write: `path.write_bytes`, no fsync),
        with a retryer whose thread is kept busy sleeping (the endpoint refuses)."""
        session = OTLPExporterHttpSession()
        kwargs = {"headers": CONTENT_TYPE, "timeout": TIMEOUT}
        session._configure_timeout(kwargs)
        retryer = session.retryer
        body = body_of(size)
        samples = []
        try:
            for _ in range(n):
                t0 = now_ms()
                retryer.add_task(body, {"url": url, **kwargs})
                samples.append(now_ms() - t0)
        finally:
            session.close()
        return {"samples": samples}

    def info(self) -> dict:
        return {"logfire": version("logfire"), "requests": version("requests"), "python": sys.version.split()[0]}


def serve() -> None:
    side = Side()
    for line in sys.stdin:
        if not line.strip():
            continue
        msg = json.loads(line)
        answer: dict = {"id": msg.get("id")}
        try:
            args = msg.get("args", {})
            answer.update(getattr(side, msg["cmd"])(**args))
            answer["ok"] = True
        except Exception as e:  # reported to the Node side, which stops the run
            answer.update(ok=False, error=f"{type(e).__name__}: {e}")
        _PROTOCOL.write(json.dumps(answer) + "\n")
    side.session.close()
    side.close_filled()


def restart_probe(url: str, n: int) -> None:
    """Spools `n` bodies through the exporter's own path while the endpoint fails,
    prints the retryer's directory and task count, and exits normally: what a
    process restart does to Logfire's spool is then visible on disk."""
    session = OTLPExporterHttpSession()
    for _ in range(n):
        try:
            session.post(url, data=body_of(1024), headers=CONTENT_TYPE, timeout=TIMEOUT)
        except Exception:
            pass
    retryer = session.retryer
    files = len(os.listdir(retryer.dir))
    _PROTOCOL.write(json.dumps({"dir": str(retryer.dir), "tasks": len(retryer.tasks), "files": files}) + "\n")
    # A new process's session: a new retryer, a new mkdtemp directory.
    fresh = OTLPExporterHttpSession().retryer
    _PROTOCOL.write(json.dumps({"freshDir": str(fresh.dir), "freshTasks": len(fresh.tasks)}) + "\n")
    # Normal exit: logfire's atexit hook (cleanup_disk_retryers) closes the retryers.


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--restart-probe":
        restart_probe(sys.argv[2], int(sys.argv[3]))
    else:
        serve()
