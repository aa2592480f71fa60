"""Lane configuration (DESIGN.md, "Configuration").

Keyword arguments > ``POSBRIDGE_*`` environment variables > a TOML file (``posbridge.toml``),
read into one frozen :class:`Config` of nested sections. Every key has a default that runs on
a fresh machine with no hardware: no readers, no scanner, a SQLite queue in the state
directory, the console on ``127.0.0.1:8080``.

Names are derived from the schema, so they never drift apart: the TOML key ``[queue] url`` is
the environment variable ``POSBRIDGE_QUEUE_URL`` and the keyword argument ``queue_url``;
top-level keys (``state_dir``) become ``POSBRIDGE_STATE_DIR`` and ``state_dir``. Lists in the
environment are comma-separated. A bad value raises :class:`ConfigError` naming where it came
from and the key, e.g. ``posbridge.toml: [queue] url: must start with sqlite:/// or nats://``.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, get_origin, get_type_hints

from posbridge.protocols.errors import ConfigError

ENV_PREFIX = "POSBRIDGE_"
CONFIG_ENV = "POSBRIDGE_CONFIG"
DEFAULT_CONFIG_NAME = "posbridge.toml"

AUDIO_SCHEMES = ("device://", "wav://", "stdin://", "virtual://")
SCANNER_SCHEMES = ("bleak://", "replay://", "virtual://")
QUEUE_SCHEMES = ("sqlite:///", "nats://")
PROCESSOR_SCHEMES = ("http://", "https://")


def default_state_dir() -> Path:
    """``$STATE_DIRECTORY`` (systemd), else ``$XDG_STATE_HOME/posbridge`` or ``~/.local/state/posbridge``."""
    if os.environ.get("STATE_DIRECTORY"):
        return Path(os.environ["STATE_DIRECTORY"].split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "posbridge"


@dataclass(frozen=True)
class LaneConfig:
    """``[lane]``: which checkout lane this process runs."""

    id: str = "lane-1"
    currency: str = "USD"


@dataclass(frozen=True)
class AudioConfig:
    """``[audio]``: audio-jack magstripe readers, one ``open_audio`` URL each."""

    readers: tuple[str, ...] = ()


@dataclass(frozen=True)
class DongleConfig:
    """``[dongles]``: Pi card-reader dongles, one ``open_link`` URL or serial device each."""

    links: tuple[str, ...] = ()


@dataclass(frozen=True)
class ChipConfig:
    """``[chip]``: powered chip readers behind an audio modem, one ``open_audio`` URL each, and the
    modem profile they speak (``bell202`` or ``fast``)."""

    readers: tuple[str, ...] = ()
    profile: str = "bell202"


@dataclass(frozen=True)
class ScannerConfig:
    """``[scanner]``: the BLE beacon scanner (``bleak://hci0``, ``replay://...``); empty disables it.

    ``check_in`` is ``cautious`` (the default) or ``quick`` (:data:`posbridge.host.checkin.CHECK_IN_MODES`).
    """

    url: str = ""
    check_in: str = "cautious"


@dataclass(frozen=True)
class CustomersConfig:
    """``[customers]``: the registry that maps beacons to customers (a JSON file); empty: none."""

    registry: str = ""


@dataclass(frozen=True)
class QueueConfig:
    """``[queue]``: the durable transaction queue; empty URL means ``sqlite:///<state_dir>/queue.db``."""

    url: str = ""


@dataclass(frozen=True)
class ProcessorConfig:
    """``[processor]``: the payment processor endpoint and its request timeout."""

    url: str = "http://127.0.0.1:8099"
    timeout_s: float = 5.0


@dataclass(frozen=True)
class OfflineConfig:
    """``[offline]``: limits on payments held before the processor answers (minor units, seconds)."""

    max_transaction_amount: int = 50_000
    max_total_amount: int = 1_000_000
    max_count: int = 1_000
    max_age_s: float = 86_400.0


@dataclass(frozen=True)
class ConsoleConfig:
    """``[console]``: the merchant console, health endpoint and metrics (one HTTP listener).

    ``token``: when set, the console and its API require it (open ``/?token=...`` once on each
    tablet or phone); ``/healthz`` and ``/metrics`` stay open. Set one whenever ``host`` is not
    loopback.
    """

    host: str = "127.0.0.1"
    port: int = 8080
    enabled: bool = True
    token: str = field(default="", repr=False)


@dataclass(frozen=True)
class Config:
    """The whole configuration of one lane."""

    lane: LaneConfig = field(default_factory=LaneConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    dongles: DongleConfig = field(default_factory=DongleConfig)
    chip: ChipConfig = field(default_factory=ChipConfig)
    scanner: ScannerConfig = field(default_factory=ScannerConfig)
    customers: CustomersConfig = field(default_factory=CustomersConfig)
    queue: QueueConfig = field(default_factory=QueueConfig)
    processor: ProcessorConfig = field(default_factory=ProcessorConfig)
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    console: ConsoleConfig = field(default_factory=ConsoleConfig)
    state_dir: Path = field(default_factory=default_state_dir)
    log_file: str = ""
    key_file: str = ""

    @property
    def queue_url(self) -> str:
        """The queue URL, defaulting to a SQLite file in the state directory."""
        return self.queue.url or f"sqlite:///{self.state_dir / 'queue.db'}"

    @property
    def key_path(self) -> Path:
        """The device key file (wraps queue record keys): ``key_file`` or ``<state_dir>/posbridge.key``."""
        return Path(self.key_file) if self.key_file else self.state_dir / "posbridge.key"

    @property
    def log_path(self) -> Path | None:
        """The log file, if one is configured."""
        return Path(self.log_file) if self.log_file else None


@dataclass(frozen=True)
class _Key:
    section: str | None
    name: str
    type: Any

    @property
    def label(self) -> str:
        return f"[{self.section}] {self.name}" if self.section else self.name

    @property
    def flat(self) -> str:
        return f"{self.section}_{self.name}" if self.section else self.name

    @property
    def env(self) -> str:
        return ENV_PREFIX + self.flat.upper()


def _keys() -> Iterator[_Key]:
    for top in dataclasses.fields(Config):
        top_type = get_type_hints(Config)[top.name]
        if dataclasses.is_dataclass(top_type):
            hints = get_type_hints(top_type)
            for inner in dataclasses.fields(top_type):
                yield _Key(top.name, inner.name, hints[inner.name])
        else:
            yield _Key(None, top.name, top_type)


KEYS: tuple[_Key, ...] = tuple(_keys())


_TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
_FALSE_WORDS = frozenset({"0", "false", "no", "off"})


def _convert(key: _Key, value: Any, from_text: bool) -> Any:
    """Turn a raw TOML/env/keyword value into the key's declared type, or raise ValueError."""
    kind = key.type
    if get_origin(kind) is tuple:
        if from_text and isinstance(value, str):
            value = [part.strip() for part in value.split(",") if part.strip()]
        if not isinstance(value, list | tuple) or not all(isinstance(item, str) for item in value):
            raise ValueError("must be a list of strings")
        return tuple(value)
    if kind is bool:
        if isinstance(value, bool):
            return value
        if from_text and isinstance(value, str) and value.lower() in _TRUE_WORDS | _FALSE_WORDS:
            return value.lower() in _TRUE_WORDS
        raise ValueError("must be true or false")
    if kind is int:
        if isinstance(value, bool):
            raise ValueError("must be a whole number")
        if from_text and isinstance(value, str):
            try:
                value = int(value.strip())
            except ValueError:
                raise ValueError("must be a whole number") from None
        if not isinstance(value, int):
            raise ValueError("must be a whole number")
        return value
    if kind is float:
        if isinstance(value, bool):
            raise ValueError("must be a number")
        if from_text and isinstance(value, str):
            try:
                value = float(value.strip())
            except ValueError:
                raise ValueError("must be a number") from None
        if not isinstance(value, int | float):
            raise ValueError("must be a number")
        return float(value)
    if kind is Path:
        if not isinstance(value, str | Path) or not str(value):
            raise ValueError("must be a non-empty path")
        return Path(value).expanduser()
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


def _require_scheme(schemes: tuple[str, ...], allow_empty: bool = False) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if allow_empty and value == "":
            return
        expected = " or ".join(schemes)
        if not isinstance(value, tuple):
            if not str(value).startswith(schemes):
                raise ValueError(f"must start with {expected}")
            return
        for index, url in enumerate(value, start=1):
            if not url.startswith(schemes):
                raise ValueError(f"entry {index} must start with {expected}")

    return check


def _at_least(minimum: float) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value < minimum:
            raise ValueError(f"must be at least {minimum:g}")

    return check


def _one_of(*choices: str) -> Callable[[Any], None]:
    def check(value: Any) -> None:
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")

    return check


def _check_in_mode(value: Any) -> None:
    """One of :data:`posbridge.host.checkin.CHECK_IN_MODES` (loaded only when the key is given)."""
    from posbridge.host.checkin import CHECK_IN_MODES

    _one_of(*CHECK_IN_MODES)(value)


def _port(value: Any) -> None:
    if not 0 <= value <= 65535:
        raise ValueError("must be a TCP port 0-65535")


def _currency(value: Any) -> None:
    if len(value) != 3 or not value.isalpha() or not value.isupper():
        raise ValueError("must be an ISO 4217 code such as USD")


def _non_empty(value: Any) -> None:
    if not str(value).strip():
        raise ValueError("must not be empty")


_VALIDATORS: dict[str, Callable[[Any], None]] = {
    "lane_id": _non_empty,
    "lane_currency": _currency,
    "audio_readers": _require_scheme(AUDIO_SCHEMES),
    "chip_readers": _require_scheme(AUDIO_SCHEMES),
    "chip_profile": _one_of("fast", "bell202"),
    "scanner_url": _require_scheme(SCANNER_SCHEMES, allow_empty=True),
    "scanner_check_in": _check_in_mode,
    "queue_url": _require_scheme(QUEUE_SCHEMES, allow_empty=True),
    "processor_url": _require_scheme(PROCESSOR_SCHEMES),
    "processor_timeout_s": _at_least(0.1),
    "offline_max_transaction_amount": _at_least(1),
    "offline_max_total_amount": _at_least(1),
    "offline_max_count": _at_least(1),
    "offline_max_age_s": _at_least(1),
    "console_host": _non_empty,
    "console_port": _port,
}


def _toml_values(path: Path) -> dict[str, tuple[Any, str]]:
    origin = path.name
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such configuration file", key=None, path=str(path)) from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text", key=None, path=str(path)) from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read: {error.strerror}", key=None, path=str(path)) from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{origin}: not valid TOML: {error}", key=None, path=str(path)) from None
    by_label = {(key.section, key.name): key for key in KEYS}
    sections = {key.section for key in KEYS if key.section}
    values: dict[str, tuple[Any, str]] = {}
    for name, value in document.items():
        if isinstance(value, dict) and name in sections:
            for inner, inner_value in value.items():
                key = by_label.get((name, inner))
                if key is None:
                    known = ", ".join(k.name for k in KEYS if k.section == name)
                    raise ConfigError(
                        f"{origin}: [{name}] {inner}: unknown key (known: {known})", key=f"[{name}] {inner}"
                    )
                values[key.flat] = (inner_value, f"{origin}: {key.label}")
        elif (None, name) in by_label:
            values[name] = (value, f"{origin}: {name}")
        else:
            known = ", ".join(sorted(sections) + [k.name for k in KEYS if k.section is None])
            raise ConfigError(f"{origin}: {name}: unknown key or section (known: {known})", key=name)
    return values


