"""Write ``long-format.csv``: a made-up benchmark table in the *long* form inference results are published in.

The layout follows the public description of MLPerf Inference result tables (one row per measured result: the
submission, the system as free text, the benchmark and scenario, a ``Units`` column and a ``Result``), but every
system, name and number here is invented: five systems, each run with 1, 2, 4 and 8 accelerators under two software
stacks, on three models in three scenarios. Like a real table it spells things many ways: system names in free
text (one system twice), model, scenario and software names in several spellings, throughput in ``samples/s``,
``queries/s`` or ``Tokens/s``, latency in ms or µs, power as ``Watts`` or ``System Power (W)``, energy in J or mJ
per stream, numbers with thousands separators (``32,115.42``); some configurations are resubmitted under a second
ID, one system has no power meter, and open-division rows are mixed in. ``long-format.yaml`` maps it.

Run: ``.venv/bin/python examples/import/long-format.py`` (deterministic: the same file every time).
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

#: Written system name(s), organisation, its power and energy units, its latency unit, speed, power per accelerator.
SYSTEMS = [
    (["Acme Tower T8", "ACME Tower T8 "], "Acme", "Watts", "J per stream", "latency ms", 1.00, 700),
    (["Borealis Edge Node E2"], "Borealis", "System Power (W)", "mJ per stream", "Latency (us)", 0.35, 75),
    (["Cirrus Cloud c7.metal, 8x Nimbus N4"], "Cirrus", "System Power (W)", "mJ per stream", "latency ms", 0.80, 400),
    (["Dorado Server D4 (liquid cooled)"], "Dorado", "System Power (W)", "mJ per stream", "latency ms", 1.25, 1000),
    (["Ember Workstation W1"], "Ember", None, None, "latency ms", 0.55, 300),
]
ACCELERATORS = [1, 2, 4, 8]
#: Spellings of each software stack, and its speed.
SOFTWARE = [(["TensorFlux", "Tensor Flux"], 1.0), (["OpenRT", "open-rt"], 0.85)]
#: Spellings of each model, its offline throughput per accelerator at speed 1, its unit, its single-stream latency (ms).
MODELS = [
    (["ResNet", "resnet50", "ResNet-50"], 4000.0, "samples/s", 0.55),
    (["BERT-99", "bert-99"], 900.0, "samples/s", 2.4),
    (["GPT-J", "gpt-j"], 300.0, "Tokens/s", 850.0),
]
SCENARIOS = [["Offline"], ["Server"], ["SingleStream", "Single Stream"]]
COLUMNS = ["ID", "Division", "Organization", "System", "Accelerators", "Software", "Model", "Scenario", "Units",
           "Result"]


def number(value: float) -> str:
    """As published tables print results: grouped thousands, two decimals."""
    return f"{value:,.2f}"


def rows(rng: np.random.Generator) -> list[list[str]]:
    out: list[list[str]] = []
    submission = 0
    for names, org, power_unit, energy_unit, latency_unit, speed, watts in SYSTEMS:
        for n in ACCELERATORS:
            for software, software_speed in SOFTWARE:
                for _ in range(1 + int(rng.random() < 0.2)):  # some configurations are resubmitted
                    submission += 1
                    ident = f"{'4.1' if submission % 3 else '5.0'}-{submission:04d}"
                    system = names[submission % len(names)]
                    stack = software[submission % len(software)]
                    for model, per_accelerator, rate_unit, latency in MODELS:
                        for scenario in SCENARIOS:
                            noise = rng.lognormal(0, 0.03)
                            base = [ident, "closed", org, system, str(n), stack, model[submission % len(model)],
                                    scenario[submission % len(scenario)]]
                            load = 0.5 + 0.5 * min(1.0, per_accelerator / 2000)
                            power = (150 + watts * n * load) * rng.lognormal(0, 0.02)
                            if scenario[0] == "SingleStream":
                                ms = latency / (speed * software_speed) * (1 + 0.4 / n) * noise
                                out.append([*base, latency_unit, number(ms * 1000 if "us" in latency_unit else ms)])
                                if energy_unit is not None:
                                    mj = power * ms / (2 if n > 1 else 1)  # one stream keeps few accelerators busy
                                    out.append([*base, energy_unit, number(mj / 1000 if energy_unit[0] == "J" else mj)])
                                continue
                            rate = per_accelerator * speed * software_speed * n ** 0.93 * noise
                            rate *= 0.88 if scenario[0] == "Server" else 1.0
                            unit = "queries/s" if scenario[0] == "Server" and rate_unit == "samples/s" else rate_unit
                            out.append([*base, unit, number(rate)])
                            if power_unit is not None:
                                out.append([*base, power_unit, number(power)])
    for i in range(12):  # open-division results: other models and methods, left out by the mapping
        out.append([f"5.0-9{i:03d}", "open", "Borealis", "Borealis Edge Node E2", "1", "OpenRT", "ResNet", "Offline",
                    "samples/s", number(2000 * rng.lognormal(0, 0.2))])
    return out


def write(path: Path = Path(__file__).with_suffix(".csv")) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(COLUMNS)
        writer.writerows(rows(np.random.default_rng(14)))


if __name__ == "__main__":
    write()
