"""popz beside its peers on cosmoDC2 and SDSS MGS: one table, one machine, one run.

    python benchmarks/peers.py --n 1000 --sdss-mcmc-n 200 [--keep DIR]

Data (the same rows for every estimator):

- ``dc2``: ``test_dc2_validation_9816`` (pz-rail-base), the random subset of N that
  ``photoz_dc2.py --n N --seed S`` fits; training set ``test_dc2_training_9816``;
- ``sdss``: ``../shared/data/sdss_mgs``, a random N of the test half (seed S);
  training set the train half; magnitudes as given (no AB offsets), no extinction.

Estimators, each in a process of its own (its peak memory is that process's):

- popz ``npe``, ``npe+is`` (the shipped LSST flow, so dc2 only: no flow is shipped
  for SDSS's ugriz) and ``mcmc`` (dc2: the shipped LSST emulator, 32 walkers x
  (1000 + 1000) steps; sdss: the spectrum emulator through the SDSS curves, 500 + 500,
  on the first ``--sdss-mcmc-n`` test rows: that path costs seconds per galaxy here),
  p(z) stored on popz's grid (``--storage full``);
- RAIL's BPZ-lite (pz-rail-bpz: CWWSB4 templates, HDFN prior, no redshift labels);
- EAZY (eazy-py): the same six CWWSB4 templates (eazy-py downloads its own
  template sets, which this machine cannot), non-negative combinations, no prior,
  a flat 2% template error and 1% systematic error; on sdss the redshift grid
  stops at z = 1 (without a magnitude prior, bright z < 0.3 galaxies otherwise
  fit a z ~ 2.9 Lyman-break solution as well: a choice any EAZY user would make
  for a survey at r < 17.8, and an advantage the others do not get);
- RAIL's KNN (pz-rail-sklearn) and FlexZBoost (pz-rail-flexzboost), trained on the
  training set (the only estimators here that see redshift labels).

The peers run in ``.peers/venv`` (made on first use with pip: pz-rail-bpz,
pz-rail-sklearn, pz-rail-flexzboost, eazy), popz in this interpreter. Every
estimator's p(z) is read as a qp ensemble and scored the same way: PDF median,
sigma_NMAD, outliers |dz|/(1+z) > 0.15, median bias, PIT K-S, 68% coverage
(16-84% quantiles). galaxies/s is the estimation step only (popz npe and the
peers after a warm-up call on the first 64 rows, so one-off compilation and
template integration are excluded; popz mcmc without warm-up, compilation
included); training is timed apart.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
PEERS_VENV = HERE.parent / ".peers" / "venv"
PEER_PACKAGES = ["pz-rail-bpz", "pz-rail-sklearn", "pz-rail-flexzboost", "eazy"]
SDSS = Path(os.environ.get("POPZ_SDSS_MGS") or HERE.parent.parent / "shared" / "data" / "sdss_mgs")  # env: a machine without ../shared
ZMAX, NZ = 3.0, 301
BANDS = {"dc2": list("ugrizy"), "sdss": list("ugriz")}
SUFFIX = {"dc2": "lsst", "sdss": "sdss"}
ESTIMATORS = {  # name -> (interpreter, datasets)
    "popz npe": ("popz", ("dc2",)),
    "popz npe+is": ("popz", ("dc2",)),
    "popz mcmc": ("popz", ("dc2", "sdss")),
    "BPZ": ("peers", ("dc2", "sdss")),
    "EAZY": ("peers", ("dc2", "sdss")),
    "KNN": ("peers", ("dc2", "sdss")),
    "FlexZBoost": ("peers", ("dc2", "sdss")),
}
WARM = 64
HYPER_ENV = "POPZ_PEERS_HYPER"  # driver -> popz workers: the --hyper folder


# ---------------------------------------------------------------- data (driver)


def write_data(dataset: str, n: int, seed: int, folder: Path) -> None:
    """``folder/train.hdf5`` and ``folder/test.hdf5`` in RAIL's layout (group ``photometry``: mag_B_S, mag_err_B_S, redshift)."""
    import h5py

    s = SUFFIX[dataset]
    if dataset == "dc2":
        import rail

        testdata = Path(list(rail.__path__)[0]) / "examples_data" / "testdata"
        with h5py.File(testdata / "test_dc2_validation_9816.hdf5") as f:
            test = {k: v[:] for k, v in f["photometry"].items()}
        with h5py.File(testdata / "test_dc2_training_9816.hdf5") as f:
            train = {k: v[:] for k, v in f["photometry"].items()}
        rows = np.sort(np.random.default_rng(seed).choice(len(test["redshift"]), n, replace=False))
        test = {k: v[rows] for k, v in test.items()}
    else:
        import pandas as pd

        data = pd.read_parquet(SDSS / "sdss_mgs.parquet")

        def rail_columns(frame):
            columns = {"id": frame["id"].to_numpy(), "redshift": frame["z_spec"].to_numpy(np.float64)}
            for b in BANDS["sdss"]:
                columns[f"mag_{b}_{s}"] = frame[f"mag_{b}"].to_numpy(np.float64)
                columns[f"mag_err_{b}_{s}"] = frame[f"magerr_{b}"].to_numpy(np.float64)
            return columns

        test = data[data["split"] == "test"]
        test = test.iloc[np.sort(np.random.default_rng(seed).choice(len(test), n, replace=False))]
        test, train = rail_columns(test), rail_columns(data[data["split"] == "train"])
    folder.mkdir(parents=True, exist_ok=True)
    for name, columns in (("test", test), ("train", train)):
        with h5py.File(folder / f"{name}.hdf5", "w") as f:
            for k, v in columns.items():
                f[f"photometry/{k}"] = v