def find_config_file(explicit: str | Path | None, environ: Mapping[str, str]) -> Path | None:
    """The TOML file: ``explicit``, else ``$POSBRIDGE_CONFIG``, else ``./posbridge.toml`` if present."""
    if explicit:
        return Path(explicit)
    if environ.get(CONFIG_ENV):
        return Path(environ[CONFIG_ENV])
    local = Path(DEFAULT_CONFIG_NAME)
    return local if local.is_file() else None


def load_config(
    path: str | Path | None = None, *, environ: Mapping[str, str] | None = None, **overrides: Any
) -> Config:
    """Read the configuration: ``overrides`` > ``POSBRIDGE_*`` in ``environ`` > the TOML file > defaults.

    ``overrides`` use flat names (``queue_url=...``, ``console_port=0``, ``state_dir=...``).
    Raises :class:`ConfigError` (with ``key``) naming the source and key of the first bad value.
    """
    environ = os.environ if environ is None else environ
    flat_keys = {key.flat: key for key in KEYS}
    unknown = sorted(set(overrides) - set(flat_keys))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown configuration keyword", key=unknown[0])
    config_file = find_config_file(path, environ)
    raw: dict[str, tuple[Any, str, bool]] = {}
    if config_file is not None:
        for flat, (value, origin) in _toml_values(config_file).items():
            raw[flat] = (value, origin, False)
    for key in KEYS:
        if key.env in environ:
            raw[key.flat] = (environ[key.env], key.env, True)
    for flat, value in overrides.items():
        raw[flat] = (value, f"keyword {flat}", False)

    converted: dict[str, Any] = {}
    for flat, (value, origin, from_text) in raw.items():
        key = flat_keys[flat]
        try:
            typed = _convert(key, value, from_text)
            validator = _VALIDATORS.get(flat)
            if validator is not None:
                validator(typed)
        except ValueError as error:
            raise ConfigError(f"{origin}: {error}", key=key.label, origin=origin) from None
        converted[flat] = typed

    sections: dict[str, dict[str, Any]] = {}
    top: dict[str, Any] = {}
    for flat, typed in converted.items():
        key = flat_keys[flat]
        if key.section:
            sections.setdefault(key.section, {})[key.name] = typed
        else:
            top[key.name] = typed
    hints = get_type_hints(Config)
    for section, values in sections.items():
        top[section] = hints[section](**values)
    return Config(**top)
