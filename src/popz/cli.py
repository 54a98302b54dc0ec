"""The popz command line: a thin shell over the Python API.

User errors (:class:`popz.errors.PopzError`) print one line and exit with code 2;
anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import shlex
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Optional

import numpy as np
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from popz.errors import PopzError

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    no_args_is_help=True,
    help="popz: galaxy redshift and property posteriors from a physical SPS model.",
)


class _Console:
    """The terminal (stderr), and a log file when ``popz --log FILE`` is given: every message goes to both."""

    def __init__(self):
        self.terminal = Console(stderr=True)
        self.log: Console | None = None

    def open_log(self, path: Path) -> None:
        self.log = Console(file=open(path, "a", buffering=1), width=120, no_color=True, highlight=False)

    def print(self, *args, **kwargs) -> None:
        self.terminal.print(*args, **kwargs)
        if self.log is not None:
            self.log.print(*args, **kwargs)


console = _Console()


@app.callback()
def _options(
    log: Optional[Path] = typer.Option(None, "--log", help="append every message, the command line and each step's timing to this file"),
) -> None:
    """popz: galaxy redshift and property posteriors from a physical SPS model."""
    if log is not None:
        import datetime

        console.open_log(log)
        console.log.print(f"--- {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M:%S} UTC: {_command_line()}")


class _RateColumn(ProgressColumn):
    def __init__(self, unit: str):
        super().__init__()
        self.unit = unit

    def render(self, task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("" if speed is None else f"{speed:,.0f} {self.unit}/s", style="progress.data.speed")


@contextmanager
def _progress(description: str, total: int, unit: str, quiet: bool):
    import time

    start, done = time.perf_counter(), 0
    if quiet:
        def count(k: int) -> None:
            nonlocal done
            done += k

        try:
            yield count
        finally:
            _log_step(description, done, total, unit, time.perf_counter() - start)
        return
    columns = (
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        _RateColumn(unit),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    # Started on the first report, so that errors found before any work stand alone.
    bar = Progress(*columns, console=console.terminal, transient=False)
    task = None

    def advance(k: int) -> None:
        nonlocal task, done
        done += k
        if task is None:
            bar.start()
            task = bar.add_task(description, total=total)
        bar.advance(task, k)

    try:
        yield advance
    finally:
        if task is not None:
            bar.stop()
        _log_step(description, done, total, unit, time.perf_counter() - start)


def _log_step(description: str, done: int, total: int, unit: str, seconds: float) -> None:
    if console.log is not None:
        console.log.print(f"{description}: {done} of {total} {unit} in {seconds:.1f} s")


def _command_line() -> str:
    return "popz " + " ".join(shlex.quote(a) for a in sys.argv[1:])


@app.command("models")
def models_command() -> None:
    """List the models shipped with popz."""
    from popz.config import load_model, shipped_models

    for name in shipped_models():
        config = load_model(name)
        typer.echo(f"{name}\t{config.n_parameters} parameters\t{' '.join(config.bands)}")


@app.command("show-model")
def show_model_command(model: str = typer.Argument(..., help="shipped model name or YAML path")) -> None:
    """Print a model's parameter table, bands, cosmology and simulator."""
    from popz.config import load_model

    config = load_model(model)
    table = Table(title=f"{config.name}  (hash {config.hash[:12]})")
    for col in ("#", "name", "unit", "bounds", "training prior", "description"):
        table.add_column(col, overflow="fold", no_wrap=col in ("name", "bounds", "training prior"))
    for i, p in enumerate(config.parameters):
        prior = p.prior.model_dump()
        kind = prior.pop("type")
        args = ", ".join(f"{k}={v:g}" for k, v in prior.items())
        table.add_row(str(i), p.name, p.unit, f"[{p.bounds[0]:g}, {p.bounds[1]:g}]", f"{kind}({args})", p.description)
    out = Console()
    out.print(table)
    out.print(f"bands: {' '.join(config.bands)}")
    cosmo = config.cosmology
    out.print(f"cosmology: {cosmo.name if cosmo.H0 is None else f'flat LCDM H0={cosmo.H0} Om0={cosmo.Om0}'}")
    out.print(f"simulator: {config.simulator.backend} {config.simulator.settings}")


