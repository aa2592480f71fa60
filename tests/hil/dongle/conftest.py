"""Hardware-in-the-loop rig without hardware: firmware and host as two processes on a pty cable.

The cable is :class:`~posbridge.hardware.link.NullModem` (two ptys relayed by the test process);
the dongle runs ``posbridge dongle`` on one end with a ``virtual://`` audio source, the host runs
``posbridge listen --link`` on the other; both open their end with pyserial.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import pytest
from posbridge.hardware.link import NullModem

TEST_BDK_HEX = "FEDCBA9876543210F1F1F1F1F1F1F1F1"
TEST_KEY_ID_HEX = "A1B2C3D4E5F60718"


def posbridge(*args: str) -> list[str]:
    """The command line running ``posbridge`` with this interpreter."""
    return [sys.executable, "-m", "posbridge.host", *args]


@dataclass
class Rig:
    """One rig: the cable, the provisioned key file and a folder for the host's output."""

    cable: NullModem
    key_file: Path
    workdir: Path
    files: list[BinaryIO] = field(default_factory=list)

    def _output(self, name: str) -> BinaryIO:
        handle = open(self.workdir / name, "ab")  # noqa: SIM115 - closed by the fixture
        self.files.append(handle)
        return handle

    def start_dongle(self, audio_url: str, link_url: str) -> subprocess.Popen[bytes]:
        """Start ``posbridge dongle ... --exit-when-idle``."""
        log = self._output("dongle.log")
        return subprocess.Popen(
            posbridge(
                "dongle",
                "--audio",
                audio_url,
                "--link",
                link_url,
                "--key-file",
                str(self.key_file),
                "--exit-when-idle",
            ),
            stdout=log,
            stderr=log,
        )

    def start_host(self, count: int) -> subprocess.Popen[bytes]:
        """Start ``posbridge listen --link <host end> --json --count N`` (output: host.out, host.err)."""
        return subprocess.Popen(
            posbridge(
                "listen", "--link", self.cable.paths[1], "--json", "--count", str(count), "--link-stats"
            ),
            stdout=open(self.workdir / "host.out", "wb"),
            stderr=open(self.workdir / "host.err", "wb"),
        )

    def host_records(self) -> list[dict[str, Any]]:
        """The JSON lines the host printed."""
        lines = (self.workdir / "host.out").read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def host_output(self) -> str:
        """Everything the host side wrote."""
        return (self.workdir / "host.out").read_text() + (self.workdir / "host.err").read_text()


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    """A cable and a key provisioned with ``posbridge dongle provision``."""
    bdk_file = tmp_path / "bdk.hex"
    bdk_file.write_text(TEST_BDK_HEX + "\n")
    key_file = tmp_path / "dongle" / "key.json"
    subprocess.run(
        posbridge(
            "dongle",
            "provision",
            "--bdk-file",
            str(bdk_file),
            "--key-id",
            TEST_KEY_ID_HEX,
            "--key-file",
            str(key_file),
        ),
        check=True,
        capture_output=True,
    )
    assert key_file.stat().st_mode & 0o777 == 0o600
    with NullModem() as cable:
        rig = Rig(cable, key_file, tmp_path)
        yield rig
    for handle in rig.files:
        handle.close()


def stop(process: subprocess.Popen[bytes], grace_s: float = 5.0) -> None:
    """Wait ``grace_s`` for ``process`` to exit, then terminate (and kill) it."""
    try:
        process.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
