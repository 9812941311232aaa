"""Energy of a local trial from the Linux powercap sysfs (Intel RAPL, also AMD since Linux 5.11).

Each package zone ``/sys/class/powercap/intel-rapl:N`` has a counter
``energy_uj`` (µJ since an arbitrary origin) that wraps to 0 after
``max_energy_range_uj``. Only zones named ``package-*`` are summed: the
sub-zones (``core``, ``uncore``) are parts of their package and ``psys``
contains the packages, so adding them would count energy twice.

The counters are the whole CPU package's, not this process's: the energy of a
trial is what the machine's CPUs used during its window, which is the
trial's own only on an otherwise idle machine. One wrap between two readings
is undone; a window longer than a full wrap period (``max_energy_range_uj``
at the package's power: tens of minutes) cannot be told apart from a shorter
one, so read at least that often.

    meter = RaplMeter.open()        # RaplUnavailable("RAPL energy is not available here, because ...")
    before = meter.read()
    ...                             # the trial
    energy_j = meter.energy_j(before, meter.read())
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from hwmatch.api.errors import InputError

POWERCAP = Path("/sys/class/powercap")
_PACKAGE_DIR = re.compile(r"^intel-rapl:\d+$")


class RaplUnavailable(RuntimeError):
    """This machine offers no readable RAPL package counter; the message says why."""

    def __init__(self, because: str) -> None:
        self.because = because
        super().__init__(f"RAPL energy is not available here, because {because}")


@dataclass(frozen=True)
class RaplZone:
    """One package zone: its sysfs directory, name (``package-0``) and counter range in µJ."""

    path: Path
    name: str
    max_energy_range_uj: int

    def read_uj(self) -> int:
        return _read_int(self.path / "energy_uj")


@dataclass(frozen=True)
class RaplMeter:
    """The package zones of this machine; :meth:`read` them, then :meth:`energy_j` between two readings."""

    zones: tuple[RaplZone, ...]

    @classmethod
    def open(cls, root: Path = POWERCAP) -> "RaplMeter":
        """Find the readable package zones under ``root``; :class:`RaplUnavailable` saying why there are none."""
        if not root.is_dir():
            raise RaplUnavailable(f"{root} does not exist (no powercap driver: a VM, a container without /sys, "
                                  "or a CPU without RAPL)")
        candidates = sorted((p for p in root.iterdir() if _PACKAGE_DIR.match(p.name)), key=lambda p: p.name)
        if not candidates:
            raise RaplUnavailable(f"{root} has no intel-rapl:N zone (no RAPL powercap driver loaded: "
                                  "modprobe intel_rapl_msr)")
        zones = []
        problems = []
        for path in candidates:
            try:
                name = (path / "name").read_text().strip()
                if not name.startswith("package"):
                    continue  # psys contains the packages: summing it would count them twice
                zone = RaplZone(path, name, _read_int(path / "max_energy_range_uj"))
                zone.read_uj()
            except PermissionError:
                problems.append(f"{path / 'energy_uj'} is not readable by this user (since Linux 5.10 only root "
                                "may read it: run as root or `chmod a+r` it)")
                continue
            except (OSError, ValueError) as exc:
                problems.append(f"{path}: {exc}")
                continue
            zones.append(zone)
        if not zones:
            found = ", ".join(p.name for p in candidates)
            raise RaplUnavailable("; ".join(problems) or f"{root} has no package zone (only {found})")
        return cls(tuple(zones))

    def read(self) -> dict[str, int]:
        """The counters now, in µJ, by zone directory name."""
        return {z.path.name: z.read_uj() for z in self.zones}

    def energy_j(self, before: dict[str, int], after: dict[str, int]) -> float:
        """Joules used by all packages between two :meth:`read` results, undoing one wrap per zone."""
        total_uj = 0
        for zone in self.zones:
            key = zone.path.name
            if key not in before or key not in after:
                raise InputError(f"reading lacks zone {key}; take both readings from this meter")
            delta = after[key] - before[key]
            if delta < 0:
                delta += zone.max_energy_range_uj  # wrapped: counted up to the range, then on from 0
            total_uj += delta
        return total_uj / 1e6


def _read_int(path: Path) -> int:
    text = path.read_text().strip()
    try:
        return int(text)
    except ValueError:
        raise InputError(f"{path} holds {text!r}, not an integer") from None
