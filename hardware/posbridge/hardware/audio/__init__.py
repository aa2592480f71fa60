"""Audio inputs opened by URL (DESIGN.md, "Hardware channels"; issue 3).

>>> with open_audio("virtual://?swipes=2&seed=1") as source:     # doctest: +SKIP
...     for block in source:        # AudioBlock(samples float32 (n, channels), t, captured_at)
...         ...

Schemes: ``device://`` (sounddevice/PortAudio), ``wav://``, ``stdin://``, ``virtual://``.
:func:`read_wav` / :func:`read_raw` read whole recordings for batch decoding.
"""

from posbridge.hardware.audio.device import InputDevice, list_input_devices
from posbridge.hardware.audio.source import AudioBlock, AudioSource, open_audio, register_backend
from posbridge.hardware.audio.wavfile import (
    SAMPLE_FORMATS,
    SampleFormat,
    decode_wav,
    encode_wav,
    read_raw,
    read_wav,
    sample_format,
    write_wav,
)

__all__ = [
    "SAMPLE_FORMATS",
    "AudioBlock",
    "AudioSource",
    "InputDevice",
    "SampleFormat",
    "decode_wav",
    "encode_wav",
    "list_input_devices",
    "open_audio",
    "read_raw",
    "read_wav",
    "register_backend",
    "sample_format",
    "write_wav",
]
