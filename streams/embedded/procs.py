"""Start helper processes (broker, DNS, SMTP) and make sure they never outlive us.

The demo and the integration tests start real servers as child processes. A leaked broker
keeps its port and memory and makes the next run fail in confusing ways, so every child is
stopped by *four* independent mechanisms:

1. the context manager / :meth:`ManagedProcess.stop` (normal path);
2. a module registry swept at interpreter exit (``atexit``) and on SIGINT/SIGTERM;
3. ``prctl(PR_SET_PDEATHSIG, SIGKILL)`` set in the child on Linux, so the kernel kills it even
   when the parent dies by ``kill -9`` (no Python code runs then);
4. for our own Python children, a portable fallback: the child gets a pipe as stdin and exits
   when it reads EOF, which happens when the parent dies on any OS (:func:`exit_when_stdin_closes`).

Children run in their own session (process group) so a stop also reaches any grandchildren.
Output goes to files, not pipes: a chatty child can never block on a full pipe, and the tail of
its stderr is quoted in every start-up error.

Caveat: PDEATHSIG fires when the *thread* that forked the child exits, so start long-lived
children from the main thread (or a thread that lives as long as they should).
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Literal

__all__ = [
    "ManagedProcess",
    "ProcessStartError",
    "exit_when_stdin_closes",
    "free_port",
    "managed_process",
    "port_is_open",
    "start_process",
    "stop_all",
]

LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1

_registry: set[ManagedProcess] = set()
_registry_lock = threading.Lock()
_handlers_installed = False


class ProcessStartError(RuntimeError):
    """A child did not become ready in time or exited early; the message holds its stderr tail."""


def free_port(kind: Literal["tcp", "udp", "both"] = "tcp", host: str = LOOPBACK) -> int:
    """Return a port that is free on ``host`` for TCP, UDP or both (DNS needs both).

    The port is released before returning, so another process could take it; callers start
    their server right away and a collision simply shows up as a clear start-up error.
    """
    for _ in range(100):
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            tcp.bind((host, 0))
            port = int(tcp.getsockname()[1])
            if kind == "tcp":
                return port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind((host, port))
                except OSError:
                    continue
                if kind == "udp" or kind == "both":
                    return port
        finally:
            tcp.close()
    raise OSError(f"no free {kind} port found on {host}")


def port_is_open(host: str, port: int, timeout: float = 0.2) -> bool:
    """True when a TCP connect to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _pdeathsig_preexec(parent_pid: int) -> Callable[[], None]:
    """Build the ``preexec_fn`` that asks Linux to SIGKILL the child when the parent dies."""

    def preexec() -> None:
        if sys.platform.startswith("linux"):
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            except (OSError, AttributeError):  # pragma: no cover - exotic libc
                pass
            # The parent may have died between fork and prctl: then nobody would ever
            # deliver the signal, so leave at once.
            if os.getppid() != parent_pid:
                os._exit(1)

    return preexec


