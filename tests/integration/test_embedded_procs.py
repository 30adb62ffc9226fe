"""Children started through streams.embedded.procs never outlive their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from streams.embedded.procs import (
    ProcessStartError,
    free_port,
    managed_process,
    port_is_open,
    start_process,
)

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]

# A parent that starts a long-lived grandchild through procs, reports its pid, then waits.
PARENT = textwrap.dedent(
    """
    import sys, time
    from streams.embedded.procs import start_process
    child = start_process([sys.executable, "-c", "import time; time.sleep(300)"], name="sleeper")
    print(child.pid, flush=True)
    time.sleep(300)
    """
)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def wait_gone(pid: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.05)
    return False


def start_parent() -> tuple[subprocess.Popen[str], int]:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True,
                              cwd=REPO)
    assert parent.stdout is not None
    child_pid = int(parent.stdout.readline())
    assert pid_alive(child_pid)
    return parent, child_pid


def test_free_port_for_both_protocols() -> None:
    port = free_port("both")
    assert 0 < port < 65536 and not port_is_open("127.0.0.1", port)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PDEATHSIG is Linux-only")
def test_child_dies_when_parent_is_killed_9() -> None:
    parent, child_pid = start_parent()
    parent.kill()
    parent.wait()
    assert wait_gone(child_pid), "grandchild survived kill -9 of its parent"


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_child_stopped_when_parent_gets_signal(sig: int) -> None:
    parent, child_pid = start_parent()
    parent.send_signal(sig)
    parent.wait(10)
    assert wait_gone(child_pid)


def test_stdin_eof_fallback_stops_python_children(tmp_path: Path) -> None:
    """Without PDEATHSIG our own servers still exit when the parent's stdin pipe closes."""
    port = free_port()
    child = subprocess.Popen(
        [sys.executable, "-m", "streams.embedded.smtp_sink", "--dir", str(tmp_path),
         "--port", str(port), "--exit-on-stdin-eof"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=REPO,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().startswith(b"ready")
        assert child.stdin is not None
        child.stdin.close()
        assert child.wait(5) == 0
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_early_exit_error_quotes_stderr() -> None:
    argv = [sys.executable, "-c", "import sys; sys.stderr.write('boom: bad config\\n'); exit(3)"]
    with pytest.raises(ProcessStartError, match=r"(?s)exited with code 3.*boom: bad config"):
        start_process(argv, name="failing", port=free_port(), timeout=5)


def test_timeout_error_names_what_it_waited_for() -> None:
    port = free_port()
    argv = [sys.executable, "-c", "import sys,time; print('starting', file=sys.stderr); "
            "sys.stderr.flush(); time.sleep(60)"]
    started = time.monotonic()
    with pytest.raises(ProcessStartError, match=rf"(?s)TCP 127.0.0.1:{port}.*starting"):
        start_process(argv, name="slow", port=port, timeout=1)
    assert time.monotonic() - started < 5


def test_context_manager_stops_process_group() -> None:
    code = (
        "import subprocess, time; p = subprocess.Popen(['sleep', '300']); "
        "print(p.pid, flush=True); time.sleep(300)"
    )
    with managed_process([sys.executable, "-c", code], name="group", ready_text="\n",
                         timeout=5) as proc:
        grandchild = int(proc.stdout_text().split()[0])
        assert pid_alive(grandchild)
    assert not proc.alive()
    assert wait_gone(grandchild), "the child's own child was left behind"
    assert not os.path.exists(proc.stdout_path)  # temporary logs removed
