"""The customer registry: which beacon belongs to which customer (issue 6, "Build" 4).

Loaded from a JSON or TOML file (by suffix)::

    [[customers]]
    id = "cust-0001"
    name = "Ada Lovelace"
    account_token = "tok_test_4f9a"          # the customer's stored payment method at the processor
    beacons = ["ibeacon:e2c56db5-dffb-48d2-b060-d0f5a71096e0:1:1"]
    eid = [{ identity_key = "0102030405060708090a111213141516", rotation_exponent = 10, epoch = 1764115200 }]

JSON is the same structure: ``{"customers": [{"id": ..., "beacons": [...], "eid": [...]}]}``.
``beacons`` are canonical beacon ids (any case; see
:func:`posbridge.protocols.beacons.canonical_beacon_id`). ``eid`` registers Eddystone-EID beacons
by identity key, rotation exponent and ``epoch`` (the Unix time at which the beacon's counter was
0); each gets the stable id ``eddystone-eid:<EID at counter 0>``, added to the customer's
``beacons``. The file holds secrets (identity keys, account tokens): keep it readable only by the
user that runs posbridge.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from posbridge.protocols.beacons import EidRegistration, canonical_beacon_id
from posbridge.protocols.errors import ConfigError, KeyMaterialError, ParseError
from posbridge.protocols.types import BeaconId


@dataclass(frozen=True)
class Customer:
    """A registered customer: ``id``, display ``name``, the canonical ids of their ``beacons`` and
    their ``account_token`` at the processor (None: check-in only, no pay-by-check-in)."""

    id: str
    name: str
    beacons: tuple[str, ...]
    account_token: str | None = field(default=None, repr=False)


class CustomerRegistry:
    """Customers by beacon id and by customer id. Build with :meth:`load` or :meth:`from_data`."""

    def __init__(
        self, customers: Iterable[Customer], eid_registrations: Iterable[EidRegistration] = ()
    ) -> None:
        self._customers = tuple(customers)
        self._eids = tuple(eid_registrations)
        self._by_id: dict[str, Customer] = {}
        self._by_beacon: dict[str, Customer] = {}
        for customer in self._customers:
            if customer.id in self._by_id:
                raise ConfigError(f"customer id {customer.id!r} appears twice", key="customers.id")
            self._by_id[customer.id] = customer
            for beacon in customer.beacons:
                owner = self._by_beacon.setdefault(beacon, customer)
                if owner is not customer:
                    raise ConfigError(
                        f"beacon {beacon} belongs to both {owner.id} and {customer.id}",
                        key="customers.beacons",
                    )

    @classmethod
    def load(cls, path: str | Path) -> CustomerRegistry:
        """Read a registry file (``.toml``, else JSON); :class:`ConfigError` names what is wrong."""
        path = Path(path)
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ConfigError(f"customer registry {path} does not exist", key="customers.registry") from None
        except UnicodeDecodeError:
            raise ConfigError(
                f"customer registry {path} is not UTF-8 text", key="customers.registry"
            ) from None
        except OSError as error:
            raise ConfigError(
                f"cannot read customer registry {path}: {error.strerror}", key="customers.registry"
            ) from None
        try:
            data = tomllib.loads(text) if path.suffix.lower() == ".toml" else json.loads(text)
        except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
            raise ConfigError(
                f"customer registry {path} is not valid: {error}", key="customers.registry"
            ) from None
        return cls.from_data(data)

    @classmethod
    def from_data(cls, data: Any) -> CustomerRegistry:
        """Build from the parsed file content (``{"customers": [...]}``)."""
        if not isinstance(data, Mapping) or not isinstance(data.get("customers", []), list):
            raise ConfigError("customer registry must hold a list named 'customers'", key="customers")
        customers: list[Customer] = []
        registrations: list[EidRegistration] = []
        for index, entry in enumerate(data.get("customers", [])):
            customer, eids = _customer(entry, f"customers[{index}]")
            customers.append(customer)
            registrations.extend(eids)
        return cls(customers, registrations)

    def by_beacon(self, beacon_id: str | BeaconId) -> Customer | None:
        """The customer who carries ``beacon_id`` (canonical text), or None."""
        return self._by_beacon.get(str(beacon_id))

    def get(self, customer_id: str) -> Customer:
        """The customer with ``customer_id``; ``KeyError`` if there is none."""
        return self._by_id[customer_id]

    def customers(self) -> tuple[Customer, ...]:
        """Every customer, in file order."""
        return self._customers

    def eid_registrations(self) -> tuple[EidRegistration, ...]:
        """The Eddystone-EID beacons to resolve (their stable ids are in the customers' ``beacons``)."""
        return self._eids

    def __len__(self) -> int:
        return len(self._customers)


def _text(entry: Mapping[str, Any], name: str, where: str, required: bool = True) -> str | None:
    value = entry.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where}.{name} must be non-empty text", key=f"{where}.{name}")
    return value


def _customer(entry: Any, where: str) -> tuple[Customer, list[EidRegistration]]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table/object", key=where)
    customer_id = _text(entry, "id", where)
    assert customer_id is not None
    name = _text(entry, "name", where, required=False) or customer_id
    token = _text(entry, "account_token", where, required=False)
    raw_beacons = entry.get("beacons", [])
    if not isinstance(raw_beacons, list) or not all(isinstance(beacon, str) for beacon in raw_beacons):
        raise ConfigError(f"{where}.beacons must be a list of beacon ids", key=f"{where}.beacons")
    beacons: list[str] = []
    for beacon in raw_beacons:
        try:
            beacons.append(str(canonical_beacon_id(beacon)))
        except ParseError as error:
            raise ConfigError(f"{where}.beacons: {error}", key=f"{where}.beacons") from None
    registrations = [_eid(item, f"{where}.eid[{i}]") for i, item in enumerate(entry.get("eid", []) or [])]
    beacons.extend(str(registration.beacon_id) for registration in registrations)
    return Customer(customer_id, name, tuple(beacons), token), registrations


def _eid(entry: Any, where: str) -> EidRegistration:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"{where} must be a table/object", key=where)
    try:
        key = bytes.fromhex(str(entry["identity_key"]))
        exponent = int(entry["rotation_exponent"])
        epoch = float(entry.get("epoch", 0.0))
        return EidRegistration(key, exponent, epoch)
    except KeyError as missing:
        raise ConfigError(f"{where} needs {missing}", key=where) from None
    except KeyMaterialError as error:
        raise ConfigError(f"{where}: {error}", key=where) from None
    except (TypeError, ValueError):
        raise ConfigError(
            f"{where}: identity_key must be 32 hex digits, rotation_exponent and epoch numbers", key=where
        ) from None
