"""Rig fixtures for the queue: processor-sim as a real subprocess, a real nats-server with JetStream."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

NATS_SERVER_CANDIDATES = ("nats-server", "/usr/sbin/nats-server", "/usr/bin/nats-server")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_for_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.2):
            return
        time.sleep(0.02)
    raise TimeoutError(f"nothing listening on 127.0.0.1:{port}")


class ProcessorSimProcess:
    """``posbridge processor-sim`` running as a child process on a free loopback port."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "posbridge.host", "processor-sim", "--port", "0", "--json"],
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"processor-sim did not start: {log_path.read_text()}")
        self.url: str = json.loads(line)["url"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


@pytest.fixture
def processor_sim(tmp_path: Path) -> Iterator[ProcessorSimProcess]:
    sim = ProcessorSimProcess(tmp_path / "processor-sim.log")
    yield sim
    sim.stop()


class NatsServer:
    """A real nats-server with JetStream on a free loopback port and a temporary store directory."""

    def __init__(self, binary: str, store: Path) -> None:
        self.binary = binary
        self.store = store
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.binary, "-js", "-a", "127.0.0.1", "-p", str(self.port), "-sd", str(self.store)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for_port(self.port)

    def kill(self) -> None:
        """kill -9, as a power cut would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    binary = next((found for name in NATS_SERVER_CANDIDATES if (found := shutil.which(name))), None)
    if binary is None:
        pytest.skip("nats-server is not installed (Debian package nats-server; .ci/run installs it)")
    server = NatsServer(binary, tmp_path / "jetstream")
    server.start()
    yield server
    server.kill()


def child_exit(code: int) -> None:
    """Leave a forked child at once: no atexit handlers, no pytest teardown."""
    os._exit(code)