def _first_rows(folder: Path, out: Path, n: int) -> None:
    """A copy of a dataset folder whose test set is the first ``n`` test rows."""
    import shutil

    import h5py

    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(folder / "train.hdf5", out / "train.hdf5")
    with h5py.File(out / "test.hdf5", "w") as f:
        for k, v in read_columns(folder / "test.hdf5").items():
            f[f"photometry/{k}"] = v[:n]


def read_columns(path) -> dict:
    import h5py

    with h5py.File(path) as f:
        return {k: v[:] for k, v in f["photometry"].items()}


def rail_bands(dataset: str) -> dict:
    """RAIL's shared band options for a dataset (its defaults are DC2's)."""
    s = SUFFIX[dataset]
    bands = [f"mag_{b}_{s}" for b in BANDS[dataset]]
    options = dict(bands=bands, err_bands=[f"mag_err_{b}_{s}" for b in BANDS[dataset]], ref_band=f"mag_i_{s}",
                   zmin=0.0, zmax=ZMAX, nzbins=NZ, hdf5_groupname="photometry")  # fmt: skip
    if dataset == "sdss":
        options["mag_limits"] = {b: 28.0 for b in bands}
    return options


def scores(ensemble, z) -> dict:
    """Point estimate, 68% interval and PIT of a qp ensemble at the true redshifts."""
    median = np.ravel(ensemble.ppf(np.full((len(z), 1), 0.5)))
    lo = np.ravel(ensemble.ppf(np.full((len(z), 1), 0.16)))
    hi = np.ravel(ensemble.ppf(np.full((len(z), 1), 0.84)))
    pit = np.ravel(ensemble.cdf(np.asarray(z, np.float64)[:, None]))
    return dict(median=median, lo=lo, hi=hi, pit=pit)


# ---------------------------------------------------------------- estimators (workers)


def run_popz(method: str, dataset: str, folder: Path, tmp: Path):
    import pandas as pd
    import qp

    from popz.posterior.catalog_fit import output_paths
    from popz.posterior.fit_job import FitJob, fit_table

    columns = read_columns(folder / "test.hdf5")
    table = pd.DataFrame(columns)
    if dataset == "dc2":  # p(z) on a grid, as the peers give it; calibrated hyperparameters when --hyper gave them
        job = FitJob(method=method, storage="full", assume_dereddened=True, hyper_folder=os.environ.get(HYPER_ENV) or None)
    else:
        curves = tuple(str(SDSS / "filters" / f"sdss_{b}.dat") for b in BANDS["sdss"])
        job = FitJob(method="mcmc", bands=tuple(BANDS["sdss"]), filters=curves, flux_columns="mag_{band}_sdss",
                     error_columns="mag_err_{band}_sdss", units="mag", assume_dereddened=True, n_burn=500, n_steps=500)  # fmt: skip
    if method != "mcmc":
        fit_table(job, table.iloc[:WARM], tmp / "warm.parquet", n_total=len(table))
    start = time.perf_counter()
    out = fit_table(job, table, tmp / "fit.parquet")
    seconds = time.perf_counter() - start
    return qp.read(str(output_paths(out)[1])), seconds, 0.0


