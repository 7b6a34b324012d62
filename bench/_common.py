"""Process plumbing shared by the bench scripts that run the whole stack (``load.py``).

``http_pages.py`` stays the home of the database, sign-in and wrk helpers the older scripts
import as ``hp``; this module adds what those scripts repeated or did not need yet: gunicorn
with any number of workers (``roadmap.py`` copied ``hp.start_gunicorn`` for that), Celery
workers, stopping a process together with its children, and reading tracebacks back out of
the logs so that a 5xx under load is reported with its cause.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def venv_tool(name: str) -> str:
    """The project's own console script (gunicorn, celery, cocreate), not one on PATH."""
    for candidate in (ROOT / ".venv" / "bin" / name, Path(sys.executable).parent / name):
        if candidate.exists():
            return str(candidate)
    return name


def start_process(command: list[str], env: dict[str, str], log_path: Path) -> subprocess.Popen:
    """Start ``command`` in its own process group, so that stopping it also stops the
    children it forks (gunicorn and Celery prefork workers)."""
    with log_path.open("ab") as log:
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_process(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    """SIGTERM to the group (a graceful stop: gunicorn finishes its requests, Celery its
    tasks), SIGKILL if it is still there after ``timeout`` seconds."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
    # Children that outlived the leader (a killed master leaves its workers) go too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, signal.SIGKILL)


def gunicorn_command(port: int, workers: int) -> list[str]:
    return [
        venv_tool("gunicorn"),
        "-w",
        str(workers),
        "-k",
        "sync",
        "-b",
        f"127.0.0.1:{port}",
        "--backlog",
        "2048",
        "--log-level",
        "warning",
        "wsgi:app",
    ]


def celery_worker_command(queue: str, concurrency: int | None = None) -> list[str]:
    """The worker as the README's production section runs it (one per queue)."""
    command = [venv_tool("celery"), "-A", "wsgi:celery", "worker", "-Q", queue]
    if concurrency:
        command += ["--concurrency", str(concurrency)]
    return command + ["--loglevel", "WARNING", "--without-gossip", "--without-mingle"]


def interrupt_on_signals() -> None:
    """Ctrl-C and SIGTERM both raise KeyboardInterrupt, so ``finally`` blocks clean up."""

    def _interrupt(_signum: int, _frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)


def ignore_interrupts() -> None:
    """During cleanup a second Ctrl-C must not leave processes or databases behind."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


_TRACEBACK = re.compile(r"^Traceback \(most recent call last\):\n(?:[ \t].*\n|\n)*.*$", re.M)


def tracebacks(log_path: Path) -> list[str]:
    """Every Python traceback written to ``log_path`` (gunicorn and Celery log them whole)."""
    try:
        text = log_path.read_text(errors="replace")
    except OSError:
        return []
    return [match.group(0) for match in _TRACEBACK.finditer(text)]


def lua_string(value: str) -> str:
    """A Lua string literal: UTF-8 passes through (LuaJIT strings are bytes), quotes,
    backslashes and control characters are escaped."""
    out = []
    for char in value:
        if char in ('"', "\\"):
            out.append("\\" + char)
        elif ord(char) < 32 or ord(char) == 127:
            out.append(f"\\{ord(char):03d}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def lua_table(values: list[Any]) -> str:
    items = (lua_string(v) if isinstance(v, str) else str(int(v)) for v in values)
    return "{" + ", ".join(items) + "}"
