"""The RAPL powercap reader on fake sysfs trees (the layout Linux creates), and on this machine's real one."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from hwmatch.telemetry.rapl import POWERCAP, RaplMeter, RaplUnavailable

MAX_UJ = 262143328850  # a real package's max_energy_range_uj


def zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX_UJ) -> Path:
    path = root / name
    path.mkdir(parents=True)
    (path / "name").write_text(label + "\n")
    (path / "energy_uj").write_text(f"{energy_uj}\n")
    (path / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return path


@pytest.fixture
def two_sockets(tmp_path: Path) -> Path:
    zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 500_000)  # part of package-0: not summed
    zone(tmp_path, "intel-rapl:1", "package-1", 2_000_000)
    zone(tmp_path, "intel-rapl:2", "psys", 9_000_000)  # contains the packages: not summed
    return tmp_path


def set_energy(root: Path, name: str, uj: int) -> None:
    (root / name / "energy_uj").write_text(f"{uj}\n")


def test_sums_package_zones_only(two_sockets: Path) -> None:
    meter = RaplMeter.open(two_sockets)
    assert [z.name for z in meter.zones] == ["package-0", "package-1"]
    before = meter.read()
    assert before == {"intel-rapl:0": 1_000_000, "intel-rapl:1": 2_000_000}
    set_energy(two_sockets, "intel-rapl:0", 51_000_000)  # +50 J
    set_energy(two_sockets, "intel-rapl:1", 2_500_000)  # +0.5 J
    assert meter.energy_j(before, meter.read()) == pytest.approx(50.5)


def test_wraparound_uses_max_energy_range(tmp_path: Path) -> None:
    zone(tmp_path, "intel-rapl:0", "package-0", MAX_UJ - 3_000_000)
    meter = RaplMeter.open(tmp_path)
    before = meter.read()
    set_energy(tmp_path, "intel-rapl:0", 7_000_000)  # 3 J to the top, wrapped, 7 J more
    assert meter.energy_j(before, meter.read()) == pytest.approx(10.0)


def test_readings_from_another_meter_are_refused(two_sockets: Path) -> None:
    meter = RaplMeter.open(two_sockets)
    with pytest.raises(ValueError, match="intel-rapl:1"):
        meter.energy_j({"intel-rapl:0": 0}, meter.read())


@pytest.mark.parametrize(
    ("layout", "because"),
    [
        ("missing", "does not exist"),
        ("empty", "no intel-rapl:N zone"),
        ("psys-only", "no package zone"),
        ("garbage", "not an integer"),
    ],
)
def test_not_available_says_why(tmp_path: Path, layout: str, because: str) -> None:
    root = tmp_path / "powercap"
    if layout != "missing":
        root.mkdir()
    if layout == "psys-only":
        zone(root, "intel-rapl:0", "psys", 1)
    if layout == "garbage":
        zone(root, "intel-rapl:0", "package-0", 1)
        (root / "intel-rapl:0" / "energy_uj").write_text("n/a\n")
    with pytest.raises(RaplUnavailable, match="not available here, because .*" + because):
        RaplMeter.open(root)


def test_unreadable_counter_says_so(two_sockets: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Since Linux 5.10 energy_uj is 0400 root; tests run as root here, so the refusal is what Path raises then."""
    read_text = Path.read_text

    def refuse(self: Path, *args, **kwargs) -> str:
        if self.name == "energy_uj":
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", refuse)
    with pytest.raises(RaplUnavailable, match="not readable by this user"):
        RaplMeter.open(two_sockets)


def test_this_machine() -> None:
    """The real powercap tree: a busy CPU's packages draw a plausible power, or a clear reason why there is no meter.

    ``energy_j`` is never negative by construction, so the check is on the
    power over a quarter second of busy loop: above 0.5 W (a stuck or unread
    counter, or µJ taken for nJ, gives about 0) and below 1 kW per package (a
    wrap undone where there was none adds ~262 kJ, µJ taken for mJ multiplies
    by 1000).
    """
    try:
        meter = RaplMeter.open(POWERCAP)
    except RaplUnavailable as exc:
        assert str(exc).startswith("RAPL energy is not available here, because ")
        pytest.skip(str(exc))
    before, start = meter.read(), time.monotonic()
    while time.monotonic() - start < 0.25:
        pass  # keep one CPU busy: its package must use energy
    energy = meter.energy_j(before, meter.read())
    watts = energy / (time.monotonic() - start)
    assert 0.5 < watts < 1000 * len(meter.zones), f"{energy:.3f} J in a quarter second: {watts:.1f} W"
