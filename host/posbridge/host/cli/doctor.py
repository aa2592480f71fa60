"""``posbridge doctor``: check that this machine can run the configured lane (issue 8, "On a Raspberry Pi").

Checks the configuration, the audio inputs, the BLE adapter, the dongles' serial devices, the
clock (card expiry and the offline age limit depend on it), free disk in the state directory,
the device key file's permissions (PCI DSS 3.6: keys readable by the service account only), the
console's port and the processor. Each finding says what is wrong and how to fix it. Exit code
1 when any check fails; warnings alone exit 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import stat
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from posbridge.host.cli._output import add_output_options, emit_json, emit_line

if TYPE_CHECKING:
    from posbridge.host.config import Config

COMMAND = "doctor"
HELP = "check audio, BLE adapter, serial device, clock, disk, key and registry files; say how to fix them"

OK, WARN, FAIL, SKIP = "ok", "warn", "FAIL", "skip"
MIN_FREE_BYTES = 100 * 1024 * 1024
LOW_FREE_BYTES = 1024 * 1024 * 1024
EARLIEST_PLAUSIBLE_TIME = 1_735_689_600.0  # 2025-01-01 UTC: a Pi without an RTC boots far before it


@dataclass(frozen=True)
class Finding:
    """One check's outcome: ``status`` ok, warn, FAIL or skip; ``fix`` says what to do."""

    check: str
    status: str
    detail: str
    fix: str = ""

    def line(self) -> str:
        """One human-readable line."""
        fix = f" -- fix: {self.fix}" if self.fix else ""
        return f"{self.status:<4} {self.check}: {self.detail}{fix}"


