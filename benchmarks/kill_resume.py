"""Crash safety and bad input, measured: ``popz fit`` killed with SIGKILL at random moments, and catalogs full of bad values.

1. Kill/resume: a 10,000-galaxy mock (``popz mock``) is fitted once uninterrupted
   (the reference). Each trial then starts ``popz fit`` into a fresh folder,
   sends SIGKILL at a moment drawn uniformly over the reference run's duration,
   and reruns the same command to completion. A watcher lists the output folder
   every 20 ms while the killed run lives: a visible (non-dot) name must be a
   finished product, the resume folder, or a finished chunk. After the kill,
   every visible file must read back whole. The final products must equal the
   reference exactly (summary table, p(z) arrays, samples), with no temporary or
   resume folder left.
2. Bad input: per-file problems must end with exit status 2 and one line;
   per-object problems must keep every object in the output with a flag.

    python benchmarks/kill_resume.py --n 10000 --trials 10
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from _products import differences
from _results import write_section

FIT_OPTIONS = ["--storage", "compact", "--chunk-size", "1000", "--quiet"]


def popz(*args, env, check=True, timeout=1800):
    return subprocess.run([sys.executable, "-m", "popz.cli", *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=timeout, check=check)  # fmt: skip


def allowed_name(path: Path, out: Path) -> bool:
    parts = out.with_name(out.name + ".parts")
    names = {out.name, out.stem + ".pz.hdf5", out.stem + ".samples.hdf5", parts.name}
    if path.parent == out.parent:
        return path.name in names or path.name.startswith(".")
    if path.parent == parts:
        return path.name == "run.json" or (path.name.startswith("chunk_") and path.suffix == ".npz") or path.name.startswith(".")
    return False


def watch(folder: Path, out: Path, stop: threading.Event, seen_bad: list) -> None:
    while not stop.is_set():
        try:
            for path in list(folder.rglob("*")):
                if not allowed_name(path, out):
                    seen_bad.append(path.name)
        except FileNotFoundError:
            pass
        time.sleep(0.02)


def readable(folder: Path, out: Path, n: int) -> str:
    """'' if every visible file under ``folder`` reads back whole."""
    import h5py
    import pandas as pd

    for path in folder.rglob("*"):
        if path.name.startswith(".") or path.is_dir():
            continue
        try:
            if path.suffix == ".parquet" and len(pd.read_parquet(path)) != n:
                return f"{path.name} has the wrong length"
            if path.suffix == ".hdf5":
                with h5py.File(path) as f:
                    list(f.keys())
            if path.suffix == ".npz":
                with np.load(path) as data:
                    data["objectId"]
            if path.suffix == ".json":
                import json

                json.loads(path.read_text())
        except Exception as err:  # noqa: BLE001 - any failure to read is the finding
            return f"{path.name}: {type(err).__name__} {err}"
    return ""


def kill_trials(catalog: Path, n: int, trials: int, work: Path, env: dict, seed: int) -> tuple[list[str], float]:
    popz("fit", catalog, "--out", work / "warm" / "fit.parquet", *FIT_OPTIONS, env=env)  # fills the compilation cache
    reference = work / "reference" / "fit.parquet"
    start = time.perf_counter()
    popz("fit", catalog, "--out", reference, *FIT_OPTIONS, env=env)
    duration = time.perf_counter() - start
    rng = np.random.default_rng(seed)
    rows = []
    for trial in range(trials):
        out = work / f"trial{trial}" / "fit.parquet"
        out.parent.mkdir(parents=True)
        moment = rng.uniform(0.02, 1.0) * duration
        command = [sys.executable, "-m", "popz.cli", "fit", str(catalog), "--out", str(out), *FIT_OPTIONS]
        stop, bad = threading.Event(), []
        watcher = threading.Thread(target=watch, args=(out.parent, out, stop, bad))
        watcher.start()
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        time.sleep(moment)
        killed = process.poll() is None
        if killed:
            process.send_signal(signal.SIGKILL)
        process.wait()
        stop.set()
        watcher.join()
        chunks_done = len(list(out.with_name(out.name + ".parts").glob("chunk_*.npz")))
        after_kill = readable(out.parent, out, n)
        resumed = popz("fit", catalog, "--out", out, *FIT_OPTIONS, env=env, check=False)
        problems = [p for p in (after_kill, "; ".join(sorted(set(bad))), "" if resumed.returncode == 0 else resumed.stderr[-300:]) if p]
        if resumed.returncode == 0:
            problems += [p for p in (differences(out, reference),) if p]
            leftovers = [p.name for p in out.parent.rglob("*") if p.name.startswith(".") or p.name.endswith(".parts")]
            if leftovers:
                problems.append(f"left behind: {leftovers}")
        status = "pass" if not problems else "FAIL: " + " | ".join(problems)
        rows.append(f"| {trial} | {moment:.1f} | {'yes' if killed else 'no (finished)'} | {chunks_done} of {-(-n // 1000)} | {status} |")
        print(rows[-1], flush=True)
    return rows, duration


def bad_input_cases(good: Path, work: Path, env: dict) -> list[str]:
    """Run ``popz fit`` on spoiled copies of ``good``; one table row per case."""
    import pandas as pd

    table = pd.read_parquet(good).iloc[:200].reset_index(drop=True)
    cases = []

    def case(name, make, expect):
        path = make()
        result = popz("fit", path, "--out", work / "bad" / f"{len(cases)}.parquet", "--quiet", "--storage", "compact", env=env, check=False)
        text = (result.stdout + result.stderr).strip()
        crashed = "Traceback" in text or result.returncode not in (0, 2)
        lost = ""
        if expect == "flags":
            out = work / "bad" / f"{len(cases)}.parquet"
            kept = pd.read_parquet(out) if out.exists() else None
            n_in = len(pd.read_parquet(path)) if path.suffix == ".parquet" else len(table)
            lost = str(n_in - (0 if kept is None else len(kept)))
            outcome = "ok, flags " + ",".join(str(v) for v in sorted(set(kept["flags"].to_numpy() & 0xC0F))) if kept is not None else text[-200:]
        else:
            lines = [line for line in text.splitlines() if line.strip()]
            outcome = lines[-1][:140] if lines else "(nothing printed)"
            if result.returncode != 2 or len(lines) != 1:
                outcome = f"exit {result.returncode}, {len(lines)} lines: {outcome}"
        cases.append(f"| {name} | {result.returncode} | {'yes' if crashed else 'no'} | {lost or '-'} | {outcome.replace('|', '/')} |")
        print(cases[-1], flush=True)

    def spoiled(name, change):
        def make():
            path = work / "inputs" / f"{name}.parquet"
            path.parent.mkdir(parents=True, exist_ok=True)
            change(table.copy()).to_parquet(path)
            return path

        return make

    def raw(name, content: bytes):
        def make():
            path = work / "inputs" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            return path

        return make

    def per_object(t):
        f = [f"{b}_cModelFlux" for b in "ugrizy"]
        e = [f"{b}_cModelFluxErr" for b in "ugrizy"]
        rng = np.random.default_rng(1)
        values = t[f + e].to_numpy(copy=True)
        spoil = rng.random(values.shape) < 0.3
        values[spoil] = rng.choice([np.nan, np.inf, -np.inf, 0.0, -5.0, 1e30], spoil.sum())
        t[f + e] = values
        t.loc[::7, "ebv"] = np.nan
        t.loc[::11, "ebv"] = -0.02
        t.loc[::13, "ebv"] = 1.0
        return t

    good_bytes = good.read_bytes()
    case("NaN/inf/zero/negative/1e30 fluxes and errors in 30% of cells, odd E(B-V)", spoiled("per_object", per_object), "flags")
    case("every band missing in every row", spoiled("all_missing", lambda t: t.assign(**{c: np.nan for c in t.columns if "cModelFlux" in c})), "flags")
    case("truncated Parquet", raw("truncated.parquet", good_bytes[: len(good_bytes) // 2]), "error")
    case("empty file", raw("empty.parquet", b""), "error")
    case("CSV with a header and no rows", raw("header.csv", b"objectId,ebv\n"), "error")
    case("not a FITS file", raw("junk.fits", b"SIMPLE  =  T" + b"\0" * 100), "error")
    case("corrupt HDF5", raw("junk.hdf5", b"\x89HDF\r\n\x1a\n" + b"\0" * 200), "error")
    case("missing error column", spoiled("missing", lambda t: t.drop(columns=["r_cModelFluxErr"])), "error")
    case("non-numeric flux column", spoiled("text", lambda t: t.assign(g_cModelFlux=["n/a"] * len(t))), "error")
    case("duplicated ids", spoiled("dup", lambda t: t.assign(objectId=np.repeat(t["objectId"].to_numpy()[:100], 2))), "error")
    case("missing ids", spoiled("noid", lambda t: t.assign(objectId=np.where(np.arange(len(t)) == 3, np.nan, t["objectId"]))), "error")
    return cases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--trials", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        env = {**os.environ, "POPZ_JAX_CACHE": str(work / "jax-cache")}
        catalog = work / "mock.parquet"
        popz("mock", "--n", args.n, "--out", catalog, "--seed", args.seed + 7, env=env)
        cases = bad_input_cases(catalog, work, env)
        rows, duration = kill_trials(catalog, args.n, args.trials, work, env, args.seed)
    n_pass = sum("| pass |" in r for r in rows)
    n_killed = sum("| yes |" in r for r in rows)
    body = [
        f"{args.n}-galaxy mock (`popz mock --seed {args.seed + 7}`), `popz fit --method npe {' '.join(FIT_OPTIONS)}`; "
        f"an uninterrupted run takes {duration:.1f} s (compilation cache warm). Kill moments uniform over that time.",
        "",
        f"**Kill/resume: {n_pass} of {len(rows)} trials pass ({n_killed} killed mid-run, the others had finished).** "
        "Pass = no unfinished file visible during or after the kill, and the resumed run's summary table, p(z) arrays "
        "and samples equal the reference exactly, with no temporary file or resume folder left.",
        "",
        "| trial | kill at (s) | killed | chunks finished before the kill | result |",
        "|---:|---:|---|---|---|",
        *rows,
        "",
        f"**Bad input: {len(cases)} cases, {sum('| yes |' in c for c in cases)} crashes, "
        f"{sum(int(c.split('|')[4]) for c in cases if c.split('|')[4].strip().isdigit())} objects lost** "
        "(`popz fit` on spoiled copies of the first 200 rows; crash = a traceback or an exit status other than 0/2):",
        "",
        "| case | exit status | crash | objects lost | outcome |",
        "|---|---:|---|---:|---|",
        *cases,
    ]
    write_section("Crash safety and bad input (kill_resume.py)", "\n".join(body))


if __name__ == "__main__":
    main()