def _rail_stage(cls, **config):
    return cls.make_stage(**config)


def _handle(path):
    from rail.core.data import TableHandle

    handle = TableHandle(Path(path).stem, path=str(path))
    handle.read()
    return handle


def _timed_estimate(make_estimator, test_path: Path, tmp: Path):
    """A warm-up estimate on the first WARM rows, then the timed one on all rows."""
    import h5py

    columns = read_columns(test_path)
    warm = tmp / "warm.hdf5"
    with h5py.File(warm, "w") as f:
        for k, v in columns.items():
            f[f"photometry/{k}"] = v[:WARM]
    make_estimator("warm").estimate(_handle(warm))
    start = time.perf_counter()
    ensemble = make_estimator("main").estimate(_handle(test_path)).data
    return ensemble, time.perf_counter() - start


def run_bpz(dataset: str, folder: Path, tmp: Path):
    import shutil

    import rail
    from rail.estimation.algos.bpz_lite import BPZliteEstimator, BPZliteInformer

    # BPZ writes its flux tables beside its SEDs and filters: a private copy, with the SDSS curves added
    data = Path(list(rail.__path__)[0]) / "examples_data" / "estimation_data" / "data"
    private = tmp / "bpz_data"
    for sub in ("SED", "FILTER"):
        shutil.copytree(data / sub, private / sub)
    (private / "AB").mkdir()
    for b in BANDS["sdss"]:
        curve = np.loadtxt(SDSS / "filters" / f"sdss_{b}.dat")
        curve[:, 1] = np.clip(curve[:, 1], 0.0, None)
        np.savetxt(private / "FILTER" / f"sdss_{b}.res", curve)
    filters = [f"DC2LSST_{b}" if dataset == "dc2" else f"sdss_{b}" for b in BANDS[dataset]]
    options = dict(rail_bands(dataset), filter_list=filters, bpz_ref_data_path=str(private))
    if dataset == "sdss":
        options["zp_errors"] = [0.01] * len(filters)  # RAIL's default has DC2's six bands
    shutil.copy(folder / "test.hdf5", tmp / "test.hdf5")
    start = time.perf_counter()
    inform = _rail_stage(BPZliteInformer, name="bpz_inform", model=str(tmp / "bpz.pkl"), **options)
    inform.inform(_handle(folder / "train.hdf5"))
    train_seconds = time.perf_counter() - start

    def estimator(tag):
        return _rail_stage(BPZliteEstimator, name=f"bpz_{tag}", model=inform.get_handle("model"), output=str(tmp / f"bpz_{tag}.hdf5"),
                           dz=0.01, **options)  # fmt: skip

    ensemble, seconds = _timed_estimate(estimator, tmp / "test.hdf5", tmp)
    return ensemble, seconds, train_seconds


def run_sklearn(kind: str, dataset: str, folder: Path, tmp: Path):
    if kind == "KNN":
        from rail.estimation.algos.k_nearneigh import KNearNeighEstimator as Estimator
        from rail.estimation.algos.k_nearneigh import KNearNeighInformer as Informer
    else:
        from rail.estimation.algos.flexzboost import FlexZBoostEstimator as Estimator
        from rail.estimation.algos.flexzboost import FlexZBoostInformer as Informer
    options = rail_bands(dataset)
    start = time.perf_counter()
    inform = _rail_stage(Informer, name=f"{kind}_inform", model=str(tmp / f"{kind}.pkl"), **options)
    inform.inform(_handle(folder / "train.hdf5"))
    train_seconds = time.perf_counter() - start

    def estimator(tag):
        return _rail_stage(Estimator, name=f"{kind}_{tag}", model=inform.get_handle("model"), output=str(tmp / f"{kind}_{tag}.hdf5"),
                           **options)  # fmt: skip

    ensemble, seconds = _timed_estimate(estimator, folder / "test.hdf5", tmp)
    return ensemble, seconds, train_seconds


