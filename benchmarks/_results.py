"""Write a benchmark's section into benchmarks/RESULTS.md (replacing its previous run)."""

from __future__ import annotations

import datetime
import os
import platform
import re
import shlex
import sys
from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")
HEADER = "# Benchmark results\n\nEach section is written by the script it names; rerun the command to refresh it.\n"


def machine() -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = ""
    try:
        kb = int(re.search(r"MemTotal:\s+(\d+)", Path("/proc/meminfo").read_text()).group(1))
        mem = f", {kb / 2**20:.0f} GiB RAM"
    except (OSError, AttributeError):
        pass
    accelerator = ""
    if "jax" in sys.modules:
        device = sys.modules["jax"].devices()[0]
        if device.platform != "cpu":
            accelerator = f", {device.device_kind} ({device.platform})"
    return (
        f"{cpu}, {os.cpu_count()} cores{mem}{accelerator}, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


def write_section(name: str, body: str) -> None:
    """Replace (or append) the section called ``name`` with ``body`` plus machine, date and command."""
    script = Path(sys.argv[0]).resolve()
    try:
        script = script.relative_to(RESULTS.parent.parent)
    except ValueError:
        pass
    command = "python " + " ".join(shlex.quote(a) for a in [str(script), *sys.argv[1:]])
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"<!-- begin {name} -->\n## {name}\n\n- machine: {machine()}\n- date: {stamp}\n- command: `{command}`\n\n"
        f"{body.strip()}\n<!-- end {name} -->\n"
    )
    text = RESULTS.read_text() if RESULTS.exists() else HEADER
    pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->\n", re.S)
    text = pattern.sub(lambda _: section, text) if pattern.search(text) else text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
