"""``posbridge plot``: a picture of pulses, bit cells and characters, masked unless --reveal."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from posbridge.hardware.audio import read_wav
from posbridge.host.cli import main
from posbridge.host.cli.plot import analyse

PAN = "5105105105105100"


def test_plot_writes_a_png_of_every_swipe(
    tmp_path: Path, synth_file: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synth_file("two.wav", "--pan", PAN, "--channels", "2", "--ramp", "2.5")
    out = tmp_path / "two.png"
    assert main(["plot", str(path), "-o", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report == {"file": str(path), "output": str(out), "swipes": 1, "decoded": 1, "drawn": 1}
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("reveal", [False, True])
def test_characters_are_drawn_over_their_bits_and_masked(
    synth_file: Callable[..., Path], reveal: bool
) -> None:
    samples, rate = read_wav(synth_file("one.wav", "--pan", PAN, "--track", "2", "--reverse"))
    pulses, views = analyse(samples[:, 0], rate, reveal)
    assert pulses is not None
    (view,) = views
    assert view.track is not None
    assert len(view.boundaries) == len(view.bits) + 1
    assert view.boundaries == sorted(view.boundaries)
    cells = np.diff(view.boundaries)
    nearest = np.abs(pulses.times[None, :] - np.asarray(view.boundaries)[:, None]).min(axis=1)
    assert np.all(nearest[1:] < 0.1 * cells)  # every boundary sits on a flux transition's pulse
    labels = [label for _, _, label in view.characters][::-1]
    text = "".join(labels[1:-2])
    assert labels[0] == ";"
    assert labels[-2:] == ["?", "LRC"]
    assert text.startswith(PAN if reveal else "510510******5100=")
    widths = {high - low for low, high, _ in view.characters}
    assert widths == {5}


@pytest.mark.parametrize("argv", [["-o", "x.gif"], ["--swipe", "3"], ["--channel", "4"]])
def test_plot_bad_arguments_exit_2(
    argv: list[str], synth_file: Callable[..., Path], capsys: pytest.CaptureFixture[str]
) -> None:
    path = synth_file("one.wav", "--seed", "1")
    assert main(["plot", str(path), *argv]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_plot_of_a_missing_file_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["plot", str(tmp_path / "missing.wav")]) == 2
    assert "missing.wav" in capsys.readouterr().err