def run_eazy(dataset: str, folder: Path, tmp: Path):
    import qp
    import rail
    from astropy.table import Table
    from eazy.photoz import PhotoZ

    bands = BANDS[dataset]
    if dataset == "dc2":
        data = Path(list(rail.__path__)[0]) / "examples_data" / "estimation_data" / "data" / "FILTER"
        curves = [np.loadtxt(data / f"DC2LSST_{b}.res") for b in bands]
    else:
        curves = [np.loadtxt(SDSS / "filters" / f"sdss_{b}.dat") for b in bands]
    def resampled(curve):  # EAZY integrates every template through every curve at every z: 5 A steps over the support suffice
        support = curve[curve[:, 1] > 0, 0]
        wave = np.arange(support.min() - 5.0, support.max() + 10.0, 5.0)
        return np.column_stack([wave, np.interp(wave, curve[:, 0], np.clip(curve[:, 1], 0.0, None), left=0.0, right=0.0)])

    curves = [resampled(c) for c in curves]
    with open(tmp / "FILTER.RES", "w") as f:  # EAZY's format: a header line per filter, then "i lambda T" rows
        for b, curve in zip(bands, curves):
            f.write(f"{len(curve)} {dataset}_{b} lambda_c= {np.average(curve[:, 0], weights=np.clip(curve[:, 1], 0, None)):.1f}\n")
            for i, (wave, t) in enumerate(curve, 1):
                f.write(f"{i} {wave:.2f} {max(t, 0.0):.6g}\n")
    seds = Path(list(rail.__path__)[0]) / "examples_data" / "estimation_data" / "data" / "SED"
    names = [line.split()[0] for line in (seds / "CWWSB4.list").read_text().splitlines() if line.strip()]
    (tmp / "templates.param").write_text("".join(f"{k} {seds / name} 1.0\n" for k, name in enumerate(names, 1)))
    (tmp / "translate.txt").write_text("".join(f"flux_{b} F{k}\nerr_{b} E{k}\n" for k, b in enumerate(bands, 1)))
    (tmp / "template_error.def").write_text("".join(f"{w:.1f} 1.0\n" for w in np.geomspace(100.0, 1e6, 50)))

    def catalog(columns):
        table = Table({"id": np.arange(len(columns["redshift"])), "z_spec": columns["redshift"]})
        s = SUFFIX[dataset]
        for k, b in enumerate(bands, 1):
            mag, err = columns[f"mag_{b}_{s}"], columns[f"mag_err_{b}_{s}"]
            undetected = mag >= 90.0  # DC2: 99, with the 1-sigma limit magnitude as its "error"
            flux = np.where(undetected, 0.0, 10 ** (-0.4 * (mag - 25.0)))  # AB zero point 25
            sigma = np.where(undetected, 10 ** (-0.4 * (err - 25.0)), flux * err * np.log(10) / 2.5)
            table[f"flux_{b}"], table[f"err_{b}"] = flux, sigma
        return table

    params = dict(FILTERS_RES=str(tmp / "FILTER.RES"), TEMPLATES_FILE=str(tmp / "templates.param"), TEMP_ERR_FILE=str(tmp / "template_error.def"),
                  TEMP_ERR_A2=0.02, SYS_ERR=0.01, APPLY_PRIOR="n", PRIOR_ABZP=25.0, Z_MIN=0.005, Z_MAX=ZMAX if dataset == "dc2" else 1.0, Z_STEP=0.005,
                  N_MIN_COLORS=3, MW_EBV=0.0, CAT_HAS_EXTCORR="y", OUTPUT_DIRECTORY=str(tmp), MAIN_OUTPUT_FILE="eazy", VERBOSITY=0,
                  ADD_CGM="n", FIX_ZSPEC="n", Z_COLUMN="z_spec")  # fmt: skip

    def fit(columns, tempfilt=None):
        ez = PhotoZ(param_file=None, translate_file=str(tmp / "translate.txt"), zeropoint_file=None, load_prior=False, n_proc=1,
                    params={**params, "CATALOG_FILE": catalog(columns)}, tempfilt=tempfilt)  # fmt: skip
        ez.fit_catalog(n_proc=1, get_best_fit=False)
        pdf = np.exp(ez.lnp - ez.lnp.max(axis=1, keepdims=True))
        return qp.Ensemble(qp.interp, data=dict(xvals=ez.zgrid, yvals=pdf)), ez.tempfilt

    columns = read_columns(folder / "test.hdf5")
    _, tempfilt = fit({k: v[:WARM] for k, v in columns.items()})  # integrates the templates through the filters once
    start = time.perf_counter()
    ensemble, _ = fit(columns, tempfilt)
    return ensemble, time.perf_counter() - start, 0.0


