"""The customer registry: TOML and JSON files, lookups, validation, secrets kept out of repr."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from posbridge.host.customers import Customer, CustomerRegistry
from posbridge.protocols.beacons import EidRegistration
from posbridge.protocols.errors import ConfigError

TOML = """
[[customers]]
id = "cust-0001"
name = "Ada Lovelace"
account_token = "tok_test_ada"
beacons = ["iBeacon:E2C56DB5DFFB48D2B060D0F5A71096E0:1:1"]
eid = [{ identity_key = "0102030405060708090a111213141516", rotation_exponent = 10, epoch = 1764115200 }]

[[customers]]
id = "cust-0002"
beacons = ["eddystone-uid:00112233445566778899:000000000001"]
"""


def test_toml_registry(tmp_path: Path) -> None:
    path = tmp_path / "customers.toml"
    path.write_text(TOML)
    registry = CustomerRegistry.load(path)
    ada = registry.by_beacon("ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:1")
    assert ada is not None
    assert (ada.id, ada.name, ada.account_token) == ("cust-0001", "Ada Lovelace", "tok_test_ada")
    eid_id = EidRegistration(bytes.fromhex("0102030405060708090a111213141516"), 10).beacon_id
    assert registry.by_beacon(eid_id) is ada
    assert ada.beacons[-1] == str(eid_id)
    assert registry.eid_registrations()[0].epoch == 1764115200
    second = registry.get("cust-0002")
    assert second.name == "cust-0002"
    assert second.account_token is None
    assert [customer.id for customer in registry.customers()] == ["cust-0001", "cust-0002"]
    assert registry.by_beacon("ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:2") is None
    with pytest.raises(KeyError):
        registry.get("cust-9999")
    assert "tok_test_ada" not in repr(ada)
    assert "0102030405" not in repr(registry.eid_registrations())


def test_json_registry(tmp_path: Path) -> None:
    path = tmp_path / "customers.json"
    data = {
        "customers": [
            {"id": "c1", "name": "Bo", "beacons": ["altbeacon:2F234454CF6D4A0FADF2F4911BA9FFA6:1:2"]}
        ]
    }
    path.write_text(json.dumps(data))
    registry = CustomerRegistry.load(path)
    assert registry.by_beacon("altbeacon:2f234454cf6d4a0fadf2f4911ba9ffa6:1:2") == Customer(
        "c1", "Bo", ("altbeacon:2f234454cf6d4a0fadf2f4911ba9ffa6:1:2",), None
    )
    assert len(registry) == 1


@pytest.mark.parametrize(
    ("content", "key"),
    [
        ('{"customers": {}}', "customers"),
        ('{"customers": [{"name": "x"}]}', "customers[0].id"),
        ('{"customers": [{"id": "a", "beacons": ["mac:aa"]}]}', "customers[0].beacons"),
        ('{"customers": [{"id": "a", "beacons": "ibeacon"}]}', "customers[0].beacons"),
        ('{"customers": [{"id": "a"}, {"id": "a"}]}', "customers.id"),
        (
            '{"customers": [{"id": "a", "beacons": ["eddystone-eid:0011223344556677"]},'
            ' {"id": "b", "beacons": ["eddystone-eid:0011223344556677"]}]}',
            "customers.beacons",
        ),
        ('{"customers": [{"id": "a", "eid": [{"identity_key": "00"}]}]}', "customers[0].eid[0]"),
        (
            '{"customers": [{"id": "a", "eid": [{"identity_key": "00", "rotation_exponent": 1}]}]}',
            "customers[0].eid[0]",
        ),
        ("{not json", "customers.registry"),
    ],
)
def test_bad_registries_name_the_key(tmp_path: Path, content: str, key: str) -> None:
    path = tmp_path / "customers.json"
    path.write_text(content)
    with pytest.raises(ConfigError) as caught:
        CustomerRegistry.load(path)
    assert caught.value.key == key


def test_missing_registry_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        CustomerRegistry.load(tmp_path / "nope.toml")
