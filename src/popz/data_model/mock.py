"""Mock catalogs: the hierarchical model run forwards, in Rubin Object-table conventions.

For each galaxy: parameters from the population prior, noiseless magnitudes
from the photometric emulator (or the simulator), Galactic extinction from a
random E(B-V), LSST noise (photerr's ``LsstErrorModel``, Gaussian in flux,
negative fluxes kept), an optional unreported error floor and error inflation
(noise the catalog errors do not admit), a multiplicative zero-point per
(tract, band) applied to fluxes and errors alike, and a cut on the observed
magnitude in a detection band. Galaxies are drawn in chunks of
``chunk_size`` from ``fold_in(key(seed), chunk)`` until ``n`` pass the cut, so
a mock is reproducible from its seed and settings.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from popz.config import ModelConfig
from popz.emulate.batching import batched_apply
from popz.errors import PopzError
from popz.sps.filters import band_labels
from popz.sps.photometry import AB_ZERO_POINT_NJY

__all__ = ["METADATA_KEY", "MockCatalog", "MockSettings", "flux_column", "flux_err_column", "make_mock", "write_mock"]

METADATA_KEY = "popz"
_MAX_CHUNKS = 100_000
PRE_CUT_MARGIN_MAG = 1.5


def flux_column(label: str) -> str:
    """Rubin Object-table flux column of a band label: ``i`` -> ``i_cModelFlux`` (nJy)."""
    return f"{label}_cModelFlux"


def flux_err_column(label: str) -> str:
    return f"{label}_cModelFluxErr"


class MockSettings(NamedTuple):
    """What a mock catalog injects.

    n : int                        galaxies that pass the selection
    seed : int
    n_tracts : int                 tracts 0..n_tracts-1, in equal strips of right ascension
    zero_point_scatter : float     zero-points are 10^(-0.4 N(0, scatter)) per (tract, band), mag
    error_floor : float            fraction of the flux added to the noise, not to the reported errors
    error_inflation : float        variance factor on the noise, not on the reported errors
    ebv_range : (float, float)     E(B-V) uniform in this range, mag
    mag_limit : float              cut on the observed AB magnitude in ``detection_band``
    detection_band : str           band label (``i``)
    years : float                  LSST survey years for photerr
    extinction_law : str           F99 or G23
    chunk_size : int               prior draws per chunk
    hyper : dict                   population hyperparameters overriding the model's defaults
    """

    n: int
    seed: int = 0
    n_tracts: int = 1
    zero_point_scatter: float = 0.0
    error_floor: float = 0.0
    error_inflation: float = 1.0
    ebv_range: tuple[float, float] = (0.0, 0.1)
    mag_limit: float = 25.3
    detection_band: str = "i"
    years: float = 10.0
    extinction_law: str = "F99"
    chunk_size: int = 100_000
    hyper: dict = {}


class MockCatalog(NamedTuple):
    """A mock: the table (pandas DataFrame) and the metadata stored under the Parquet key ``popz``."""

    table: object
    metadata: dict


def _check(settings: MockSettings, labels: tuple[str, ...]) -> None:
    if settings.n < 1:
        raise PopzError(f"--n must be positive, got {settings.n}")
    if settings.n_tracts < 1:
        raise PopzError(f"--tracts must be positive, got {settings.n_tracts}")
    lo, hi = settings.ebv_range
    if not (0 <= lo <= hi):
        raise PopzError(f"--ebv-range must satisfy 0 <= low <= high, got {lo},{hi}")
    if settings.zero_point_scatter < 0 or not 0 <= settings.error_floor < 1 or settings.error_inflation <= 0:
        raise PopzError("zero-point scatter and error floor must be >= 0 (floor < 1), error inflation > 0")
    if settings.detection_band not in labels:
        raise PopzError(f"--detection-band {settings.detection_band!r} is not one of the model's bands {', '.join(labels)}")
    if settings.chunk_size < 1:
        raise PopzError("chunk size must be positive")


def make_mock(
    config: ModelConfig,
    settings: MockSettings,
    *,
    emulator=None,
    prior=None,
    simulator: bool = False,
    progress: Callable[[int], None] | None = None,
) -> MockCatalog:
    """Draw a mock catalog of ``settings.n`` selected galaxies (see the module docstring).

    ``emulator``: a photometric emulator of ``config`` (default: the shipped one);
    ``simulator`` True runs the SPS simulator instead (exact, about 400 models/s per core).
    ``prior``: the model's :class:`PopulationPrior` (default: made here); passing the
    same emulator and prior to several calls reuses their compiled functions.
    ``progress(k)`` is called with the number of selected galaxies so far.
    """
    import pandas as pd
    from photerr import LsstErrorModel

    from popz.data_model.extinction import make_extinction_table
    from popz.population import make_population_prior
    from popz.sps.filters import load_bands

    labels = band_labels(config.bands)
    _check(settings, labels)
    prior = make_population_prior(config) if prior is None else prior
    hyper = prior.hyper(**settings.hyper)
    bands = load_bands(config.bands)
    extinction = make_extinction_table(bands, law=settings.extinction_law)
    photerr_names = _photerr_bands(labels)
    error_model = LsstErrorModel(nYrObs=settings.years, outputType="maggy", sigLim=0.0, ndMode="flag")

    if simulator:
        from popz.sps.simulator import make_simulator

        sim = make_simulator(config)

        def magnitudes(theta):
            return np.stack([sim.magnitudes(t.astype(np.float64)) for t in np.asarray(theta)])
    else:
        if emulator is None:
            from popz.emulate.files import load

            emulator = load(config.name, kind="photometry", config=config)
        if tuple(emulator.band_names) != tuple(config.bands):
            raise PopzError(f"the emulator's bands {emulator.band_names} are not the model's {config.bands}")
        def magnitudes(theta):
            return np.asarray(batched_apply(emulator.magnitudes, theta), np.float64)

    key = jax.random.key(settings.seed)
    k_zero_points, k_chunks = jax.random.split(key)
    zp_mag = settings.zero_point_scatter * np.asarray(jax.random.normal(k_zero_points, (settings.n_tracts, len(labels))))
    zero_points = 10.0 ** (-0.4 * zp_mag)
    detect = labels.index(settings.detection_band)

    parts, n_selected, n_drawn = [], 0, 0
    for chunk in range(_MAX_CHUNKS):
        if n_selected >= settings.n:
            break
        k = jax.random.fold_in(k_chunks, chunk)
        k_theta, k_pos, k_tract, k_ebv = jax.random.split(k, 4)
        m = settings.chunk_size
        theta = prior.sample(k_theta, m, hyper)
        mags = magnitudes(theta)
        tract = np.asarray(jax.random.randint(k_tract, (m,), 0, settings.n_tracts))
        lo, hi = settings.ebv_range
        ebv = jax.random.uniform(k_ebv, (m,), minval=lo, maxval=hi)
        a_band = np.asarray(_band_extinction(extinction, ebv), np.float64)
        ebv = np.asarray(ebv, np.float64)
        u = np.asarray(jax.random.uniform(k_pos, (m, 2)))
        n_drawn += m
        # Only galaxies within PRE_CUT_MARGIN_MAG of the cut (noiseless, before extinction) can pass it:
        # reaching the cut from further needs a > 15-sigma upward fluctuation at LSST 10-year depth.
        near = np.isfinite(mags).all(axis=1) & (mags[:, detect] < settings.mag_limit + PRE_CUT_MARGIN_MAG)
        theta, mags, tract, ebv, u, a_band = np.asarray(theta)[near], mags[near], tract[near], ebv[near], u[near], a_band[near]
        extincted = mags + a_band
        rng = np.random.default_rng([settings.seed, chunk])
        noisy = error_model(pd.DataFrame(extincted, columns=photerr_names), random_state=rng)
        flux = noisy[photerr_names].to_numpy() * AB_ZERO_POINT_NJY
        err = noisy[[f"{b}_err" for b in photerr_names]].to_numpy() * AB_ZERO_POINT_NJY
        true_flux = AB_ZERO_POINT_NJY * 10.0 ** (-0.4 * extincted)
        extra_var = (settings.error_inflation - 1.0) * err**2 + (settings.error_floor * true_flux) ** 2
        flux = flux + np.sqrt(np.maximum(extra_var, 0.0)) * rng.standard_normal(flux.shape)
        flux, err = flux * zero_points[tract], err * zero_points[tract]
        limit = AB_ZERO_POINT_NJY * 10.0 ** (-0.4 * settings.mag_limit)
        keep = flux[:, detect] > limit
        part = {
            "tract": tract.astype(np.int32),
            "coord_ra": (tract + u[:, 0]) * (10.0 / settings.n_tracts) + 50.0,
            "coord_dec": np.degrees(np.arcsin(np.sin(np.radians(-40.0)) + u[:, 1] * (np.sin(np.radians(-30.0)) - np.sin(np.radians(-40.0))))),
            "ebv": ebv,
        }
        for j, label in enumerate(labels):
            part[flux_column(label)] = flux[:, j]
            part[flux_err_column(label)] = err[:, j]
        theta = np.asarray(theta, np.float64)
        for j, name in enumerate(config.parameter_names):
            part[f"true_{name}"] = theta[:, j]
        for j, label in enumerate(labels):
            part[f"true_mag_{label}"] = mags[:, j]
        parts.append(pd.DataFrame({k: v[keep] for k, v in part.items()}))
        n_selected += int(keep.sum())
        if progress is not None:
            progress(min(n_selected, settings.n))
    else:
        raise PopzError(f"only {n_selected} of {settings.n} galaxies passed the cut after {n_drawn} draws")

    table = pd.concat(parts, ignore_index=True).iloc[: settings.n]
    table.insert(0, "objectId", np.arange(len(table), dtype=np.int64) + (np.int64(settings.seed) << np.int64(32)))
    table = table.reset_index(drop=True)
    metadata = {
        "model": config.name,
        "model_hash": config.hash,
        "seed": settings.seed,
        "zero_points": {str(t): {lab: float(zero_points[t, j]) for j, lab in enumerate(labels)} for t in range(settings.n_tracts)},
        "error_floors": {lab: settings.error_floor for lab in labels},
        "error_inflation": {lab: settings.error_inflation for lab in labels},
        "hyper": prior.hyper_dict(hyper),
        "selection": {"band": settings.detection_band, "mag_limit": settings.mag_limit, "on": "observed cModelFlux"},
        "ebv_range": list(settings.ebv_range),
        "extinction_law": settings.extinction_law,
        "noise": f"photerr LsstErrorModel, {settings.years} years",
        "photometry": "simulator" if simulator else "emulator",
        "n_drawn": n_drawn,
        "chunk_size": settings.chunk_size,
    }
    return MockCatalog(table, metadata)


@jax.jit
def _band_extinction(extinction, ebv):
    """A_b in mag, shape (n, n_bands), for E(B-V) of shape (n,)."""
    return jax.vmap(extinction)(ebv)


def _photerr_bands(labels: tuple[str, ...]) -> list[str]:
    """photerr's LSST band names (u g r i z y) for the model's band labels."""
    known = ("u", "g", "r", "i", "z", "y")
    if any(label not in known for label in labels):
        raise PopzError(f"the LSST error model knows bands {', '.join(known)}; the model has {', '.join(labels)}")
    return list(labels)


def write_mock(mock: MockCatalog, path: str | Path, command: str = "") -> Path:
    """Write the table as Parquet, atomically, with ``metadata`` (plus the command) as JSON under the key ``popz``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from popz import __version__
    from popz.io.atomic import atomic_path

    path = Path(path)
    table = pa.Table.from_pandas(mock.table, preserve_index=False)
    meta = {**mock.metadata, "command": command, "popz_version": __version__}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), METADATA_KEY.encode(): json.dumps(meta).encode()})
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def read_mock_metadata(path: str | Path) -> dict:
    """The ``popz`` metadata of a mock catalog (PopzError when it has none)."""
    import pyarrow.parquet as pq

    meta = pq.read_schema(path).metadata or {}
    if METADATA_KEY.encode() not in meta:
        raise PopzError(f"{path} has no popz metadata: not a popz mock")
    return json.loads(meta[METADATA_KEY.encode()])