def worker(name: str, dataset: str, folder: Path, result: Path) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if name.startswith("popz"):
            ensemble, seconds, train_seconds = run_popz(name.split()[1], dataset, folder, tmp)
        elif name == "BPZ":
            ensemble, seconds, train_seconds = run_bpz(dataset, folder, tmp)
        elif name == "EAZY":
            ensemble, seconds, train_seconds = run_eazy(dataset, folder, tmp)
        else:
            ensemble, seconds, train_seconds = run_sklearn(name, dataset, folder, tmp)
        z = read_columns(folder / "test.hdf5")["redshift"].astype(np.float64)
        out = scores(ensemble, z)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    device = "cpu"
    if name.startswith("popz"):
        import jax

        device = jax.devices()[0].device_kind if jax.default_backend() != "cpu" else "cpu"
    np.savez(result, z=z, seconds=seconds, train_seconds=train_seconds, peak_mb=peak_mb, device=device, **out)


# ---------------------------------------------------------------- driver


def peers_python() -> Path:
    python = PEERS_VENV / "bin" / "python"
    if not python.exists():
        print(f"making {PEERS_VENV} ({', '.join(PEER_PACKAGES)})", flush=True)
        subprocess.run(["python3", "-m", "venv", str(PEERS_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_PACKAGES], check=True)
    return python


def metrics(r) -> dict:
    """popz's photo-z metrics (:func:`popz.posterior.report.redshift_metrics`) of one estimator's results, with its costs."""
    from popz.posterior.report import redshift_metrics

    z = r["z"]
    m = redshift_metrics(r["median"], z, pit=np.clip(r["pit"], 0, 1), z_lo=r["lo"], z_hi=r["hi"])
    device = str(r["device"]) if "device" in r else "cpu"
    return {**m, "speed": len(z) / float(r["seconds"]), "train": float(r["train_seconds"]), "peak_mb": float(r["peak_mb"]), "device": device}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="test galaxies per dataset")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default="", help="comma-separated estimators to run (default: all)")
    parser.add_argument("--datasets", default="dc2,sdss")
    parser.add_argument("--sdss-mcmc-n", type=int, default=200,
                        help="popz mcmc on sdss fits the first N test rows only (the spectrum emulator path costs ~3 s per galaxy here)")
    parser.add_argument("--keep", default=None, help="keep data and per-estimator results here; a rerun skips estimators already done")
    parser.add_argument("--hyper", default=None,
                        help="popz calibrate output folder: popz fits dc2 with these hyperparameters (labelled; the peers are unchanged)")
    parser.add_argument("--worker", nargs=4, metavar=("NAME", "DATASET", "FOLDER", "RESULT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        name, dataset, folder, result = args.worker
        worker(name, dataset, Path(folder), Path(result))
        return

    from _results import write_section

    names = [n.strip() for n in args.only.split(",") if n.strip()] or list(ESTIMATORS)
    hyper_name = Path(args.hyper).name if args.hyper else None
    datasets = [d.strip() for d in args.datasets.split(",")]
    interpreters = {"popz": sys.executable}
    if any(ESTIMATORS[n][0] == "peers" for n in names):  # made only when needed: a GPU machine runs popz alone
        interpreters["peers"] = str(peers_python())
    table, raw = {}, {}
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(args.keep) if args.keep else Path(scratch)
        for dataset in datasets:
            folder = tmp / f"{dataset}-n{args.n}-seed{args.seed}"
            if not (folder / "test.hdf5").exists():
                write_data(dataset, args.n, args.seed, folder)
            for name in names:
                kind, allowed = ESTIMATORS[name]
                if dataset not in allowed:
                    continue
                data = folder
                if name == "popz mcmc" and dataset == "sdss" and args.sdss_mcmc_n < args.n:
                    data = tmp / f"{dataset}-n{args.n}-seed{args.seed}-first{args.sdss_mcmc_n}"
                    if not (data / "test.hdf5").exists():
                        _first_rows(folder, data, args.sdss_mcmc_n)
                calibrated = bool(args.hyper) and kind == "popz" and dataset == "dc2"
                tag = f"-hyper-{hyper_name}" if calibrated else ""
                result = folder / f"{name.replace(' ', '_')}{'' if data == folder else '-' + data.name}{tag}.npz"
                label = f"{name}, {hyper_name}" if calibrated else name
                if result.exists():
                    raw[dataset, label] = dict(np.load(result))
                    table[dataset, label] = metrics(raw[dataset, label])
                    continue
                env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))}
                env[HYPER_ENV] = str(Path(args.hyper).resolve()) if calibrated else ""
                process = subprocess.run([interpreters[kind], str(HERE / "peers.py"), "--worker", name, dataset, str(data), str(result)],
                                         env=env, capture_output=True, text=True)  # fmt: skip
                if process.returncode != 0:
                    print(process.stdout[-2000:], process.stderr[-4000:], file=sys.stderr)
                    table[dataset, label] = None
                    print(dataset, label, "FAILED", flush=True)
                    continue
                raw[dataset, label] = dict(np.load(result))
                table[dataset, label] = metrics(raw[dataset, label])
                print(dataset, label, json.dumps({k: (round(v, 4) if isinstance(v, float) else v) for k, v in table[dataset, label].items()}), flush=True)

    # popz mcmc on sdss saw only the first rows: every estimator scored on those rows too, for a like-for-like line
    subset = args.sdss_mcmc_n
    if ("sdss", "popz mcmc") in raw and subset < args.n:
        for (dataset, name), r in list(raw.items()):
            if dataset == "sdss" and name != "popz mcmc":
                part = {k: (v[:subset] if np.ndim(v) else v) for k, v in r.items()}
                part["seconds"] = r["seconds"] * subset / len(r["z"])  # the whole run's rate
                table[f"sdss, first {subset}", name] = metrics(part)
        table[f"sdss, first {subset}", "popz mcmc"] = table.pop(("sdss", "popz mcmc"))
    rows = []
    for (dataset, name), m in table.items():
        if m is None:
            rows.append(f"| {dataset} | {name} | | failed | | | | | | | | |")
            continue
        rows.append(f"| {dataset} | {name} | {m['n']} | {m['sigma_nmad']:.4f} | {m['outlier_fraction']:.3f} | {m['bias']:+.4f} | {m['pit_ks']:.3f} | "
                    f"{m['coverage_68']:.3f} | {m['speed']:.1f} | {m['train']:.0f} | {m['peak_mb']:.0f} | {m['device']} |")  # fmt: skip
    body = [
        f"{args.n} test galaxies per dataset (seed {args.seed}; popz mcmc on sdss: the first {args.sdss_mcmc_n} of them): cosmoDC2 validation (ugrizy, true z) and SDSS MGS test half "
        "(ugriz, spectroscopic z). Estimators and their settings: the docstring of `benchmarks/peers.py`. PDF median as point "
        "estimate; each estimator in its own process, one after another, on this machine unless `ran on` names a GPU (results made there with `--keep` and scored here with the rest; "
        "the metrics do not depend on the machine, galaxies/s and peak MB do). galaxies/s: the estimation step "
        "after a warm-up call (popz mcmc: compilation included); train s: the informer (KNN, FlexZBoost see redshift labels; "
        "BPZ only sets its HDFN prior); peak MB: the process's maximum resident memory.",
        "",
        "| data | estimator | galaxies | sigma_NMAD | outliers | bias | PIT K-S | 68% coverage | galaxies/s | train s | peak MB | ran on |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
        *rows,
    ]
    if args.hyper:
        body += ["", f"popz rows marked `{hyper_name}` fitted dc2 with the hyperparameters of `popz calibrate` in `{args.hyper}` "
                 "(`popz fit --hyper`); no redshift labels enter them."]
    title = f"peers.py, n={args.n}" + (f", hyper {hyper_name}" if args.hyper else "") + (f", only {args.only}" if args.only else "")
    write_section(f"Photo-z beside the peers ({title})", "\n".join(body))  # a partial run (--only) keeps the full table


if __name__ == "__main__":
    main()