class ManagedProcess:
    """A started child process with its log files, stopped at most once.

    Instances are registered module-wide until stopped, so :func:`stop_all` (run at exit and on
    SIGINT/SIGTERM) can reach children whose owner forgot them.
    """

    def __init__(
        self,
        name: str,
        popen: subprocess.Popen[bytes],
        stdout_path: Path,
        stderr_path: Path,
        log_dir: tempfile.TemporaryDirectory[str] | None,
    ) -> None:
        self.name = name
        self.popen = popen
        self.stdout_path = stdout_path
        self.stderr_path = stderr_path
        self._log_dir = log_dir
        self._stopped = False

    @property
    def pid(self) -> int:
        """The child's process id (also its process-group id)."""
        return self.popen.pid

    def alive(self) -> bool:
        """True while the child has not exited."""
        return self.popen.poll() is None

    def stdout_text(self) -> str:
        """Everything the child wrote to stdout so far."""
        try:
            return self.stdout_path.read_text(errors="replace")
        except OSError:
            return ""

    def output_text(self) -> str:
        """stdout and stderr so far, for readiness checks on tools that log to either."""
        text = self.stdout_text()
        try:
            return text + self.stderr_path.read_text(errors="replace")
        except OSError:
            return text

    def stderr_tail(self, lines: int = 30) -> str:
        """The last ``lines`` lines of the child's stderr (and stdout if stderr is empty)."""
        for path in (self.stderr_path, self.stdout_path):
            try:
                text = path.read_text(errors="replace")
            except OSError:
                continue
            if text.strip():
                return "\n".join(text.splitlines()[-lines:])
        return "(no output)"

    def stop(self, timeout: float = 5.0) -> int | None:
        """SIGTERM the child's process group, SIGKILL it after ``timeout``; idempotent.

        Returns the exit code (None if it could not be reaped).
        """
        with _registry_lock:
            _registry.discard(self)
            already = self._stopped
            self._stopped = True
        if not already:
            _signal_group(self.popen, signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(self.popen, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self.popen.wait(timeout)
            if self.popen.stdin is not None:
                with contextlib.suppress(OSError):
                    self.popen.stdin.close()
        return self.popen.poll()

    def cleanup_logs(self) -> None:
        """Remove the temporary log directory, if we created one."""
        if self._log_dir is not None:
            self._log_dir.cleanup()
            self._log_dir = None

    def __repr__(self) -> str:
        return f"ManagedProcess({self.name!r}, pid={self.pid}, alive={self.alive()})"


def _signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    """Signal the child's whole process group (it is a session leader), else the child."""
    if popen.poll() is not None:
        return
    try:
        os.killpg(popen.pid, sig)
    except (ProcessLookupError, PermissionError, AttributeError):
        with contextlib.suppress(ProcessLookupError):
            popen.send_signal(sig)


_interrupted = threading.Event()


def was_interrupted() -> bool:
    return _interrupted.is_set()


def check_interrupted() -> None:
    """Raise KeyboardInterrupt if SIGINT/SIGTERM arrived.

    Long loops call this because some libraries (kafka-python's network code among them) catch
    BaseException, which can swallow the KeyboardInterrupt the signal handler raised.
    """
    if _interrupted.is_set():
        raise KeyboardInterrupt


def stop_all() -> None:
    """Stop every registered child; used at exit and from the signal handlers."""
    with _registry_lock:
        procs = list(_registry)
    for proc in procs:
        with contextlib.suppress(Exception):
            proc.stop(timeout=3.0)


def _install_handlers() -> None:
    """Hook atexit and SIGINT/SIGTERM once, chaining to whatever handler was there before."""
    global _handlers_installed
    if _handlers_installed:
        return
    _handlers_installed = True
    atexit.register(stop_all)
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread; atexit still covers us
    for signum in (signal.SIGINT, signal.SIGTERM):
        previous = signal.getsignal(signum)

        def handler(
            sig: int, frame: FrameType | None, _prev: object = previous
        ) -> None:
            _interrupted.set()
            stop_all()
            if callable(_prev):
                _prev(sig, frame)
            elif _prev == signal.SIG_IGN:
                return
            else:  # SIG_DFL: restore and re-deliver so the exit status is the usual one
                signal.signal(sig, signal.SIG_DFL)
                os.kill(os.getpid(), sig)

        with contextlib.suppress(ValueError, OSError):
            signal.signal(signum, handler)


def start_process(
    argv: Sequence[str],
    *,
    name: str | None = None,
    ready: Callable[[ManagedProcess], bool] | None = None,
    port: int | None = None,
    host: str = LOOPBACK,
    ready_text: str | None = None,
    timeout: float = 20.0,
    env: Mapping[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
    log_dir: str | os.PathLike[str] | None = None,
    stdin_pipe: bool = False,
) -> ManagedProcess:
    """Start ``argv`` and wait until it is ready; raise :class:`ProcessStartError` otherwise.

    Readiness is every given condition at once: ``ready_text`` appears on stdout, a TCP connect
    to ``host:port`` succeeds, and ``ready(proc)`` returns True. With ``stdin_pipe`` the child
    gets a pipe as stdin that closes when we die (see :func:`exit_when_stdin_closes`).
    On failure the child is stopped and the error quotes its stderr tail.
    """
    _install_handlers()
    name = name or Path(argv[0]).name
    tmp: tempfile.TemporaryDirectory[str] | None = None
    if log_dir is None:
        tmp = tempfile.TemporaryDirectory(prefix=f"sentinelle-{name}-")
        logs = Path(tmp.name)
    else:
        logs = Path(log_dir)
        logs.mkdir(parents=True, exist_ok=True)
    stdout_path, stderr_path = logs / f"{name}.out", logs / f"{name}.err"
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("PYTHONUNBUFFERED", "1")
    with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
        popen = subprocess.Popen(
            list(argv),
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env=full_env,
            cwd=cwd,
            start_new_session=True,
            preexec_fn=_pdeathsig_preexec(os.getpid()),  # see module docstring
        )
    proc = ManagedProcess(name, popen, stdout_path, stderr_path, tmp)
    with _registry_lock:
        _registry.add(proc)
    try:
        _wait_ready(proc, ready, port, host, ready_text, timeout)
    except BaseException:
        proc.stop()
        raise
    return proc


def _wait_ready(
    proc: ManagedProcess,
    ready: Callable[[ManagedProcess], bool] | None,
    port: int | None,
    host: str,
    ready_text: str | None,
    timeout: float,
) -> None:
    """Poll the readiness conditions until all hold, the child dies, or time runs out."""
    deadline = time.monotonic() + timeout
    delay = 0.02
    while True:
        if not proc.alive():
            raise ProcessStartError(
                f"{proc.name} (pid {proc.pid}) exited with code {proc.popen.returncode} "
                f"before it was ready; its output ends with:\n{proc.stderr_tail()}"
            )
        ok = (
            (ready_text is None or ready_text in proc.stdout_text())
            and (port is None or port_is_open(host, port))
            and (ready is None or ready(proc))
        )
        if ok:
            return
        if time.monotonic() > deadline:
            waited = ", ".join(
                part
                for part in (
                    f"text {ready_text!r} on stdout" if ready_text else "",
                    f"TCP {host}:{port}" if port is not None else "",
                    "its ready check" if ready else "",
                )
                if part
            )
            raise ProcessStartError(
                f"{proc.name} (pid {proc.pid}) not ready after {timeout:.1f}s "
                f"(waited for {waited}); its output ends with:\n{proc.stderr_tail()}"
            )
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


@contextlib.contextmanager
def managed_process(argv: Sequence[str], **kwargs: object) -> Iterator[ManagedProcess]:
    """Context-manager form of :func:`start_process`; the child is stopped on exit."""
    proc = start_process(argv, **kwargs)  # type: ignore[arg-type]
    try:
        yield proc
    finally:
        proc.stop()
        proc.cleanup_logs()


async def serve_until_signalled(ready_line: str) -> None:
    """A child server's main loop: announce readiness, then wait for SIGINT or SIGTERM."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    print(ready_line, flush=True)
    await stop.wait()


@contextlib.contextmanager
def serving(
    argv: Sequence[str], *, name: str, port: int, ready_text: str, timeout: float
) -> Iterator[tuple[str, int]]:
    """Run a loopback server child for the ``with`` block; yields ``(host, port)``.

    The child gets a stdin pipe, so it also exits if we die without running ``finally``.
    """
    proc = start_process(argv, name=name, port=port, ready_text=ready_text, timeout=timeout,
                         stdin_pipe=True)
    try:
        yield LOOPBACK, port
    finally:
        proc.stop()
        proc.cleanup_logs()


def exit_when_stdin_closes(on_close: Callable[[], None] | None = None) -> None:
    """In a child started with ``stdin_pipe=True``: exit when the parent's end closes.

    This is the portable fallback to PDEATHSIG: when the parent dies for any reason the OS
    closes its end of the pipe, our read returns EOF, and we leave. Runs in a daemon thread.
    """

    def watch() -> None:
        with contextlib.suppress(Exception):
            while sys.stdin.buffer.read(4096):
                pass
        if on_close is not None:
            with contextlib.suppress(Exception):
                on_close()
        os._exit(0)

    if sys.stdin is None or sys.stdin.isatty():
        return
    threading.Thread(target=watch, name="stdin-eof-watch", daemon=True).start()
