"""Check-in on replayed scenes: visitors, passers-by, staff, address rotation, loss, fades, calibration."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from posbridge.hardware.ble.scene import Path, Radio, SimBeacon
from posbridge.host.checkin import CheckInSettings, CheckInTracker
from posbridge.host.customers import Customer, CustomerRegistry
from posbridge.protocols.beacons import EddystoneUid, EidRegistration, IBeacon, Sighting, build_advertisement
from posbridge.protocols.types import CheckIn, CheckOut, Zone

from .conftest import arrival_and_departure, feed, ibeacon, scene, visit_path


def registry_for(*beacons: SimBeacon) -> CustomerRegistry:
    customers = [
        Customer(f"cust-{index}", f"Customer {index}", (str(beacon.beacon_id),), f"tok_{index}")
        for index, beacon in enumerate(beacons)
    ]
    eids = [beacon.eid for beacon in beacons if beacon.eid is not None]
    return CustomerRegistry(customers, eids)


def test_a_customer_walks_to_the_counter_stays_and_leaves() -> None:
    path = visit_path(stay=40.0)
    customer = SimBeacon(ibeacon(1), path, Radio(interval_s=0.2, loss=0.2, shadowing_db=4.0))
    events = feed(CheckInTracker(registry_for(customer)), scene([customer]))
    arrive, leave = arrival_and_departure(path)
    check_in, check_out = events
    assert isinstance(check_in, CheckIn)
    assert check_in.customer == "cust-0"
    assert check_in.beacon == customer.beacon_id
    assert check_in.zone is Zone.COUNTER
    assert arrive - 3 <= check_in.t <= arrive + 5
    assert check_in.distance_m is not None
    assert check_in.distance_m < 1.6
    assert isinstance(check_out, CheckOut)
    assert leave < check_out.t <= leave + 20
    assert check_out.zone in (Zone.SHOP, Zone.GONE)


def test_passers_by_outside_are_never_checked_in() -> None:
    walkers = [
        SimBeacon(ibeacon(10 + index), Path.route(index * 3.0, [(-30.0, y, 0.0), (30.0, y, 0.0)], speed=1.3))
        for index, y in enumerate((5.0, -6.0, 8.0, 12.0))
    ]
    assert feed(CheckInTracker(registry_for(*walkers)), scene(walkers)) == []


def test_staff_moving_around_the_shop_floor_are_never_checked_in() -> None:
    import math

    angles = [0, 50, 100, 150, 100, 50, 0, -50]  # stops 4.5 m out; the walks between stay >= 3.5 m away
    stops = [(4.5 * math.cos(math.radians(a)), 4.5 * math.sin(math.radians(a)), 25.0) for a in angles]
    staff = [
        SimBeacon(ibeacon(20), Path.route(0.0, stops, speed=0.8), Radio(interval_s=0.1, loss=0.1)),
        SimBeacon(ibeacon(21), Path.route(0.0, stops[::-1], speed=0.8), Radio(interval_s=1.0, loss=0.3)),
    ]
    tracker = CheckInTracker(registry_for(*staff))
    assert feed(tracker, scene(staff, seed=9)) == []


def test_address_rotation_does_not_split_a_visit() -> None:
    path = visit_path(stay=40.0)
    customer = SimBeacon(ibeacon(2), path, Radio(interval_s=0.15, loss=0.2), rotate_address_s=3.0)
    adverts = scene([customer])
    assert len({advertisement.address for advertisement in adverts}) > 10
    events = feed(CheckInTracker(registry_for(customer)), adverts)
    assert [event.event for event in events] == ["check_in", "check_out"]


@pytest.mark.parametrize(
    ("interval_s", "loss"),
    [(0.1, 0.1), (0.1, 0.5), (0.5, 0.3), (1.0, 0.1), (1.0, 0.5)],
)
def test_loss_and_advertising_intervals(interval_s: float, loss: float) -> None:
    path = visit_path(spot=(0.4, 0.2), stay=40.0)
    customer = SimBeacon(ibeacon(3), path, Radio(interval_s=interval_s, loss=loss, shadowing_db=3.0))
    events = feed(CheckInTracker(registry_for(customer)), scene([customer], seed=11))
    arrive, leave = arrival_and_departure(path)
    assert [event.event for event in events] == ["check_in", "check_out"]
    assert events[0].t <= arrive + 8
    assert leave < events[1].t <= leave + 20


@pytest.mark.parametrize("shadowing_db", [3.0, 6.0])
def test_shadowing_and_deep_fades_do_not_check_a_waiting_customer_out(shadowing_db: float) -> None:
    path = visit_path(spot=(0.6, 0.0), stay=90.0)
    noisy = Radio(interval_s=0.2, loss=0.3, shadowing_db=shadowing_db, fade_fraction=0.1, fade_mean_s=1.0)
    customer = SimBeacon(ibeacon(4), path, noisy)
    events = feed(CheckInTracker(registry_for(customer)), scene([customer], seed=3))
    assert [event.event for event in events] == ["check_in", "check_out"]


@pytest.mark.parametrize("power_error_db", [-3.0, 3.0])
def test_beacons_with_a_miscalibrated_one_metre_power(power_error_db: float) -> None:
    path = visit_path(spot=(0.5, 0.0), stay=30.0)
    customer = SimBeacon(ibeacon(5), path, Radio(interval_s=0.2, loss=0.2, power_error_db=power_error_db))
    far = SimBeacon(
        ibeacon(6),
        Path.route(0.0, [(3.6, 0.5, 120.0)]),
        Radio(interval_s=0.2, power_error_db=-power_error_db),
    )
    events = feed(CheckInTracker(registry_for(customer, far)), scene([customer, far], seed=4))
    assert [(event.event, event.beacon) for event in events] == [
        ("check_in", customer.beacon_id),
        ("check_out", customer.beacon_id),
    ]


def test_a_beacon_that_falls_silent_at_the_counter_times_out_as_gone() -> None:
    path = Path.route(0.0, [(0.5, 0.0, 20.0)])
    customer = SimBeacon(ibeacon(7), path, Radio(interval_s=0.2, loss=0.1))
    tracker = CheckInTracker(registry_for(customer))
    adverts = scene([customer])
    events = feed(tracker, adverts, flush=False)
    last = adverts[-1]
    timeout = tracker.settings.gone_timeout_s
    assert tracker.expire(last.t + timeout - 0.1) == []
    (gone,) = tracker.expire(last.t + timeout + 0.1)
    assert [event.event for event in events] == ["check_in"]
    assert isinstance(gone, CheckOut)
    assert gone.zone is Zone.GONE
    assert gone.t == pytest.approx(last.t + timeout)
    assert tracker.zones() == {}


def test_unregistered_beacons_produce_nothing_and_leave_no_trace() -> None:
    registered = SimBeacon(ibeacon(8), visit_path(), Radio(interval_s=0.2))
    stranger = SimBeacon(ibeacon(9), visit_path(start=5.0), Radio(interval_s=0.2))
    tracker = CheckInTracker(registry_for(registered))
    events = feed(tracker, scene([registered, stranger]), flush=False)
    assert {event.beacon for event in events} == {registered.beacon_id}
    assert set(tracker.zones()) <= {registered.beacon_id}
    assert tracker.distance_m(stranger.beacon_id) is None


def test_any_beacon_tracks_everyone_without_a_customer() -> None:
    stranger = SimBeacon(EddystoneUid(-20, "00112233445566778899", "0000000000aa"), visit_path(), Radio())
    events = feed(CheckInTracker(any_beacon=True), scene([stranger]))
    assert [(event.event, event.customer) for event in events] == [("check_in", None), ("check_out", None)]


def test_eddystone_eid_beacons_resolve_to_their_registered_id_across_rotations() -> None:
    registration = EidRegistration(bytes(range(16)), rotation_exponent=3, epoch=-1000.0)
    customer = SimBeacon(None, visit_path(stay=40.0), Radio(interval_s=0.2), eid=registration)
    adverts = scene([customer])
    eids = {
        advertisement.service_data[next(iter(advertisement.service_data))][2:] for advertisement in adverts
    }
    assert len(eids) > 5
    events = feed(CheckInTracker(registry_for(customer)), adverts)
    assert [(event.event, event.beacon, event.customer) for event in events] == [
        ("check_in", registration.beacon_id, "cust-0"),
        ("check_out", registration.beacon_id, "cust-0"),
    ]
    assert feed(CheckInTracker(CustomerRegistry([])), adverts) == []


def test_telemetry_only_adverts_are_ignored() -> None:
    from posbridge.protocols.beacons import EddystoneTlm

    advertisement = build_advertisement([EddystoneTlm(3000, 21.5, 10, 100)], t=1.0, address="A", rssi=-40)
    frames = (EddystoneTlm(3000, 21.5, 10, 100),)
    assert CheckInTracker(any_beacon=True).observe(Sighting(advertisement, frames)) == []


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="counter_enter_m"):
        CheckInSettings(counter_enter_m=3.0, counter_exit_m=2.0)
    with pytest.raises(ValueError, match="positive"):
        CheckInSettings(gone_timeout_s=0.0)
    with pytest.raises(ValueError, match="packet counts"):
        CheckInSettings(rise_min_packets=0)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.floats(0.0, 3.0), st.integers(0, 2), st.integers(-110, 0), st.integers(-80, -40)),
        max_size=150,
    )
)
def test_any_sequence_of_sightings_gives_alternating_events_per_beacon(
    steps: list[tuple[float, int, int, int]],
) -> None:
    tracker = CheckInTracker(any_beacon=True)
    t = 0.0
    events = []
    for gap, minor, rssi, power in steps:
        t += gap
        frame = ibeacon(minor)
        advertisement = build_advertisement([frame], t=t, address=f"AA:{minor}", rssi=rssi)
        events.extend(tracker.observe(Sighting(advertisement, (IBeacon(frame.uuid, 7, minor, power),))))
    events.extend(tracker.flush())
    assert tracker.zones() == {}
    for minor in range(3):
        kinds = [event.event for event in events if event.beacon == ibeacon(minor).beacon_id]
        assert kinds == ["check_in", "check_out"] * (len(kinds) // 2)
    assert [event.t for event in events if event.zone is not Zone.GONE] == sorted(
        event.t for event in events if event.zone is not Zone.GONE
    )


def sightings_at_levels(levels: list[tuple[float, int]], minor: int = 30) -> list[Sighting]:
    """One packet per ``(t, relative level dB)`` from a beacon advertising -59 dBm at 1 m."""
    frame = ibeacon(minor)
    return [
        Sighting(build_advertisement([frame], t=t, address="AA:01", rssi=-59 + level), (frame,))
        for t, level in levels
    ]


def first_check_in(settings: CheckInSettings | None, sightings: list[Sighting]) -> float | None:
    tracker = CheckInTracker(any_beacon=True, settings=settings)
    events = [event for sighting in sightings for event in tracker.observe(sighting)]
    return next((event.t for event in events if isinstance(event, CheckIn)), None)


def test_walking_up_checks_a_slow_noisy_beacon_in_sooner_than_its_level_alone() -> None:
    import math

    approach = [(float(t), -25) for t in range(12)]
    at_counter = [(12.0 + 1.5 * k, -4 if k % 2 else 0) for k in range(12)]
    sightings = sightings_at_levels(approach + at_counter)
    with_rise = first_check_in(None, sightings)
    levels_only = first_check_in(CheckInSettings(rise_db=math.inf), sightings)
    assert with_rise is not None
    assert with_rise <= 12.0 + 3.0
    assert levels_only is None or levels_only > 12.0 + 3.0


def test_a_rise_that_stays_below_the_counter_level_does_not_check_in() -> None:
    far_away = [(float(t), -35) for t in range(12)]
    shop_floor = [(12.0 + 0.5 * k, -9 + (3 if k % 2 else -3)) for k in range(120)]
    assert first_check_in(None, sightings_at_levels(far_away + shop_floor)) is None


def test_cautious_mode_does_not_check_in_a_bystander_on_two_lucky_packets() -> None:
    from posbridge.host.checkin import CHECK_IN_MODES

    far_away = [(0.5 * k, -24) for k in range(24)]
    lucky_then_far = [(12.0, -10), (12.3, -1), (12.7, 4)] + [(13.0 + 0.5 * k, -14) for k in range(40)]
    sightings = sightings_at_levels(far_away + lucky_then_far)
    assert first_check_in(CHECK_IN_MODES["quick"], sightings) == 12.7
    assert first_check_in(CHECK_IN_MODES["cautious"], sightings) is None


def test_cautious_mode_checks_a_visitor_in_one_packet_later() -> None:
    from posbridge.host.checkin import CHECK_IN_MODES

    approach = [(float(t), -25) for t in range(12)]
    at_counter = [(12.0 + 1.5 * k, 2) for k in range(8)]
    sightings = sightings_at_levels(approach + at_counter)
    assert first_check_in(CHECK_IN_MODES["quick"], sightings) == 13.5
    assert first_check_in(CHECK_IN_MODES["cautious"], sightings) == 15.0
