"""Fixtures for the audio channel tests: synthesized recordings and an ALSA-only sound "card".

``alsa_home`` builds the real device path without a sound card: an ``.asoundrc`` in a temporary
HOME defines ``swipein_raw``, ALSA's ``file`` plugin reading a raw s16le recording on top of the
``null`` PCM, and ``swipein``, a ``plug`` PCM that presents it at 48 kHz mono. sounddevice (through
Debian's libportaudio2) lists ``swipein`` as an input and records the file's samples.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from numpy.typing import NDArray
from posbridge.hardware.audio import sample_format
from posbridge.hardware.audio.device import file_capture_asoundrc

ALSA_PCM = "swipein"


@dataclass(frozen=True)
class AlsaHome:
    """A HOME whose ``.asoundrc`` plays ``raw_path`` as the capture PCM :data:`ALSA_PCM`."""

    home: Path
    raw_path: Path

    def env(self) -> dict[str, str]:
        """The environment for a subprocess that should see the PCM."""
        return {**os.environ, "HOME": str(self.home)}


@pytest.fixture
def alsa_home(tmp_path: Path) -> Callable[[NDArray[np.float32]], AlsaHome]:
    """Make an :class:`AlsaHome` whose PCM plays the given mono samples (48 kHz s16le)."""
    if shutil.which("aplay") is None and not Path("/usr/share/alsa/alsa.conf").exists():
        pytest.skip("ALSA is not installed (scripts/install-system-packages installs it)")

    def make(samples: NDArray[np.float32]) -> AlsaHome:
        home = tmp_path / "home"
        home.mkdir(exist_ok=True)
        raw_path = tmp_path / "swipes.s16le"
        raw_path.write_bytes(sample_format("s16le").encode(np.asarray(samples).reshape(-1)))
        (home / ".asoundrc").write_text(file_capture_asoundrc(ALSA_PCM, raw_path))
        return AlsaHome(home, raw_path)

    return make
