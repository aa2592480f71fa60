"""A private D-Bus system bus with python-dbusmock's ``bluez5`` template, for bleak's real BlueZ backend.

The fixture starts ``dbus-daemon`` with a temporary system-bus configuration, points
``DBUS_SYSTEM_BUS_ADDRESS`` at it, and runs ``python -m dbusmock --system -t bluez5`` there.
:class:`MockBlueZ` adds an adapter and beacon devices. The template's ``AddDevice`` declares
``ManufacturerData``/``ServiceData`` with the wrong D-Bus types, so devices are added with
``AddObject`` and the right ones (``a{qv}`` / ``a{sv}`` holding ``ay``) and ``InterfacesAdded``
is emitted here, as bluetoothd does.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

dbus = pytest.importorskip("dbus")

BUS_CONFIG = """<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path={socket}</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
    <allow send_type="method_return"/>
    <allow send_type="error"/>
    <allow receive_type="method_call"/>
    <allow receive_type="signal"/>
    <allow receive_type="method_return"/>
    <allow receive_type="error"/>
  </policy>
</busconfig>
"""

DEVICE_IFACE = "org.bluez.Device1"
MOCK_IFACE = "org.freedesktop.DBus.Mock"


class MockBlueZ:
    """Controls the mocked bluetoothd from the test (through dbus-python on the private bus)."""

    def __init__(self, address: str) -> None:
        self.bus = dbus.bus.BusConnection(address)
        self.root = dbus.Interface(self.bus.get_object("org.bluez", "/"), MOCK_IFACE)
        self.bluez = dbus.Interface(self.bus.get_object("org.bluez", "/org/bluez"), "org.bluez.Mock")

    def add_adapter(self, name: str = "hci0") -> str:
        return str(self.bluez.AddAdapter(name, "posbridge test"))

    def adapter_mock(self, name: str = "hci0") -> Any:
        return dbus.Interface(self.bus.get_object("org.bluez", f"/org/bluez/{name}"), MOCK_IFACE)

    def add_beacon(
        self,
        address: str,
        rssi: int,
        manufacturer_data: dict[int, bytes] | None = None,
        service_data: dict[str, bytes] | None = None,
        adapter: str = "hci0",
    ) -> str:
        """Add a device object the way bluetoothd does when it hears a new advertiser."""
        path = f"/org/bluez/{adapter}/dev_{address.replace(':', '_')}"
        uuids = list(service_data or {})
        properties = {
            "Address": dbus.String(address),
            "AddressType": dbus.String("random"),
            "Alias": dbus.String(address.replace(":", "-")),
            "Adapter": dbus.ObjectPath(f"/org/bluez/{adapter}"),
            "Paired": dbus.Boolean(False),
            "Bonded": dbus.Boolean(False),
            "Trusted": dbus.Boolean(False),
            "Blocked": dbus.Boolean(False),
            "Connected": dbus.Boolean(False),
            "LegacyPairing": dbus.Boolean(False),
            "ServicesResolved": dbus.Boolean(False),
            "RSSI": dbus.Int16(rssi),
            "UUIDs": dbus.Array(uuids, signature="s"),
            "ManufacturerData": dbus.Dictionary(
                {dbus.UInt16(k): dbus.Array(v, signature="y") for k, v in (manufacturer_data or {}).items()},
                signature="qv",
            ),
            "ServiceData": dbus.Dictionary(
                {dbus.String(k): dbus.Array(v, signature="y") for k, v in (service_data or {}).items()},
                signature="sv",
            ),
        }
        self.root.AddObject(path, DEVICE_IFACE, properties, [])
        self.root.EmitSignal(
            "org.freedesktop.DBus.ObjectManager",
            "InterfacesAdded",
            "oa{sa{sv}}",
            [
                dbus.ObjectPath(path),
                dbus.Dictionary(
                    {DEVICE_IFACE: dbus.Dictionary(properties, signature="sv")}, signature="sa{sv}"
                ),
            ],
        )
        return path

    def set_rssi(self, path: str, rssi: int) -> None:
        """Change a device's RSSI (bluetoothd sends PropertiesChanged on each new advert)."""
        device = dbus.Interface(self.bus.get_object("org.bluez", path), MOCK_IFACE)
        device.UpdateProperties(DEVICE_IFACE, {"RSSI": dbus.Int16(rssi)})

    def remove(self, path: str, adapter: str = "hci0") -> None:
        """Drop a device (bluetoothd does so when it stops hearing it); emits InterfacesRemoved."""
        obj = self.bus.get_object("org.bluez", f"/org/bluez/{adapter}")
        dbus.Interface(obj, "org.bluez.Adapter1").RemoveDevice(dbus.ObjectPath(path))

    def calls(self, method: str, adapter: str = "hci0") -> list[Any]:
        """Arguments of every call of ``method`` on the adapter."""
        return [args for _, args in self.adapter_mock(adapter).GetMethodCalls(method)]


def _wait_for_name(address: str, name: str, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    bus = dbus.bus.BusConnection(address)
    try:
        while time.monotonic() < deadline:
            if bus.name_has_owner(name):
                return
            if process.poll() is not None:
                raise RuntimeError(f"dbusmock exited with {process.returncode}")
            time.sleep(0.05)
    finally:
        bus.close()
    raise RuntimeError(f"{name} did not appear on the test bus")


@pytest.fixture
def system_bus(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private system bus; ``DBUS_SYSTEM_BUS_ADDRESS`` points at it for the test."""
    daemon = shutil.which("dbus-daemon")
    if daemon is None:
        pytest.skip("dbus-daemon is not installed (apt-get install dbus)")
    socket = tmp_path / "system_bus_socket"
    config = tmp_path / "system.conf"
    config.write_text(BUS_CONFIG.format(socket=socket))
    process = subprocess.Popen(
        [daemon, f"--config-file={config}", "--nofork", "--print-address"], stdout=subprocess.PIPE
    )
    assert process.stdout is not None
    address = process.stdout.readline().decode().strip()
    monkeypatch.setenv("DBUS_SYSTEM_BUS_ADDRESS", address)
    try:
        yield address
    finally:
        process.terminate()
        process.wait(timeout=10)


@pytest.fixture
def bluez(system_bus: str) -> Iterator[MockBlueZ]:
    """python-dbusmock's bluez5 template on the private system bus, with no adapter yet."""
    env = dict(os.environ, DBUS_SYSTEM_BUS_ADDRESS=system_bus)
    process = subprocess.Popen(
        [sys.executable, "-m", "dbusmock", "--system", "-t", "bluez5"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_name(system_bus, "org.bluez", process)
        yield MockBlueZ(system_bus)
    finally:
        process.terminate()
        process.wait(timeout=10)