def register(parser: argparse.ArgumentParser) -> None:
    """Add ``--config`` and the output options."""
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="TOML configuration (default: $POSBRIDGE_CONFIG, else ./posbridge.toml)")
    add_output_options(parser, reveal=False)
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Run every check; 1 if any failed."""
    from posbridge.host.config import load_config

    config = load_config(args.config)
    findings = list(diagnose(config))
    for finding in findings:
        if args.json:
            emit_json({"check": finding.check, "status": finding.status.lower(), "detail": finding.detail,
                       "fix": finding.fix or None})
        else:
            emit_line(finding.line())
    failed = [finding for finding in findings if finding.status == FAIL]
    if not args.json:
        emit_line(f"{len(failed)} problem(s) found" if failed else "all checks passed")
    return 1 if failed else 0


def diagnose(config: Config) -> Iterator[Finding]:
    """Every finding for ``config``, in a fixed order."""
    yield from _audio(config)
    yield from _bluetooth(config)
    yield from _serial(config)
    yield _clock()
    yield _disk(config)
    yield _key_file(config)
    yield _registry(config)
    yield _console_port(config)
    yield _processor(config)


def _audio(config: Config) -> Iterator[Finding]:
    urls = [*config.audio.readers, *config.chip.readers]
    if not urls:
        yield Finding("audio", SKIP, "no [audio] or [chip] readers configured")
        return
    from posbridge.hardware.audio.source import open_audio
    from posbridge.protocols.errors import PosBridgeError

    for url in urls:
        try:
            with open_audio(url) as source:
                block = source.read()
        except PosBridgeError as error:
            fix = ("list inputs with `posbridge devices` or `arecord -l`, put the reader's card in the URL "
                   "(device://hw:CARD,DEV), and add the service user to the audio group")
            yield Finding("audio", FAIL, f"{url}: {error}", fix)
            continue
        if block is None:
            yield Finding("audio", WARN, f"{url}: opened but delivered no audio",
                          "check the cable and the input gain")
        else:
            yield Finding("audio", OK, f"{url}: {source.rate} Hz x{source.channels}, audio flowing")


def _bluetooth(config: Config) -> Iterator[Finding]:
    url = config.scanner.url
    if not url.startswith("bleak://"):
        detail = f"{url} needs no adapter" if url else "no bleak:// scanner configured"
        yield Finding("bluetooth", SKIP, detail)
        return
    adapter = url.removeprefix("bleak://").split("?")[0] or "hci0"
    sysfs = Path("/sys/class/bluetooth") / adapter
    if not sysfs.exists():
        yield Finding("bluetooth", FAIL, f"adapter {adapter} not found",
                      "plug in or enable the Bluetooth adapter (`hciconfig -a`, `bluetoothctl list`), or set "
                      "[scanner] url to the adapter that exists")
        return
    for rfkill in Path("/sys/class/rfkill").glob("rfkill*"):
        kind = (rfkill / "type").read_text().strip() if (rfkill / "type").exists() else ""
        soft = (rfkill / "soft").read_text().strip() if (rfkill / "soft").exists() else "0"
        if kind == "bluetooth" and soft == "1":
            yield Finding("bluetooth", FAIL, f"adapter {adapter} is blocked by rfkill",
                          "sudo rfkill unblock bluetooth")
            return
    if not Path("/run/dbus/system_bus_socket").exists():
        yield Finding("bluetooth", FAIL, "the D-Bus system bus is not running (bleak talks to BlueZ over it)",
                      "sudo systemctl enable --now dbus bluetooth")
        return
    yield Finding("bluetooth", OK, f"adapter {adapter} present and unblocked")


def _serial(config: Config) -> Iterator[Finding]:
    if not config.dongles.links:
        yield Finding("serial", SKIP, "no [dongles] links configured")
        return
    for link in config.dongles.links:
        if "://" in link:
            yield Finding("serial", SKIP, f"{link} is not a local serial device")
            continue
        path = Path(link)
        if not path.exists():
            yield Finding("serial", FAIL, f"{link} does not exist (dongle unplugged or udev rule missing)",
                          "plug the dongle in; copy deploy/99-posbridge-dongle.rules to /etc/udev/rules.d/ "
                          "and run `sudo udevadm control --reload && sudo udevadm trigger`")
        elif not os.access(path, os.R_OK | os.W_OK):
            yield Finding("serial", FAIL, f"{link}: no read/write permission for this user",
                          "add the service user to the device's group (`ls -l` it: dialout or posbridge)")
        else:
            yield Finding("serial", OK, f"{link} present and writable")


def _clock() -> Finding:
    now = time.time()
    if now < EARLIEST_PLAUSIBLE_TIME:
        return Finding("clock", FAIL, f"the system clock says {time.strftime('%Y-%m-%d', time.gmtime(now))}",
                       "enable NTP (`sudo timedatectl set-ntp true`) or fit an RTC; card expiry needs it")
    if shutil.which("timedatectl"):
        try:
            answer = subprocess.run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"],
                                    capture_output=True, text=True, timeout=5, check=False).stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            answer = ""
        if answer == "no":
            return Finding("clock", WARN, "the clock is not synchronized with NTP",
                           "sudo timedatectl set-ntp true")
        if answer == "yes":
            return Finding("clock", OK, "synchronized with NTP")
    return Finding("clock", OK, f"plausible ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(now))})")


def _existing_parent(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _disk(config: Config) -> Finding:
    where = _existing_parent(config.state_dir)
    free = shutil.disk_usage(where).free
    text = f"{free / 2**20:,.0f} MiB free at {where}"
    if free < MIN_FREE_BYTES:
        return Finding("disk", FAIL, text, "free space (`sudo journalctl --vacuum-size=100M`, `apt clean`) "
                       "or use a bigger SD card; the queue needs room to store payments offline")
    if free < LOW_FREE_BYTES:
        return Finding("disk", WARN, text, "free some space before the queue needs it")
    return Finding("disk", OK, text)


def _private_file(check: str, path: Path, what: str) -> Finding | None:
    """A FAIL finding when ``path`` is readable by others or owned by another user, else None."""
    info = path.stat()
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        return Finding(check, FAIL, f"{path} has mode {mode:04o}: other users can read {what}",
                       f"chmod 600 {path}")
    if info.st_uid != os.geteuid():
        return Finding(check, FAIL, f"{path} is owned by uid {info.st_uid}, not by uid {os.geteuid()}",
                       f"chown it to the service user (sudo chown posbridge: {path})")
    return None


def _key_file(config: Config) -> Finding:
    path = config.key_path
    if not path.exists():
        parent = _existing_parent(path.parent)
        if not os.access(parent, os.W_OK):
            return Finding("key file", FAIL, f"{path} is missing and {parent} is not writable",
                           f"create {path.parent} owned by the service user (systemd's StateDirectory does)")
        return Finding("key file", OK, f"{path} will be created with mode 0600 on first run")
    problem = _private_file("key file", path, "the device key")
    return problem or Finding("key file", OK, f"{path} readable by this user only")


def _registry(config: Config) -> Finding:
    if not config.customers.registry:
        return Finding("customers", SKIP, "no [customers] registry configured")
    path = Path(config.customers.registry)
    if not path.exists():
        return Finding("customers", FAIL, f"{path} does not exist",
                       "write the registry (see `posbridge checkin --help`) or fix [customers] registry")
    problem = _private_file("customers", path, "account tokens and beacon keys")
    if problem is not None:
        return problem
    from posbridge.host.customers import CustomerRegistry
    from posbridge.protocols.errors import PosBridgeError

    try:
        registry = CustomerRegistry.load(path)
    except PosBridgeError as error:
        return Finding("customers", FAIL, str(error), "fix the file; each customer needs an id and beacons")
    return Finding("customers", OK, f"{path}: {len(registry)} customer(s)")


def _console_port(config: Config) -> Finding:
    if not config.console.enabled:
        return Finding("console", SKIP, "console disabled")
    address = f"{config.console.host}:{config.console.port}"
    try:
        with socket.socket(socket.AF_INET6 if ":" in config.console.host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((config.console.host, config.console.port))
    except OSError as error:
        return Finding("console", WARN, f"cannot listen on {address}: {error.strerror}",
                       "stop whatever uses the port (is posbridge already running?) or change [console] port")
    loopback = config.console.host in ("127.0.0.1", "::1", "localhost")
    if not loopback and not config.console.token:
        return Finding("console", FAIL, f"{address} is reachable from the network without a token: anyone "
                       "on it could take payments", "set [console] token (POSBRIDGE_CONSOLE_TOKEN) to a long "
                       "random string, e.g. `openssl rand -hex 16`")
    return Finding("console", OK, f"{address} is free")


def _processor(config: Config) -> Finding:
    url = config.processor.url
    try:
        with urllib.request.urlopen(url, timeout=min(config.processor.timeout_s, 3.0)):
            pass
    except urllib.error.HTTPError:
        pass  # it answered: reachable
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        return Finding("processor", WARN, f"{url} unreachable ({reason}); payments will wait offline",
                       "check the network and [processor] url")
    return Finding("processor", OK, f"{url} reachable")
