"""open_link: pyserial backends (loop://, socket://, ptys), the fault-injecting wrapper, NullModem."""

from __future__ import annotations

import socket
import threading

import pytest
from posbridge.hardware.link import FaultyLink, NullModem, SerialLink, open_link
from posbridge.protocols.errors import DeviceDisconnected, DeviceNotFound, UsageError


def _read_exactly(link: SerialLink | FaultyLink, count: int, attempts: int = 200) -> bytes:
    data = b""
    for _ in range(attempts):
        if len(data) >= count:
            break
        chunk = link.read(count - len(data))
        if data and not chunk:
            break
        data += chunk
    return data


def test_loop_url_round_trip() -> None:
    with open_link("loop://") as link:
        link.write(b"hello\x00")
        assert _read_exactly(link, 6) == b"hello\x00"
        assert link.read() == b""
        assert link.bytes_written == 6
        assert link.bytes_read == 6
    with pytest.raises(DeviceDisconnected):
        link.write(b"x")


def test_missing_device_is_device_not_found() -> None:
    with pytest.raises(DeviceNotFound):
        open_link("/dev/posbridge-no-such-tty")


@pytest.mark.parametrize(
    "url",
    [
        "",
        "nosuchscheme://x",
        "fault://?drop=0.5",
        "fault://?drop=2&url=loop://",
        "fault://?bogus=1&url=loop://",
        "fault://?drop=x&url=loop://",
        "/dev/ttyACM0?parity=E",
    ],
)
def test_bad_urls_are_usage_errors(url: str) -> None:
    with pytest.raises(UsageError):
        open_link(url)


def test_null_modem_joins_two_pyserial_ends() -> None:
    with NullModem() as cable, open_link(cable.paths[0]) as left, open_link(cable.paths[1]) as right:
        left.write(b"to the host")
        assert _read_exactly(right, 11) == b"to the host"
        right.write(b"ACK")
        assert _read_exactly(left, 3) == b"ACK"


def test_device_path_takes_a_baudrate() -> None:
    with NullModem() as cable, open_link(f"{cable.paths[0]}?baudrate=9600") as link:
        assert isinstance(link, SerialLink)
        assert link.port.baudrate == 9600


def test_fault_wrapper_drops_corrupts_and_duplicates_reproducibly() -> None:
    payload = bytes(range(256)) * 12
    outputs = []
    for _ in range(2):
        with open_link(
            "fault://?corrupt=0.05&drop=0.05&duplicate=0.05&seed=11&direction=tx&url=loop://"
        ) as link:
            assert isinstance(link, FaultyLink)
            link.write(payload)
            outputs.append(_read_exactly(link, len(payload) + 1000, attempts=30))
            faults = dict(link.faults)
    assert outputs[0] == outputs[1]
    assert outputs[0] != payload
    for kind in ("corrupt", "drop", "duplicate"):
        assert 0.025 * len(payload) < faults[kind] < 0.08 * len(payload), kind
    assert len(outputs[0]) == len(payload) - faults["drop"] + faults["duplicate"]


def test_fault_wrapper_damages_received_bytes_too() -> None:
    inner = open_link("loop://")
    with FaultyLink(inner, drop=1.0, direction="rx") as link:
        link.write(b"abc")
        assert link.read() == b""
        assert link.faults["drop"] == 3


def test_fault_wrapper_splits_writes_without_changing_bytes() -> None:
    with open_link("fault://?split=1&delay_ms=1&seed=2&url=loop://") as link:
        link.write(b"0123456789")
        assert _read_exactly(link, 10) == b"0123456789"
        assert link.faults["split"] == 1


def test_socket_peer_closing_is_a_disconnect() -> None:
    server = socket.create_server(("127.0.0.1", 0))
    port = server.getsockname()[1]

    def serve() -> None:
        connection, _ = server.accept()
        connection.recv(1)
        connection.sendall(b"hi")
        connection.close()

    thread = threading.Thread(target=serve)
    thread.start()
    with open_link(f"socket://127.0.0.1:{port}") as link:
        link.write(b"?")
        assert _read_exactly(link, 2) == b"hi"
        thread.join()
        with pytest.raises(DeviceDisconnected):
            _read_exactly(link, 1, attempts=100)
    server.close()
