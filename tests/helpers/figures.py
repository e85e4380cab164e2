"""The figures the tests measure on the way (sizes, seconds, rates, counts), kept by the part
of the system they describe and printed once at the end of the run, one section a part, and
written to out/figures.json. They are for people reading a run: tests assert on ratios and
shapes, never on these."""
import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[2] / "out" / "figures.json"
FIGURES = {}   # part ("container images", "cluster", "node") -> {figure name: value}


def record(part, name, value):
    """Keep one figure (the last value recorded under its name wins)."""
    FIGURES.setdefault(part, {})[name] = value


def append(part, name, value):
    """Add a value to a figure that is a list (one value each time it is measured)."""
    FIGURES.setdefault(part, {}).setdefault(name, []).append(value)


def summary(terminalreporter):
    """The pytest_terminal_summary of the run: a section a part, then out/figures.json."""
    if not FIGURES:
        return
    for part, figures in FIGURES.items():
        terminalreporter.section(part)
        for name, value in figures.items():
            terminalreporter.write_line(f"{name}: {value}")
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text(json.dumps(FIGURES, indent=2) + "\n")
