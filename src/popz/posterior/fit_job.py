"""A fit described by simple values (what ``popz fit`` was asked), and running it on a table.

:class:`FitJob` holds the options of ``popz fit`` as plain, picklable values,
so the same job runs in this process or on a Dask worker. :func:`prepare`
loads the models it names once per process (cached), and :func:`fit_table`
fits one table with them (:func:`popz.posterior.catalog_fit.fit_catalog`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

from popz.errors import PopzError

__all__ = ["FitJob", "Prepared", "prepare", "fit_table"]


class FitJob(NamedTuple):
    """The options of a fit (see ``popz fit --help`` for each)."""

    method: str = "npe"
    posterior: str = "lsst-default"
    fallback: str = "none"
    storage: str = "full"
    n_draws: int = 100
    is_proposals: int = 1000
    model: str = "lsst-default"
    emulator: str = "lsst-default"
    bands: tuple[str, ...] | None = None
    filters: tuple[str, ...] = ()
    flux_columns: str | None = None
    error_columns: str | None = None
    units: str = "nJy"
    id_column: str | None = None
    assume_dereddened: bool = False
    error_floor: float = 0.02
    hyper_folder: str | None = None
    seed: int = 0
    n_walkers: int = 32
    n_burn: int = 1000
    n_steps: int = 1000
    chunk_size: int | None = None
    batch_size: int | None = None


class Prepared(NamedTuple):
    """What a job needs, loaded: models, hyperparameters, data model and the batch fitter."""

    config: object
    labels: tuple[str, ...]
    emulator: object
    emulator_id: str
    prior: object
    hyper: object
    data_model: object
    known_tracts: tuple[int, ...]
    extinction: object
    settings: object
    fitter: Callable | None
    notes: tuple[str, ...]
    filters: tuple[str, ...]  # each band's throughput tag (speclite name or file path with its SHA-256)


@functools.lru_cache(maxsize=4)
def prepare(job: FitJob) -> Prepared:
    """Load everything ``job`` names (once per process and job)."""
    from popz.config import load_model
    from popz.data_model import default_data_model, make_extinction_table
    from popz.emulate.files import emulator_folder, load, read_manifest
    from popz.infer.fit import FitSettings
    from popz.population import make_population_prior
    from popz.posterior.catalog_fit import FALLBACK_BATCH, fit_in_batches
    from popz.sps.filters import band_labels, load_bands

    if job.method not in ("mcmc", "npe", "npe+is"):
        raise PopzError(f"--method must be mcmc, npe or npe+is, got {job.method!r}")
    if job.fallback not in ("none", "mcmc"):
        raise PopzError(f"--fallback must be none or mcmc, got {job.fallback!r}")
    config = load_model(job.model)
    labels = tuple(job.bands) if job.bands else band_labels(config.bands)
    curves = list(job.filters)
    if curves and len(curves) != len(labels):
        raise PopzError(f"--filters gives {len(curves)} curve(s) for {len(labels)} band(s) in --bands: give one per band, in order")
    if labels == band_labels(config.bands) and not curves:
        band_passes = load_bands(config.bands)
        phot = load(job.emulator, kind="photometry", config=config)
        emulator_id = read_manifest(emulator_folder(job.emulator, "photometry")).get("weights_sha256", str(job.emulator))
    else:
        # other bands: the spectrum emulator integrated through the given curves, no training
        from popz.emulate.bands import DEFAULT_ERROR_MAG, band_photometry

        if not curves:
            raise PopzError(
                f"--bands {','.join(labels)} are not the model's ({','.join(band_labels(config.bands))}): "
                "give their filter curves with --filters (one file per band, in order)"
            )
        if job.method != "mcmc":
            raise PopzError(f"--method {job.method}: the posterior flow knows only the model's bands; use --method mcmc for other bands")
        band_passes = load_bands(curves)
        phot = band_photometry(load(job.emulator, kind="spectrum", config=config), band_passes, DEFAULT_ERROR_MAG)
        spectrum_id = read_manifest(emulator_folder(job.emulator, "spectrum")).get("weights_sha256", str(job.emulator))
        emulator_id = f"{spectrum_id}+" + "+".join(b.provenance for b in band_passes)
    prior = make_population_prior(config)
    hyper = prior.hyper()
    error_floor = job.error_floor
    data_model = default_data_model(0, len(labels), error_floor=error_floor)
    known_tracts: tuple[int, ...] = ()
    if job.hyper_folder is not None:
        from popz.infer.hierarchical_files import calibration_data_model, read_calibration

        calibration = read_calibration(job.hyper_folder, band_labels=labels, prior=prior)
        hyper = prior.hyper(**calibration.hyper)
        data_model, known_tracts = calibration_data_model(calibration), tuple(calibration.tracts)
        error_floor = float(np.max(calibration.error_floors))
        emulator_id = f"{emulator_id}+hyper-{calibration.digest[:16]}"
    extinction = make_extinction_table(band_passes)
    mcmc_settings = FitSettings(n_walkers=job.n_walkers, n_burn=job.n_burn, n_steps=job.n_steps, seed=job.seed)
    settings, fitter, notes = mcmc_settings, None, []
    if job.method != "mcmc":
        from popz.infer.amortized_files import load_posterior, posterior_folder
        from popz.infer.amortized_fit import NPESettings, npe_batch, with_mcmc_fallback
        from popz.infer.fit import fit_batch

        flow = load_posterior(job.posterior, config=config)
        trained_floor = read_manifest(posterior_folder(job.posterior))["training"]["settings"]["error_floor"]
        if trained_floor != error_floor and job.hyper_folder is None:
            notes.append(f"the posterior flow was trained with an error floor of {trained_floor}, not {error_floor}")
        if job.method == "npe+is" and job.is_proposals < 2:
            raise PopzError(f"--is-proposals must be at least 2 (flow draws weighted per galaxy), got {job.is_proposals}")
        settings = NPESettings(n_draws=job.n_draws, importance=job.method == "npe+is", n_proposals=job.is_proposals, seed=job.seed)
        emulator_id = f"{emulator_id}+{read_manifest(posterior_folder(job.posterior))['weights_sha256']}+fallback-{job.fallback}"

        def fitter(observations, object_id):
            result = npe_batch(
                observations, flow=flow, emulator=phot, prior=prior, hyper=hyper, data_model=data_model,
                extinction=extinction, settings=settings, object_id=object_id,
            )  # fmt: skip
            if job.fallback == "mcmc":

                def one_batch(obs, ids):
                    return fit_batch(
                        obs, emulator=phot, prior=prior, hyper=hyper, data_model=data_model, extinction=extinction,
                        settings=mcmc_settings, object_id=ids,
                    )  # fmt: skip

                # one galaxy per call: its result cannot depend on which galaxies were flagged beside it
                refit = lambda obs, rows: fit_in_batches(one_batch, obs, object_id[rows], FALLBACK_BATCH)  # noqa: E731
                result = with_mcmc_fallback(result, observations, refit)
            return result

    filters = tuple(b.provenance for b in band_passes)
    return Prepared(config, labels, phot, emulator_id, prior, hyper, data_model, known_tracts, extinction, settings, fitter, tuple(notes), filters)


def rubin_table(job: FitJob, table, labels):
    """``table`` (any supported layout) in Rubin columns, as ``job`` reads it."""
    from popz.io.catalog import to_rubin_columns

    rubin = to_rubin_columns(
        table, labels, flux_template=job.flux_columns, error_template=job.error_columns, units=job.units,
        id_column=job.id_column, assume_dereddened=job.assume_dereddened,
    )  # fmt: skip
    if job.hyper_folder is not None and "tract" not in rubin.columns:  # as popz calibrate does: one tract, 0
        rubin = rubin.assign(tract=0)
    return rubin


def batch_and_chunk(job: FitJob, n_total: int) -> tuple[int, int]:
    """The job's batch size (default: per backend, or n_total rounded up to a power of two if smaller) and chunk size
    (default: a whole number of batches near 256 galaxies for MCMC, 4096 for the amortized path)."""
    from popz.posterior.catalog_fit import default_batch_size

    batch = job.batch_size or default_batch_size(n_total)
    # a chunk is a whole number of device calls, or the last call of each chunk runs part-empty
    chunk = job.chunk_size or -(-(256 if job.method == "mcmc" else 4096) // batch) * batch
    return batch, chunk


def fit_table(job: FitJob, table, out, *, first_row: int = 0, n_total: int | None = None, command: str = "",
              progress: Callable[[int], None] | None = None) -> Path:  # fmt: skip
    """Fit ``table`` (rows ``first_row ..`` of a catalog of ``n_total`` rows) as ``job`` says; write OUT's products."""
    from popz.posterior.catalog_fit import fit_catalog

    p = prepare(job)
    rubin = rubin_table(job, table, p.labels)
    batch, chunk = batch_and_chunk(job, n_total if n_total is not None else first_row + len(rubin))
    return fit_catalog(
        rubin, p.config, p.labels, out, emulator=p.emulator, emulator_id=p.emulator_id, prior=p.prior, hyper=p.hyper,
        data_model=p.data_model, extinction=p.extinction, settings=p.settings, fitter=p.fitter, storage=job.storage,
        chunk_size=chunk, batch_size=batch, first_row=first_row, known_tracts=p.known_tracts, command=command, progress=progress,
        metadata={"filters": dict(zip(p.labels, p.filters))},
    )  # fmt: skip