@app.command("simulate")
def simulate_command(
    model: str = typer.Option("lsst-default", help="shipped model name or YAML path"),
    n: int = typer.Option(..., "--n", help="number of galaxies to draw and simulate"),
    out: Path = typer.Option(..., help="output Parquet file"),
    seed: int = typer.Option(0, help="seed of the JAX key the parameters are drawn from"),
    workers: int = typer.Option(1, help="simulator processes"),
    chunk_size: int = typer.Option(500, help="galaxies per resumable chunk"),
    spectra: bool = typer.Option(False, "--spectra", help="also write rest-frame spectra to OUT.spectra.h5"),
    spectra_min: float = typer.Option(400.0, help="shortest rest wavelength kept with --spectra, Angstrom"),
    spectra_max: float = typer.Option(30000.0, help="longest rest wavelength kept with --spectra, Angstrom"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Draw parameters from the model's training prior and simulate noiseless magnitudes (resumable)."""
    from popz.config import load_model
    from popz.emulate.training_set import simulate_training_set

    config = load_model(model)
    with _progress("simulate", n, "models", quiet) as advance:
        summary = simulate_training_set(
            config,
            n,
            out,
            seed=seed,
            workers=workers,
            chunk_size=chunk_size,
            spectra=spectra,
            spectra_range_A=(spectra_min, spectra_max),
            command=_command_line(),
            progress=advance,
        )
    resumed = f", {summary.n_chunks_done_before} chunks resumed" if summary.n_chunks_done_before else ""
    failed = f", {summary.n_failed} failed (NaN magnitudes)" if summary.n_failed else ""
    console.print(f"wrote {summary.n} galaxies to {summary.table_path}{resumed}{failed}")
    if summary.spectra_path:
        console.print(f"wrote spectra to {summary.spectra_path}")


@app.command("train-emulator")
def train_emulator_command(
    model: str = typer.Option("lsst-default", help="shipped model name or YAML path"),
    train: Path = typer.Option(..., help="training set from `popz simulate`"),
    out: Path = typer.Option(..., help="output folder (weights + manifest)"),
    kind: str = typer.Option("photometry", help="photometry (fixed bands) or spectrum (PCA SED: any bands)"),
    n_components: int = typer.Option(64, help="PCA components (--kind spectrum)"),
    loss_units: str = typer.Option(
        "standardised", help="--kind photometry: standardised (per-band spread) or mag (every band's mag error alike)"
    ),
    seed: int = typer.Option(0, help="seed of the JAX key (split, initialisation, batches)"),
    hidden: str = typer.Option("256,256,256,256", help="hidden layer widths"),
    activation: str = typer.Option("gelu", help="gelu, silu or tanh"),
    epochs: int = typer.Option(300, help="maximum epochs"),
    batch_size: int = typer.Option(1024),
    learning_rate: float = typer.Option(2e-3),
    decay_epochs: float = typer.Option(40.0, help="the learning rate halves every this many epochs"),
    patience: int = typer.Option(25, help="early stopping: epochs without validation improvement"),
    max_minutes: Optional[float] = typer.Option(None, help="stop (resumably) after this many minutes"),
    validation_fraction: float = typer.Option(0.05),
    band_weights: Optional[str] = typer.Option(
        None, help="--kind photometry: comma-separated loss weight per band (e.g. 3,1.5,1,1,1,1 to favour u and g)"
    ),
    init: Optional[str] = typer.Option(
        None, help="--kind photometry: start from this emulator's weights (shipped name or folder; same architecture)"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no per-epoch log"),
) -> None:
    """Train an emulator on a training set; rerunning with the same --out resumes from its checkpoint."""
    from popz.config import load_model
    from popz.emulate.train import train_photometry_emulator, train_spectrum_emulator
    from popz.emulate.training import TrainingSettings

    if kind not in ("photometry", "spectrum"):
        raise PopzError(f"--kind must be photometry or spectrum, got {kind!r}")
    if init is not None and kind != "photometry":
        raise PopzError("--init is for --kind photometry")
    try:
        widths = tuple(int(w) for w in hidden.split(","))
    except ValueError:
        raise PopzError(f"--hidden must be comma-separated integers, got {hidden!r}") from None
    settings = TrainingSettings(
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        decay_epochs=decay_epochs,
        patience=patience,
        max_minutes=max_minutes,
    )
    options = dict(
        seed=seed,
        hidden=widths,
        activation=activation,
        settings=settings,
        validation_fraction=validation_fraction,
        command=_command_line(),
        log=(lambda s: None) if quiet else (lambda s: console.print(s, highlight=False)),
    )
    if kind == "spectrum":
        _, manifest = train_spectrum_emulator(load_model(model), train, out, n_components=n_components, **options)
    else:
        weights = None
        if band_weights is not None:
            try:
                weights = tuple(float(w) for w in band_weights.split(","))
            except ValueError:
                raise PopzError(f"--band-weights must be comma-separated numbers, got {band_weights!r}") from None
        _, manifest = train_photometry_emulator(
            load_model(model), train, out, loss_units=loss_units, band_weights=weights, init=init, **options
        )
    _print_accuracy(manifest["accuracy_validation"], f"validation split ({manifest['training']['stopped']})")
    console.print(f"wrote {out}")


@app.command("train-posterior")
def train_posterior_command(
    model: str = typer.Option("lsst-default", help="shipped model name or YAML path"),
    emulator: str = typer.Option("lsst-default", help="photometric emulator: shipped name or folder"),
    out: Path = typer.Option(..., help="output folder (weights + manifest; pool cache and checkpoint while training)"),
    seed: int = typer.Option(0, help="seed of the JAX key (pool, batches, initialisation)"),
    steps: int = typer.Option(40_000, help="optimisation steps"),
    batch_size: int = typer.Option(512),
    learning_rate: float = typer.Option(1e-3),
    pool_size: int = typer.Option(1_000_000, help="prior draws (inside the pre-cut) that the batches are drawn from"),
    error_floor: float = typer.Option(0.02, help="fractional error floor of the likelihood (as `popz fit --error-floor`)"),
    flow_layers: int = typer.Option(8),
    nn_width: int = typer.Option(64),
    max_minutes: Optional[float] = typer.Option(None, help="stop (resumably) after this many minutes"),
    init: Optional[str] = typer.Option(None, help="fine-tune this posterior flow (shipped name or folder; same architecture)"),
    fix_logit_moments: bool = typer.Option(False, "--fix-logit-moments", help="hold the logits' location and scale fixed too (the bounds always are)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress log"),
) -> None:
    """Train the amortized posterior (conditional normalizing flow) on simulated galaxies; rerunning resumes."""
    from popz.config import load_model
    from popz.emulate.files import emulator_folder, load, read_manifest
    from popz.infer.amortized import Architecture
    from popz.infer.amortized_train import NPETrainSettings, train_posterior_flow
    from popz.population import make_population_prior

    config = load_model(model)
    phot = load(emulator, kind="photometry", config=config)
    emulator_id = read_manifest(emulator_folder(emulator, "photometry")).get("weights_sha256", str(emulator))
    settings = NPETrainSettings(
        n_steps=steps, batch_size=batch_size, learning_rate=learning_rate, pool_size=pool_size, seed=seed, error_floor=error_floor,
        fix_logit_moments=fix_logit_moments,
    )
    start, extra = None, {}
    if init is not None:
        from popz.infer.amortized_files import load_posterior, posterior_folder

        start = load_posterior(init, config=config)
        extra = {"initialised_from": {"posterior": str(init), "weights_sha256": read_manifest(posterior_folder(init))["weights_sha256"]}}
    manifest = train_posterior_flow(
        config, phot, make_population_prior(config), out, settings=settings, init=start, extra_manifest=extra,
        architecture=Architecture(flow_layers=flow_layers, nn_width=nn_width), max_minutes=max_minutes,
        command=_command_line(), emulator_id=emulator_id,
        log=(lambda s: None) if quiet else (lambda s: console.print(s, highlight=False)),
    )  # fmt: skip
    if manifest is None:
        console.print(f"stopped at the time budget; rerun to resume ({out})")
        return

    last = manifest["training"]["history"][-1]
    console.print(f"held-out loss {last['heldout'][0]:.3f}; input-density threshold {manifest['ood_threshold']:.2f}; wrote {out}")


def _random_rows(table, n, seed: int):
    """``n`` rows of ``table`` drawn without replacement, in their catalog order (all of it where n is None or >= its length)."""
    if n is None or n >= len(table):
        return table
    return table.iloc[np.sort(np.random.default_rng(seed).choice(len(table), n, replace=False))]


def _float_pair(text: str, option: str) -> tuple[float, float]:
    try:
        lo, hi = (float(x) for x in text.split(","))
    except ValueError:
        raise PopzError(f"{option} must be two comma-separated numbers (low,high), got {text!r}") from None
    return lo, hi


def _hyper_overrides(items: list[str]) -> dict:
    out = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            out[name.strip()] = float(value)
        except ValueError:
            sep = ""
        if not sep:
            raise PopzError(f"--hyper takes NAME=VALUE, got {item!r}")
    return out


@app.command("mock")
def mock_command(
    model: str = typer.Option("lsst-default", help="shipped model name or YAML path (with a population section)"),
    n: int = typer.Option(..., "--n", help="galaxies in the catalog (after the selection)"),
    out: Path = typer.Option(..., help="output Parquet file"),
    seed: int = typer.Option(0, help="seed of the JAX key everything is drawn from"),
    tracts: int = typer.Option(1, "--tracts", help="number of tracts (ids 0..K-1), each with its own zero-points"),
    zero_point_scatter: float = typer.Option(0.0, help="rms of the per-(tract, band) zero-point offsets, mag"),
    error_floor: float = typer.Option(0.0, help="fractional noise added without being reported in the errors"),
    error_inflation: float = typer.Option(1.0, help="true noise variance / reported variance"),
    ebv_range: str = typer.Option("0,0.1", help="E(B-V) drawn uniformly in low,high (mag)"),
    mag_limit: float = typer.Option(25.3, help="cut on the observed magnitude in the detection band"),
    detection_band: str = typer.Option("i", help="band label of the cut"),
    years: float = typer.Option(10.0, help="LSST survey years for the noise (photerr)"),
    extinction_law: str = typer.Option("F99", help="Galactic extinction law: F99 or G23"),
    hyper: list[str] = typer.Option([], "--hyper", help="population hyperparameter NAME=VALUE (repeatable)"),
    simulator: bool = typer.Option(False, "--simulator", help="exact SPS photometry instead of the emulator (slow)"),
    chunk_size: int = typer.Option(100_000, help="prior draws per chunk"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Draw a mock LSST catalog from the population prior, the emulator and the data model (Rubin Object columns)."""
    from popz.config import load_model
    from popz.data_model.mock import MockSettings, make_mock, write_mock

    config = load_model(model)
    settings = MockSettings(
        n=n, seed=seed, n_tracts=tracts, zero_point_scatter=zero_point_scatter, error_floor=error_floor,
        error_inflation=error_inflation, ebv_range=_float_pair(ebv_range, "--ebv-range"), mag_limit=mag_limit,
        detection_band=detection_band, years=years, extinction_law=extinction_law, chunk_size=chunk_size,
        hyper=_hyper_overrides(hyper),
    )
    with _progress("mock", n, "galaxies", quiet) as advance:
        done = [0]

        def progress(k: int) -> None:
            advance(k - done[0])
            done[0] = k

        mock = make_mock(config, settings, simulator=simulator, progress=progress)
    write_mock(mock, out, command=_command_line())
    console.print(f"wrote {len(mock.table)} galaxies to {out} ({mock.metadata['n_drawn']} drawn from the population prior)")


@app.command("fit")
def fit_command(
    catalog: Path = typer.Argument(..., help="Parquet, CSV, FITS or HDF5 catalog (Rubin and RAIL layouts recognised)"),
    out: Path = typer.Option(..., help="output Parquet (summaries); OUT.pz.hdf5 and OUT.samples.hdf5 beside it"),
    method: str = typer.Option(
        "npe", help="npe (amortized flow: fast), npe+is (flow draws importance-weighted by the likelihood) or mcmc (ensemble sampler: accurate)"
    ),
    posterior: str = typer.Option("lsst-default", help="posterior flow for npe: shipped name or folder"),
    fallback: str = typer.Option("none", help="npe+is: mcmc refits galaxies whose effective sample size is too low; none flags them"),
    storage: str = typer.Option("full", help="full (p(z) on the grid, 100 draws) or compact (<= 200 floats per object)"),
    n_draws: int = typer.Option(100, help="npe: posterior draws per galaxy"),
    is_proposals: int = typer.Option(
        1000, help="npe+is: flow draws weighted per galaxy (4,000 brought npe+is within 0.09 sigma of MCMC on mocks; cost grows in proportion)"
    ),
    model: str = typer.Option("lsst-default", help="shipped model name or YAML path"),
    emulator: str = typer.Option("lsst-default", help="photometric emulator: shipped name or folder"),
    bands: Optional[str] = typer.Option(None, help="comma-separated band labels of the catalog (default: the model's)"),
    filters: Optional[list[str]] = typer.Option(
        None, help="filter curve files (Angstrom, throughput), one per --bands label in order: comma-separated or repeated"
    ),
    flux_columns: Optional[str] = typer.Option(None, help="flux column template with {band}, e.g. 'mag_{band}'"),
    error_columns: Optional[str] = typer.Option(None, help="error column template with {band}"),
    units: str = typer.Option("nJy", help="nJy, uJy or mag (AB)"),
    id_column: Optional[str] = typer.Option(None, help="id column (default objectId or id)"),
    assume_dereddened: bool = typer.Option(False, "--assume-dereddened", help="no ebv column: fluxes are corrected already"),
    error_floor: float = typer.Option(0.02, help="fractional error added in quadrature to every band (model mismatch)"),
    hyper_folder: Optional[Path] = typer.Option(
        None, "--hyper", help="a popz calibrate folder: its zero-points, error floors (instead of --error-floor) and population hyperparameters"
    ),
    seed: int = typer.Option(0),
    n_walkers: int = typer.Option(32),
    n_burn: int = typer.Option(1000),
    n_steps: int = typer.Option(1000),
    chunk_size: Optional[int] = typer.Option(None, help="galaxies per resumable chunk (default 256 for mcmc, 4096 for npe)"),
    batch_size: Optional[int] = typer.Option(
        None, help="galaxies per device call (default 256 on CPU, 4096 on GPU, fewer for a smaller catalog); results are bitwise the same for a given batch size, whatever --chunk-size"
    ),
    limit: Optional[int] = typer.Option(None, help="fit only the first N rows"),
    scheduler: Optional[str] = typer.Option(
        None, help="a folder of Parquet files (or HATS catalog) fitted partition by partition on Dask: local:N (N worker processes here) or tcp://HOST:PORT"
    ),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """Per-object posteriors (redshift and every SPS parameter): amortized flow or batched ensemble MCMC; a killed run resumes."""
    from popz.io.catalog import read_table
    from popz.posterior.catalog_fit import output_paths
    from popz.posterior.fit_job import FitJob, fit_table, prepare

    job = FitJob(
        method=method, posterior=posterior, fallback=fallback, storage=storage, n_draws=n_draws, is_proposals=is_proposals,
        model=model, emulator=emulator,
        bands=tuple(bands.split(",")) if bands else None, filters=tuple(f for item in (filters or []) for f in item.split(",") if f),
        flux_columns=flux_columns, error_columns=error_columns, units=units, id_column=id_column,
        assume_dereddened=assume_dereddened, error_floor=error_floor, hyper_folder=str(hyper_folder) if hyper_folder else None,
        seed=seed, n_walkers=n_walkers, n_burn=n_burn, n_steps=n_steps, chunk_size=chunk_size, batch_size=batch_size,
    )  # fmt: skip
    if catalog.is_dir() or scheduler is not None:
        from popz.posterior.partitioned import fit_partitioned, list_partitions

        if limit is not None:
            raise PopzError("--limit applies to one catalog file, not to a partitioned dataset: fit one of its files, or drop --limit")

        partitions = list_partitions(catalog)
        with _progress("fit", sum(p.n_rows for p in partitions), "galaxies", quiet) as advance:
            written = fit_partitioned(catalog, out, job, scheduler=scheduler, command=_command_line(), progress=advance,
                                      partitions=partitions)  # fmt: skip
        console.print(f"wrote {len(written)} partitions to {out} (manifest: {out / 'manifest.json'})")
        return
    prepared = prepare(job)
    for note in prepared.notes:
        console.print(f"[yellow]note: {note}[/]")
    table = read_table(catalog)
    if limit is not None:
        table = table.iloc[:limit]
    with _progress("fit", len(table), "galaxies", quiet) as advance:
        fit_table(job, table, out, command=_command_line(), progress=advance)
    table_path, pz_path, samples_path = output_paths(out)
    console.print(f"wrote {table_path}, {pz_path} and {samples_path}")


@app.command("report")
def report_command(
    target: str = typer.Argument(..., help="a popz fit output (OUT.parquet), or an emulator (shipped name or folder)"),
    out: Optional[Path] = typer.Option(None, help="folder for the PNGs, metrics.json and index.html (default: TARGET.report/)"),
    truth: Optional[str] = typer.Option(None, help="column with the true or spectroscopic redshift (in the fit table or --catalog)"),
    catalog: Optional[Path] = typer.Option(None, help="catalog holding the --truth column, joined on objectId (or id)"),
    bins: int = typer.Option(20, help="bins of the PIT histogram"),
    kind: Optional[str] = typer.Option(None, help="emulator reports: photometry (default) or spectrum"),
) -> None:
    """Plots and an HTML page: photo-z against truth, PIT, coverage, n(z) and flags of a fit; or an emulator's accuracy."""
    from popz.posterior.report import write_emulator_report, write_fit_report

    folder = out or Path(f"{target.rstrip('/')}.report")
    if target.endswith(".parquet"):
        page = write_fit_report(target, folder, truth_column=truth, catalog=catalog, n_bins=bins)
    else:
        page = write_emulator_report(target, folder, kind=kind)
    console.print(f"wrote {page}")


def _parse_selection(text: str) -> tuple[str, float]:
    """'i<25.3' -> ('i', 25.3)."""
    band, sep, limit = text.partition("<")
    try:
        if not sep or not band.strip():
            raise ValueError
        return band.strip(), float(limit)
    except ValueError:
        raise PopzError(f"--selection must look like 'i<25.3' (band label, <, AB magnitude), got {text!r}") from None


def _selection_or_mock_cut(catalog: Path, selection: Optional[str], without: str) -> Optional[str]:
    """--selection as given, else a popz mock's own cut ('i<25.3'), else None (with a note saying ``without``)."""
    if selection is not None:
        return selection
    try:
        from popz.data_model.mock import read_mock_metadata

        cut = read_mock_metadata(catalog)["selection"]
        return f"{cut['band']}<{cut['mag_limit']}"
    except (PopzError, KeyError, OSError):
        console.print(f"[yellow]note: no --selection given and none in the catalog: {without}[/]")
        return None


@app.command("calibrate")
def calibrate_command(
    catalog: Path = typer.Argument(..., help="catalog (Parquet, CSV, FITS or HDF5); a tract column gives zero-points per tract"),
    out: Path = typer.Option(..., help="output folder: summary.json, chains.npz, chains.png"),
    iterations: int = typer.Option(2, help="rounds: each redraws every galaxy's proposals given the current calibration"),
    proposals: int = typer.Option(256, help="importance-sampling proposals per galaxy"),
    steps: int = typer.Option(1000, help="Metropolis-Hastings steps per chain (4 chains; the first fifth discarded)"),
    subsample: Optional[int] = typer.Option(None, help="calibrate on this many galaxies drawn at random (large catalogs)"),
    free_hyper: Optional[str] = typer.Option(None, help="comma-separated population hyperparameters to calibrate too"),
    selection: Optional[str] = typer.Option(None, help="the catalog's cut, e.g. 'i<25.3' (default: a popz mock's own)"),
    no_zero_points: bool = typer.Option(False, "--no-zero-points", help="keep zero-points at 1"),
    reference_band: Optional[str] = typer.Option(
        None, help="hold this band's zero-points at 1: the others become colours relative to it (no grey term, which is degenerate with mass)"
    ),
    no_floors: bool = typer.Option(False, "--no-floors", help="keep the error floors at --error-floor"),
    error_floor: float = typer.Option(0.02, help="the floor used where floors are not calibrated, and the starting value"),
    model: str = typer.Option("lsst-default", help="shipped model name or YAML path"),
    emulator: str = typer.Option("lsst-default", help="photometric emulator: shipped name or folder"),
    posterior: str = typer.Option("lsst-default", help="posterior flow giving the proposals: shipped name or folder"),
    bands: Optional[str] = typer.Option(None, help="comma-separated band names of the catalog, where not the model's"),
    filters: Optional[list[str]] = typer.Option(None, help="one filter curve per --bands entry, in order (comma-separated or repeated)"),
    mcmc_steps: int = typer.Option(1000, help="other bands: MCMC steps (half burn-in) of the fit that seeds the proposals"),
    flux_columns: Optional[str] = typer.Option(None, help="flux column template with {band}, e.g. 'mag_{band}'"),
    error_columns: Optional[str] = typer.Option(None, help="error column template with {band}"),
    units: str = typer.Option("nJy", help="nJy, uJy or mag (AB)"),
    id_column: Optional[str] = typer.Option(None, help="id column (default objectId or id)"),
    assume_dereddened: bool = typer.Option(False, "--assume-dereddened", help="no ebv column: fluxes are corrected already"),
    sampler: str = typer.Option(
        "importance", help="importance: proposals per galaxy, fast; gibbs: every galaxy's MCMC alternating with the zero-points "
        "and floors (popz.infer.gibbs), exact, with honest widths, slower"
    ),
    gibbs_iterations: int = typer.Option(2400, help="gibbs: iterations (4 ensemble steps of every galaxy each)"),
    gibbs_burn: int = typer.Option(400, help="gibbs: iterations discarded"),
    seed: int = typer.Option(0),
) -> None:
    """Zero-points per tract and band, error floors and (optionally) population hyperparameters, from the photometry alone.

    In the model's bands the proposals come from the posterior flow. In other bands (--bands with --filters, through
    the spectrum emulator) an MCMC fit of the galaxies seeds them (popz.infer.sample_proposals). With --sampler gibbs
    there are no proposals: the galaxies start from an MCMC fit at zero-points 1 (--mcmc-steps) and one Gibbs chain
    per walker samples them jointly with the zero-points and floors (docs/calibration.md).
    """
    import hashlib
    import json

    import jax

    from popz.config import load_model
    from popz.data_model import make_extinction_table
    from popz.emulate.files import load
    from popz.infer.amortized_files import load_posterior
    from popz.infer.hierarchical import CalibrationSettings, calibrate
    from popz.infer.hierarchical_files import write_calibration
    from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
    from popz.population import make_population_prior
    from popz.sps.filters import band_labels, load_bands
    from popz.sps.photometry import AB_MAG_OF_ONE_NJY

    config = load_model(model)
    labels = band_labels(config.bands)
    band_passes = load_bands(config.bands)
    curves = [f.strip() for item in (filters or []) for f in item.split(",") if f.strip()]
    other_bands = bool(bands or curves)
    if other_bands:
        labels = tuple(b.strip() for b in (bands or "").split(",") if b.strip())
        if len(curves) != len(labels):
            raise PopzError(f"--filters gives {len(curves)} curve(s) for {len(labels)} band(s) in --bands: give one per band, in order")
        band_passes = load_bands(curves)
    table = read_table(catalog)
    selection = _selection_or_mock_cut(catalog, selection, "the selection term is left out")
    table = _random_rows(table, subsample, seed)
    rubin = to_rubin_columns(
        table, labels, flux_template=flux_columns, error_template=error_columns, units=units,
        id_column=id_column, assume_dereddened=assume_dereddened,
    )  # fmt: skip
    if "tract" not in rubin.columns:
        console.print("[yellow]note: no tract column: one set of zero-points for the whole catalog (tract 0)[/]")
        rubin = rubin.assign(tract=0)
    tract_ids = sorted(int(t) for t in np.unique(rubin["tract"].to_numpy()) if np.isfinite(t))
    data = observations_from_table(rubin, labels, tract_ids)
    if np.any(data.flags):
        console.print(f"[yellow]note: {int(np.sum(data.flags != 0))} galaxies have input flags; their usable bands are kept[/]")
    band, flux_limit = None, None
    if selection is not None:
        name, mag = _parse_selection(selection)
        if name not in labels:
            raise PopzError(f"--selection band {name!r} is not one of the model's bands {list(labels)}")
        band, flux_limit = labels.index(name), 10 ** (-0.4 * (mag - AB_MAG_OF_ONE_NJY))
    if reference_band is not None and reference_band not in labels:
        raise PopzError(f"--reference-band {reference_band!r} is not one of the catalog's bands {list(labels)}")
    prior = make_population_prior(config)
    settings = CalibrationSettings(
        n_proposals=proposals, rounds=iterations, n_steps=steps, n_burn=steps // 5, zero_points=not no_zero_points,
        floors=not no_floors, fixed_floor=error_floor, seed=seed,
        reference_band=None if reference_band is None else list(labels).index(reference_band),
        free_hyper=tuple(h for h in (free_hyper or "").split(",") if h),
    )  # fmt: skip
    extinction = make_extinction_table(band_passes)
    initial_gaussians = None
    if sampler not in ("importance", "gibbs"):
        raise PopzError(f"--sampler must be importance or gibbs, not {sampler!r}")
    if other_bands:
        from popz.emulate.bands import DEFAULT_ERROR_MAG, band_photometry

        phot = band_photometry(load(emulator, kind="spectrum", config=config), band_passes, DEFAULT_ERROR_MAG)
    else:
        phot = load(emulator, kind="photometry", config=config)
    record = {}  # what the sampler adds to the recorded settings
    if sampler == "gibbs":
        result, record = _gibbs_calibration(
            data.observations, settings, tract_ids=tract_ids, prior=prior, extinction=extinction, emulator=phot,
            selection=(band, flux_limit), mcmc_steps=mcmc_steps, iterations=gibbs_iterations, burn=gibbs_burn, seed=seed,
        )  # fmt: skip
    elif other_bands:
        from popz.infer.sample_proposals import load_seed, save_seed, seed_proposals_by_mcmc

        # the MCMC seed is kept in the output folder: a rerun with the same data and seed settings reuses it
        seed_file = out / "mcmc_seed.npz"
        fingerprint = hashlib.sha256(
            np.ascontiguousarray(data.observations.flux_nJy).tobytes() + np.ascontiguousarray(data.observations.flux_err_nJy).tobytes()
            + json.dumps([mcmc_steps, seed, error_floor, config.hash, str(emulator), [b.provenance for b in band_passes]]).encode()
        ).hexdigest()  # fmt: skip
        seeded = load_seed(seed_file, fingerprint)
        if seeded is None:
            console.print(f"other bands: an MCMC fit of {len(rubin)} galaxies ({mcmc_steps} steps) seeds the proposals")
            seeded = seed_proposals_by_mcmc(
                data.observations, emulator=phot, prior=prior, extinction=extinction, n_tracts=len(tract_ids),
                error_floor=error_floor, n_steps=mcmc_steps, seed=seed,
                progress=lambda done, n: console.print(f"  MCMC: {done}/{n} galaxies"),
            )  # fmt: skip
            save_seed(seed_file, *seeded, fingerprint)
        else:
            console.print(f"other bands: reusing the MCMC seed of the proposals in {seed_file}")
        flow, initial_gaussians = seeded
        # covariances fitted to thousands of MCMC samples are steadier than a refit to one round's weighted proposals;
        # the means follow the calibration from round to round (else the proposals pin it to the seed's zero-points)
        settings = settings._replace(gaussian_share=0.875, keep_covariance=True)
    else:
        flow = load_posterior(posterior, config=config)
    if sampler == "importance":
        result = calibrate(
            data.observations, n_tracts=len(tract_ids), flow=flow, emulator=phot, prior=prior, extinction=extinction,
            settings=settings, selection_band=band, selection_flux_nJy=flux_limit, initial_gaussians=initial_gaussians,
            progress=lambda message: console.print(message),
        )  # fmt: skip
    from popz import __version__

    meta = {
        "model": config.name, "model_hash": config.hash, "bands": list(labels), "selection": selection,
        "filters": [b.provenance for b in band_passes] if other_bands else None,
        "settings": settings._asdict() | record, "catalog": str(catalog), "n_catalog": int(len(table)),
        "command": _command_line(), "popz_version": __version__, "jax_version": jax.__version__,
    }  # fmt: skip
    path = write_calibration(out, result, tract_ids=tract_ids, band_labels=labels, prior=prior, meta=meta)
    grid = Table(title="zero-points (flux factors): median +/- std")
    grid.add_column("tract")
    for b in labels:
        grid.add_column(b, justify="right")
    for i, t in enumerate(tract_ids):
        grid.add_row(str(t), *(f"{result.zero_points[i, j]:.4f}+/-{result.zero_points_std[i, j]:.4f}" for j in range(len(labels))))
    console.print(grid)
    console.print("error floors: " + ", ".join(f"{b} {f:.4f}" for b, f in zip(labels, result.error_floors)))
    console.print(f"R-hat max {np.max(result.r_hat):.3f}; acceptance {np.round(result.acceptance, 2).tolist()}; wrote {path}")


def _gibbs_calibration(observations, settings, *, tract_ids, prior, extinction, emulator, selection, mcmc_steps, iterations,
                       burn, seed):  # fmt: skip
    """``popz calibrate --sampler gibbs``: the galaxies' starting walkers from an MCMC fit, then popz.infer.gibbs.
    Returns (CalibrationResult, the Gibbs settings for the record)."""
    import jax
    import jax.numpy as jnp

    from popz.infer.fit import FitSettings
    from popz.infer.gibbs import GibbsSettings, check_settings, gibbs_calibrate
    from popz.infer.hierarchical import make_selection
    from popz.infer.sample_proposals import mcmc_samples

    gibbs = GibbsSettings(n_iterations=iterations, n_burn=burn, seed=seed)
    check_settings(settings, gibbs)  # before the MCMC: say so at once
    n = observations.flux_nJy.shape[0]
    console.print(f"gibbs: an MCMC fit of {n} galaxies ({mcmc_steps} steps) gives their starting walkers")
    samples = mcmc_samples(
        observations, emulator=emulator, prior=prior, extinction=extinction, n_tracts=len(tract_ids),
        error_floor=settings.fixed_floor, n_steps=mcmc_steps, seed=seed,
        progress=lambda done, total: console.print(f"  MCMC: {done}/{total} galaxies"),
    )  # fmt: skip
    band, flux_limit = selection
    cut = None
    if band is not None:
        cut = make_selection(
            jax.random.fold_in(jax.random.key(seed), 7_000), prior=prior, hyper0=prior.hyper(), emulator=emulator,
            extinction=extinction, observations=observations, used=jnp.ones(n, bool), n_tracts=len(tract_ids), band=band,
            flux_limit_nJy=flux_limit,
        )  # fmt: skip
    last_walkers = samples[:, -FitSettings().n_walkers :]  # the kept draws end with the final walkers
    result = gibbs_calibrate(
        observations, last_walkers, n_tracts=len(tract_ids), emulator=emulator, prior=prior, extinction=extinction,
        settings=settings, gibbs=gibbs, selection=cut, progress=lambda message: console.print(message),
    )  # fmt: skip
    return result, {"sampler": "gibbs", "gibbs": gibbs._asdict(), "mcmc_steps": mcmc_steps}


@app.command("reweight")
def reweight_command(
    posteriors: Path = typer.Argument(..., help="a popz fit output (OUT.parquet, with OUT.samples.hdf5 beside it)"),
    hyper_folder: Path = typer.Option(..., "--hyper", help="the new hyperparameters: a popz calibrate folder"),
    out: Path = typer.Option(..., help="output Parquet (summaries); OUT.pz.hdf5 and OUT.samples.hdf5 beside it"),
    catalog: Optional[Path] = typer.Option(None, help="the fitted catalog: needed where zero-points or floors change"),
    min_ess: float = typer.Option(20.0, help="objects whose weights' effective sample size is below this are flagged (256)"),
    model: str = typer.Option("lsst-default", help="shipped model name or YAML path"),
    emulator: str = typer.Option("lsst-default", help="photometric emulator: shipped name or folder"),
    flux_columns: Optional[str] = typer.Option(None, help="flux column template with {band}"),
    error_columns: Optional[str] = typer.Option(None, help="error column template with {band}"),
    units: str = typer.Option("nJy", help="nJy, uJy or mag (AB)"),
    id_column: Optional[str] = typer.Option(None, help="id column (default objectId or id)"),
    seed: int = typer.Option(0),
) -> None:
    """Update stored posteriors to new hyperparameters by importance sampling (no refit); low-ESS objects are flagged."""
    import json

    import h5py
    import pandas as pd
    import pyarrow.parquet as pq

    from popz.config import load_model
    from popz.data_model.noise import DataModelHyper
    from popz.infer.hierarchical_files import calibration_data_model, read_calibration
    from popz.population import make_population_prior
    from popz.posterior.catalog_fit import _write_outputs, output_paths
    from popz.posterior.reweight import likelihood_log_ratio, reweight_to_prior
    from popz.posterior.summaries import DEFAULT_Z_GRID, summarize
    from popz.sps.filters import band_labels

    config = load_model(model)
    labels = band_labels(config.bands)
    table_path, _, samples_path = output_paths(posteriors)
    if not table_path.exists() or not samples_path.exists():
        raise PopzError(f"{posteriors} is not a popz fit output: need {table_path.name} and {samples_path.name}")
    meta = json.loads((pq.read_schema(table_path).metadata or {}).get(b"popz", b"{}"))
    if meta.get("model_hash") not in (None, config.hash):
        raise PopzError(f"{posteriors} was fitted with another model than {model}")
    table = pd.read_parquet(table_path)
    with h5py.File(samples_path) as f:
        samples, ids = f["samples"][:], f["objectId"][:]
    prior = make_population_prior(config)
    old_hyper = prior.hyper(**meta.get("hyper", {}))
    calibration = read_calibration(hyper_folder, band_labels=labels, prior=prior)
    new_hyper = prior.hyper(**calibration.hyper)
    extra = None

    new_dm, tracts = calibration_data_model(calibration), calibration.tracts
    old = meta.get("data_model")
    if old is None:
        raise PopzError(f"{posteriors} does not record its data model (a fit from an older popz): refit it")
    old_zp = {t: row for t, row in zip(old["tracts"], old["zero_points"])}
    default_row = old["zero_points"][-1]
    old_dm = DataModelHyper(
        np.asarray([old_zp.get(t, default_row) for t in tracts] + [default_row], np.float32),
        np.asarray(old["error_floors"], np.float32), np.ones(len(labels), np.float32),
    )  # fmt: skip
    changed = not (np.allclose(old_dm.zero_point, new_dm.zero_point) and np.allclose(old_dm.error_floor, new_dm.error_floor))
    if changed:
        if catalog is None:
            raise PopzError("the new calibration changes zero-points or error floors: give the fitted catalog with --catalog")
        from popz.data_model import make_extinction_table
        from popz.emulate.files import load
        from popz.io.catalog import observations_from_table, read_table, to_rubin_columns
        from popz.sps.filters import load_bands

        rubin = to_rubin_columns(read_table(catalog), labels, flux_template=flux_columns, error_template=error_columns, units=units, id_column=id_column)
        if "tract" not in rubin.columns:
            rubin = rubin.assign(tract=0)
        rubin = rubin.set_index("objectId", drop=False)
        missing = np.setdiff1d(ids, rubin.index.to_numpy())
        if missing.size:
            raise PopzError(f"{catalog} lacks {missing.size} of the fitted objects (e.g. objectId {missing[0]})")
        data = observations_from_table(rubin.loc[ids].reset_index(drop=True), labels, tracts)
        extra = likelihood_log_ratio(
            samples, data.observations, emulator=load(emulator, kind="photometry", config=config), old_data_model=old_dm,
            new_data_model=new_dm, extinction=make_extinction_table(load_bands(config.bands)),
        )  # fmt: skip
    result = reweight_to_prior(samples, prior=prior, old_hyper=old_hyper, new_hyper=new_hyper, extra_log_weights=extra, min_ess=min_ess, seed=seed)
    columns, pdf = summarize(result.samples, config.parameter_names, DEFAULT_Z_GRID)
    storage = meta.get("storage", "full")
    if storage == "compact":
        from popz.posterior.compact import redshift_quantiles

        pdf = redshift_quantiles(result.samples[:, :, config.parameter_names.index("redshift")])
    from popz.io.catalog import PASSTHROUGH_COLUMNS

    kept = {c: table[c].to_numpy() for c in PASSTHROUGH_COLUMNS if c in table.columns}
    frame = {"objectId": ids, **kept, **columns, "flags": (table["flags"].to_numpy() | result.flags).astype(np.int32), "reweight_ess": result.ess}
    new_meta = {
        **meta, "hyper": prior.hyper_dict(new_hyper),
        "data_model": {"tracts": list(tracts), "zero_points": np.asarray(new_dm.zero_point).tolist(), "error_floors": np.asarray(new_dm.error_floor).tolist()},
        "reweighted_from": str(posteriors), "calibration": str(hyper_folder), "command": _command_line(),
    }  # fmt: skip
    _write_outputs(pd.DataFrame(frame), pdf, result.samples, out, DEFAULT_Z_GRID, config.parameter_names, new_meta, storage)
    low = int(np.sum(result.flags != 0))
    console.print(f"reweighted {len(ids)} objects; median ESS {np.median(result.ess):.1f} of {samples.shape[1]}; {low} flagged low_ess (< {min_ess:g})")
    console.print(f"wrote {out}")


@app.command("nz")
def nz_command(
    posteriors: Path = typer.Argument(..., help="a popz fit output (OUT.parquet, with OUT.samples.hdf5 beside it)"),
    bins: str = typer.Option(..., help="comma-separated bin edges on --column, e.g. 0.2,0.4,0.6,0.8,1.0"),
    out: Path = typer.Option(..., help="output qp file (nz.hdf5); nz.realizations.hdf5, nz.json and nz.png beside it"),
    column: str = typer.Option("z_median", help="the column galaxies are binned on"),
    realizations: int = typer.Option(200, help="n(z) realizations (galaxies resampled, one posterior draw each)"),
    exclude_flags: int = typer.Option(0, help="leave out objects with any of these flag bits (e.g. 64 for out-of-distribution)"),
    seed: int = typer.Option(0),
) -> None:
    """Redshift distributions of tomographic bins, with realizations for their uncertainty (qp ensembles and a PNG)."""
    import json

    import h5py
    import pandas as pd

    from popz.posterior.catalog_fit import output_paths
    from popz.posterior.nz import tomographic_nz, write_nz

    try:
        edges = [float(x) for x in bins.split(",") if x.strip()]
    except ValueError:
        raise PopzError(f"--bins must be comma-separated numbers, got {bins!r}") from None
    table_path, _, samples_path = output_paths(posteriors)
    if not table_path.exists() or not samples_path.exists():
        raise PopzError(f"{posteriors} is not a popz fit output: need {table_path.name} and {samples_path.name}")
    table = pd.read_parquet(table_path)
    if column not in table.columns:
        raise PopzError(f"{table_path} has no column {column!r}; it has {', '.join(map(str, table.columns[:12]))}...")
    with h5py.File(samples_path) as f:
        names = json.loads(f.attrs["parameters"])
        draws = f["samples"][:, :, names.index("redshift")]
        ids = f["objectId"][:]
    if not np.array_equal(ids, table["objectId"].to_numpy()):
        raise PopzError(f"{samples_path.name} and {table_path.name} list different objects: rerun popz fit")
    keep = (table["flags"].to_numpy() & exclude_flags) == 0 if exclude_flags else np.ones(len(table), bool)
    result = tomographic_nz(draws[keep], table[column].to_numpy()[keep], edges, n_realizations=realizations, seed=seed)
    paths = write_nz(result, out, {"posteriors": str(posteriors), "column": column, "exclude_flags": exclude_flags, "command": _command_line()})
    grid = Table(title="tomographic bins")
    for name in ("bin", "galaxies", "mean z", "std over realizations"):
        grid.add_column(name, justify="right")
    for b in range(len(edges) - 1):
        grid.add_row(f"{edges[b]:.2f}-{edges[b + 1]:.2f}", str(result.n_galaxies[b]), f"{result.mean_z[b]:.4f}", f"{result.mean_z_std[b]:.4f}")
    console.print(grid)
    console.print("wrote " + ", ".join(paths.values()))


@app.command("compare")
def compare_command(
    catalog: Path = typer.Argument(..., help="catalog (Parquet, CSV, FITS or HDF5); no redshifts are used"),
    models: tuple[str, str] = typer.Option(..., help="the two model configurations: shipped names or YAML paths"),
    out: Path = typer.Option(..., help="output folder: compare.json and compare.png"),
    emulators: tuple[str, str] = typer.Option(("lsst-default", "lsst-default"), help="each model's photometric emulator"),
    posteriors: tuple[str, str] = typer.Option(("lsst-default", "lsst-default"), help="each model's posterior flow (the proposals)"),
    hyper: tuple[str, str] = typer.Option(("none", "none"), help="each model's popz calibrate folder, or none"),
    selection: Optional[str] = typer.Option(None, help="the catalog's cut, e.g. 'i<25.3' (default: a popz mock's own)"),
    held_out: float = typer.Option(0.5, help="fraction of rows scored by the held-out predictive score"),
    n_predictive: int = typer.Option(1_000_000, help="prior draws per model for the predictive check"),
    proposals: int = typer.Option(256, help="importance-sampling proposals per held-out galaxy"),
    proposal_scale: float = typer.Option(1.0, help="the flow's base variable drawn with this standard deviation (broader: safer, fewer effective draws)"),
    limit: Optional[int] = typer.Option(None, help="use only N rows, drawn at random"),
    flux_columns: Optional[str] = typer.Option(None, help="flux column template with {band}, e.g. 'mag_{band}'"),
    error_columns: Optional[str] = typer.Option(None, help="error column template with {band}"),
    units: str = typer.Option("nJy", help="nJy, uJy or mag (AB)"),
    id_column: Optional[str] = typer.Option(None, help="id column (default objectId or id)"),
    assume_dereddened: bool = typer.Option(False, "--assume-dereddened", help="no ebv column: fluxes are corrected already"),
    error_floor: float = typer.Option(0.02, help="fractional error floor where a model has no --hyper"),
    seed: int = typer.Option(0),
) -> None:
    """Score two model/prior configurations on one catalog: predictive checks of magnitudes and colours, and the
    held-out log evidence per galaxy."""
    from popz import __version__
    from popz.posterior.model_choice import CompareSettings, compare_catalog, write_comparison
    from popz.io.catalog import read_table
    from popz.posterior.fit_job import FitJob

    table = read_table(catalog)
    table = _random_rows(table, limit, seed)
    selection = _selection_or_mock_cut(catalog, selection, "predicted galaxies are not cut")
    cut = None if selection is None else _parse_selection(selection)
    jobs = [
        FitJob(method="npe", posterior=p, model=m, emulator=e, flux_columns=flux_columns, error_columns=error_columns,
               units=units, id_column=id_column, assume_dereddened=assume_dereddened, error_floor=error_floor,
               hyper_folder=None if h == "none" else h, seed=seed)
        for m, e, p, h in zip(models, emulators, posteriors, hyper)
    ]  # fmt: skip
    names = [Path(m).stem if m.endswith((".yaml", ".yml")) else m for m in models]
    names = [f"{n}+{Path(h).name}" if h != "none" else n for n, h in zip(names, hyper)]
    if names[0] == names[1]:
        names = [f"A:{names[0]}", f"B:{names[1]}"]
    settings = CompareSettings(
        held_out_fraction=held_out, n_predictive=n_predictive, n_proposals=proposals, proposal_scale=proposal_scale, seed=seed
    )
    scores, difference, held_ids = compare_catalog(
        table, jobs, names, selection=cut, settings=settings, progress=lambda m: console.print(m)
    )
    meta = {"catalog": str(catalog), "selection": None if cut is None else f"{cut[0]}<{cut[1]}", "command": _command_line(),
            "popz_version": __version__, "model_files": list(models), "emulators": list(emulators),
            "posteriors": list(posteriors), "hyper": list(hyper)}  # fmt: skip
    paths = write_comparison(out, scores, difference, held_ids, settings=settings, meta=meta)
    grid = Table(title="model comparison")
    for col in ("model", "held-out ln p / galaxy (both usable)", "low-ESS", "mean KS", "selected draws"):
        grid.add_column(col, justify="right")
    for name, mean in zip(names, (difference["mean_log_evidence_a"], difference["mean_log_evidence_b"])):
        m = paths["summary"]["models"][name]
        grid.add_row(name, f"{mean:.3f}", str(m["n_low_ess"]), f"{m['mean_ks']:.4f}", str(m["n_predictive_selected"]))
    console.print(grid)
    console.print(
        f"{names[0]} - {names[1]}: {difference['mean_nats_per_galaxy']:+.4f} +/- {difference['standard_error']:.4f} nats per "
        f"galaxy over {difference['n_galaxies']} held-out galaxies; wrote {paths['json']} and {paths['png']}"
    )


def _print_accuracy(table: dict, title: str) -> None:
    view = Table(title=title)
    for col in ("band", "RMS [mag]", "p68 [mag]", "p99 [mag]", "n"):
        view.add_column(col, justify="right")
    for band, row in table.items():
        view.add_row(band, f"{row['rms']:.4f}", f"{row['p68']:.4f}", f"{row['p99']:.4f}", str(row["n"]))
    Console().print(view)


@app.command("validate-emulator")
def validate_emulator_command(
    emulator: str = typer.Argument(..., help="shipped model name or emulator folder"),
    test: Path = typer.Option(..., help="held-out training set from `popz simulate` (never used in training)"),
    filters: Optional[str] = typer.Option(
        None, help="comma-separated bands (speclite names or curve files) for the spectrum emulator's photometry"
    ),
    json_out: Optional[Path] = typer.Option(None, "--json", help="write the accuracy table as JSON"),
    png: Optional[Path] = typer.Option(None, help="residual plot (default: next to --json)"),
) -> None:
    """Measure an emulator against the simulator on held-out draws: table, JSON, residual PNG."""
    from popz.config import ModelConfig
    from popz.emulate.files import MANIFEST, emulator_folder, load, read_manifest
    from popz.emulate.validate import check_held_out, validate_photometry_emulator, validate_spectrum_emulator

    is_folder = (Path(emulator) / MANIFEST).is_file()
    kind = read_manifest(emulator)["kind"] if is_folder else ("spectrum" if filters else "photometry")
    if filters and kind != "spectrum":
        raise PopzError(f"--filters needs a spectrum emulator; {emulator} is a {kind} emulator")
    emu = load(emulator, kind=kind)
    manifest = read_manifest(emulator_folder(emulator, kind))
    config = ModelConfig.model_validate(manifest["model_config"])
    check_held_out(manifest, test)
    if png is None and json_out is not None:
        png = json_out.with_suffix(".png")
    if kind == "spectrum":
        names = [f.strip() for f in filters.split(",")] if filters else None
        table = validate_spectrum_emulator(emu, config, test, names, json_out, png)
    else:
        table = validate_photometry_emulator(emu, config, test, json_out, png)
    _print_accuracy(table, f"held-out: {test}")
    if png:
        console.print(f"wrote {png}")


@app.command("demo")
def demo_command(
    out: Path = typer.Option(Path("demo_output"), help="output folder"),
    n: Optional[int] = typer.Option(None, "--n", help="fit only the first N galaxies of the sample catalog"),
    seed: int = typer.Option(0, help="random seed of the sampler"),
    method: str = typer.Option("npe", help="npe, npe+is or mcmc (as `popz fit`)"),
    quiet: bool = typer.Option(False, "--quiet", help="no progress bar"),
) -> None:
    """The main job on the shipped default: fit the sample catalog with the shipped models, write posteriors and plots."""
    import h5py
    import pandas as pd

    from popz.config import load_model
    from popz.demo import corner_figure, photoz_figure, sample_catalog_path
    from popz.posterior.catalog_fit import output_paths

    config = load_model("lsst-default")
    out.mkdir(parents=True, exist_ok=True)
    catalog = sample_catalog_path()
    fit_path, _, samples_path = output_paths(out / "sample_fit.parquet")
    # through the fit command's own parser, so the demo runs with exactly its defaults
    args = ["fit", str(catalog), "--out", str(fit_path), "--seed", str(seed), "--method", method]
    app(args + (["--limit", str(n)] if n else []) + (["--quiet"] if quiet else []), standalone_mode=False)
    summary = pd.read_parquet(fit_path)
    truth = pd.read_parquet(catalog).iloc[: len(summary)]
    photo = photoz_figure(summary, truth["true_redshift"].to_numpy(), out / "photoz.png")
    with h5py.File(samples_path) as f:
        samples = f["samples"][0]
    names = list(config.parameter_names)
    true_theta = truth[[f"true_{p}" for p in names]].to_numpy()[0]
    corner_png = corner_figure(samples, names, true_theta, out / "corner_object0.png")
    console.print(f"wrote {fit_path}, {photo} and {corner_png}")


def main() -> None:
    """Entry point of the ``popz`` command."""
    from popz.io.compilation_cache import enable_compilation_cache

    enable_compilation_cache()
    try:
        app()
    except PopzError as err:
        console.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        console.print("interrupted; rerun the same command to resume")
        sys.exit(130)


if __name__ == "__main__":
    main()
