"""RAIL stages for popz: redshift and SPS-parameter posteriors from LSST magnitudes.

:class:`PopzInformer` writes a small model (plain values: which popz model,
emulator and posterior flow to use, the bands, the error floor, the method);
popz's networks are pretrained and shipped, so nothing is trained.
:class:`PopzEstimator` fits every galaxy with popz's amortized posterior
(``npe``, or ``npe+is`` for importance-weighted draws) and returns a qp
ensemble of p(z) on RAIL's redshift grid, with point estimates, redshift
quantiles, medians and 68% intervals of every SPS parameter, and popz's
per-object ``flags`` as ancillary data. See docs/rail.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import qp
from ceci.config import StageParameter as Param
from rail.core.common_params import SharedParams
from rail.core.data import TableLike
from rail.core.enums import DistributionType
from rail.estimation.estimator import CatEstimator
from rail.estimation.informer import CatInformer

__all__ = ["MODEL_FORMAT", "PopzEstimator", "PopzInformer"]

MODEL_FORMAT = 1  # version of the model dict PopzInformer writes
METHODS = ("npe", "npe+is")
SHIPPED = "lsst-default"
_SUMMARY_BLOCK = 256  # galaxies per p(z) evaluation: bounds the KDE's (block, grid, draws) array; one compiled shape
# RAIL's magnitude sentinels are mapped onto popz's (io.catalog): >= 90 not detected, <= -90 not observed
_POPZ_NON_DETECTION = 99.0
_POPZ_NOT_OBSERVED = -99.0


def _name_or_path(value: str) -> str:
    """A shipped name unchanged; an existing file or folder as an absolute path (so the model file works from any directory)."""
    path = Path(value).expanduser()
    return str(path.resolve()) if path.exists() else value


def _check_method(method: str) -> str:
    if method not in METHODS:
        raise ValueError(f"popz: method must be one of {', '.join(METHODS)}, got {method!r}")
    return method


class PopzInformer(CatInformer):
    """Write the model PopzEstimator uses: popz's pretrained, shipped networks need no training.

    The model is a dict of plain values (``kind``, ``format``, ``popz_model``,
    ``emulator``, ``posterior``, ``bands``, ``band_labels``, ``error_floor``,
    ``method``, ``model_hash``, ``popz_version``). The training data, if given,
    is not read. With ``check`` (default) the model config is loaded and the
    emulator's and flow's manifests are read to check they exist and were
    trained for that model; the networks themselves are loaded by the estimator.
    """

    name = "PopzInformer"
    entrypoint_function = "inform"
    config_options = CatInformer.config_options.copy()
    config_options.update(
        popz_model=Param(str, SHIPPED, msg="popz model config: shipped name or path of a YAML file"),
        emulator=Param(str, SHIPPED, msg="photometric emulator: shipped name or folder"),
        posterior=Param(str, SHIPPED, msg="amortized posterior flow: shipped name or folder"),
        method=Param(str, "npe", msg="npe (flow draws) or npe+is (flow proposals weighted by prior x likelihood)"),
        error_floor=Param(float, 0.02, msg="fractional flux error added in quadrature to every band (the flow was trained with 0.02)"),
        check=Param(bool, True, msg="check that the model config, emulator and posterior exist and belong together"),
    )

    def inform(self, training_data: TableLike | None = None, **kwargs: Any):
        """Write the model; ``training_data`` is optional and not read (nothing is trained)."""
        if training_data is not None:
            self.set_data("input", training_data)
        self.validate()
        self.run()
        self.finalize()
        return self.get_handle("model")

    def run(self) -> None:
        from popz import __version__
        from popz.config import load_model
        from popz.sps.filters import band_labels

        method = _check_method(self.config.method)
        if not self.config.error_floor >= 0:
            raise ValueError(f"popz: error_floor must be >= 0, got {self.config.error_floor}")
        popz_model = _name_or_path(self.config.popz_model)
        emulator = _name_or_path(self.config.emulator)
        posterior = _name_or_path(self.config.posterior)
        config = load_model(popz_model)
        if self.config.check:
            _check_networks(config, emulator, posterior)
        self.model = dict(
            kind="popz",
            format=MODEL_FORMAT,
            popz_version=__version__,
            popz_model=popz_model,
            model_hash=config.hash,
            emulator=emulator,
            posterior=posterior,
            bands=list(config.bands),
            band_labels=list(band_labels(config.bands)),
            error_floor=float(self.config.error_floor),
            method=method,
        )
        self.add_data("model", self.model)


def _check_networks(config, emulator: str, posterior: str) -> None:
    """The emulator and flow manifests exist and name ``config``'s hash (cheap: no weights are read)."""
    from popz.config import ModelConfig
    from popz.emulate.files import EmulatorFileError, emulator_folder, read_manifest
    from popz.infer.amortized_files import posterior_folder

    for what, folder in (("emulator", emulator_folder(emulator, "photometry")), ("posterior flow", posterior_folder(posterior))):
        manifest = read_manifest(folder)
        try:
            trained_for = ModelConfig.model_validate(manifest["model_config"]).hash
        except (KeyError, TypeError, ValueError) as err:
            raise EmulatorFileError(f"{folder}: manifest lacks a valid model_config ({type(err).__name__})") from None
        if trained_for != config.hash:
            raise EmulatorFileError(f"the {what} at {folder} was trained for another model than {config.name!r} (hash {config.hash[:12]})")


class PopzEstimator(CatEstimator):
    """Per-galaxy p(z) and SPS-parameter summaries from popz's amortized posterior.

    Magnitudes (``bands``/``err_bands``, AB, already corrected for Galactic
    extinction unless ``ebv_col`` names an E(B-V) column) are converted to
    fluxes; ``nondetect_val`` marks a non-detection whose error column holds the
    1-sigma limiting magnitude (else ``mag_limits`` gives it), ``nonobserved_val``
    or NaN a band not observed. ``popz_model``, ``emulator``, ``posterior``,
    ``method`` and ``error_floor`` come from the model PopzInformer wrote unless
    set here; without a model, the shipped defaults are used.
    """

    name = "PopzEstimator"
    entrypoint_function = "estimate"
    config_options = CatEstimator.config_options.copy()
    config_options.update(
        bands=SharedParams.copy_param("bands"),
        err_bands=SharedParams.copy_param("err_bands"),
        nondetect_val=SharedParams.copy_param("nondetect_val"),
        nonobserved_val=SharedParams.copy_param("nonobserved_val"),
        mag_limits=SharedParams.copy_param("mag_limits"),
        popz_model=Param(str, None, required=False, msg="popz model config (shipped name or YAML path); default: the model's"),
        emulator=Param(str, None, required=False, msg="photometric emulator (shipped name or folder); default: the model's"),
        posterior=Param(str, None, required=False, msg="posterior flow (shipped name or folder); default: the model's"),
        method=Param(str, None, required=False, msg="npe or npe+is; default: the model's"),
        error_floor=Param(float, None, required=False, msg="fractional error floor; default: the model's"),
        n_draws=Param(int, 100, msg="posterior draws per galaxy (p(z) and summaries are computed from them)"),
        seed=Param(int, 0, msg="random seed: draws follow (seed, object id), whatever the chunking"),
        batch_size=Param(int, 0, msg="galaxies per device call; 0: 256 on CPU, 4096 on GPU, or fewer for a small input"),
        ebv_col=Param(str, "", msg="column of Galactic E(B-V) (mag) when the magnitudes are not dereddened; '' = dereddened"),
    )

    def __init__(self, args: Any, **kwargs: Any) -> None:
        super().__init__(args, **kwargs)
        self._popz: dict | None = None
        self._fitter = None
        self._batch = None

    @classmethod
    def default_distribution_type(cls) -> DistributionType:
        return DistributionType.posterior

    def validate(self) -> None:
        """Check that the magnitude and error columns exist (before any network is loaded)."""
        if len(self.config.bands) != len(self.config.err_bands):
            raise ValueError(f"popz: {len(self.config.bands)} bands but {len(self.config.err_bands)} err_bands")
        self._get_stage_columns()
        data = self.get_handle("input", allow_missing=True)
        self._check_column_names(data, self.stage_columns)

    def _get_stage_columns(self) -> None:
        self.stage_columns = list(self.config.bands) + list(self.config.err_bands)

    def open_model(self, **kwargs: Any):
        """Read the model dict (or none: shipped defaults) and settle the settings; the networks load on the first chunk."""
        super().open_model(**kwargs)
        model = self.model if self.model is not None else {}
        if not isinstance(model, dict) or (model and model.get("kind") != "popz"):
            raise TypeError(f"popz: the model is not one PopzInformer wrote (got {type(model).__name__})")
        if model.get("format", MODEL_FORMAT) > MODEL_FORMAT:
            raise ValueError(f"popz: model format {model['format']} is newer than this plugin reads ({MODEL_FORMAT})")

        def setting(key, default):
            value = self.config[key] if key in self.config else None  # not .get(): StageConfig's returns the Param
            return model.get(key, default) if value is None or value == "None" else value

        self._popz = dict(
            popz_model=_name_or_path(setting("popz_model", SHIPPED)),
            emulator=_name_or_path(setting("emulator", SHIPPED)),
            posterior=_name_or_path(setting("posterior", SHIPPED)),
            method=_check_method(setting("method", "npe")),
            error_floor=float(setting("error_floor", 0.02)),
            model_hash=model.get("model_hash"),
        )
        self._fitter = None
        return self.model

    def _prepare(self) -> None:
        """Load the networks and build the batch fitter (popz's own, cached per process), once per run."""
        from popz.posterior.catalog_fit import default_batch_size
        from popz.posterior.fit_job import FitJob, prepare

        if self._popz is None:  # _process_chunk called without run()
            self.open_model(**self.config)
        s = self._popz
        job = FitJob(method=s["method"], posterior=s["posterior"], n_draws=int(self.config.n_draws), model=s["popz_model"],
                     emulator=s["emulator"], error_floor=s["error_floor"], seed=int(self.config.seed))  # fmt: skip
        prepared = prepare(job)
        config, labels = prepared.config, prepared.labels
        if s["model_hash"] is not None and s["model_hash"] != config.hash:
            raise ValueError(f"popz: model {s['popz_model']!r} has changed since PopzInformer ran (hash {config.hash[:12]}): rerun it")
        if len(self.config.err_bands) != len(self.config.bands):
            raise ValueError(f"popz: {len(self.config.bands)} bands but {len(self.config.err_bands)} err_bands")
        if len(self.config.bands) != len(labels):
            raise ValueError(
                f"popz: bands lists {len(self.config.bands)} columns, the model has {len(labels)} bands ({', '.join(labels)}): "
                "give one magnitude column per model band, in the model's order"
            )
        self._nets, self._fitter = dict(config=config, labels=labels), prepared.fitter
        self._batch = self.config.batch_size or default_batch_size(self._input_length or 1)

    def _initialize_run(self) -> None:
        super()._initialize_run()
        self._fitter = None

    def _popz_table(self, start: int, end: int, data: TableLike):
        """RAIL's columns -> popz's Rubin columns (objectId, ebv, <band>_cModelFlux[Err] in nJy)."""
        import pandas as pd

        from popz.io.catalog import LIMIT_RANGE_MAG, to_rubin_columns

        n = end - start
        labels = self._nets["labels"]
        frame = pd.DataFrame(index=np.arange(n))
        for column in (self.config.id_col, "objectId", "id"):
            if column in data.keys():
                frame["objectId"] = np.asarray(data[column])
                break
        else:
            frame["objectId"] = start + np.arange(n, dtype=np.int64)  # catalog row: ids unique across chunks
        if self.config.ebv_col:
            frame["ebv"] = np.asarray(data[self.config.ebv_col], np.float64)
        nondetect, nonobserved = float(self.config.nondetect_val), float(self.config.nonobserved_val)
        for label, mag_col, err_col in zip(labels, self.config.bands, self.config.err_bands):
            mag = np.asarray(data[mag_col], np.float64).copy()
            err = np.asarray(data[err_col], np.float64).copy()
            undetected = np.isnan(mag) if np.isnan(nondetect) else mag == nondetect
            unobserved = (np.isnan(mag) & ~undetected) | (mag == nonobserved)
            limit_ok = (err > LIMIT_RANGE_MAG[0]) & (err < LIMIT_RANGE_MAG[1])
            limit = self.config.mag_limits.get(mag_col) if self.config.mag_limits else None
            if limit is not None:  # no usable limit in the error column: RAIL's limiting magnitude for the band
                err = np.where(undetected & ~limit_ok, float(limit), err)
            mag = np.where(undetected, _POPZ_NON_DETECTION, np.where(unobserved, _POPZ_NOT_OBSERVED, mag))
            frame[f"{label}_mag"], frame[f"{label}_magerr"] = mag, err
        return to_rubin_columns(
            frame, labels, flux_template="{band}_mag", error_template="{band}_magerr", units="mag",
            id_column="objectId", assume_dereddened=True,
        )  # fmt: skip

    def _process_chunk(self, start: int, end: int, data: TableLike, first: bool) -> None:
        from popz.io.catalog import observations_from_table
        from popz.posterior.catalog_fit import fit_in_batches

        if self._fitter is None:
            self._prepare()
        labels = self._nets["labels"]
        catalog = observations_from_table(self._popz_table(start, end, data), labels)
        result = fit_in_batches(self._fitter, catalog.observations, catalog.object_id, self._batch, first_row=start)
        grid = np.linspace(self.config.zmin, self.config.zmax, self.config.nzbins)
        columns, pdf = _summaries(np.asarray(result.samples), self._nets["config"].parameter_names, grid, start)
        flags = (np.asarray(catalog.flags) | np.asarray(result.flags)).astype(np.int32)
        off_grid = ~(pdf.sum(axis=1) > 0)  # every draw far outside [zmin, zmax]: a flat p(z) on the grid
        pdf[off_grid] = 1.0
        zmode = np.where(off_grid, np.clip(columns["z_median"], grid[0], grid[-1]), columns["z_mode"])
        ensemble = qp.Ensemble(qp.interp, data=dict(xvals=grid, yvals=pdf))
        ancil = dict(
            objectId=np.asarray(catalog.object_id),
            zmode=zmode,
            zmean=columns["z_mean"],
            zmedian=columns["z_median"],
            **{f"z_q{q:02d}": columns[f"z_q{q:02d}"] for q in (5, 16, 84, 95)},
        )
        for name in self._nets["config"].parameter_names:
            if name != "redshift":
                for stat in ("median", "q16", "q84"):
                    ancil[f"{name}_{stat}"] = columns[f"{name}_{stat}"]
        ancil["flags"] = flags
        ensemble.set_ancil(ancil)
        self._do_chunk_output(ensemble, start, end, first, data=data)


def _summaries(samples: np.ndarray, parameter_names, grid: np.ndarray, first_row: int) -> tuple[dict, np.ndarray]:
    """:func:`popz.posterior.summaries.summarize` in blocks of _SUMMARY_BLOCK galaxies placed by catalog row.

    Memory stays bounded (the KDE holds block x grid x draws floats), and, as
    for the fits, every galaxy's p(z) is bitwise the same whatever the chunking.
    """
    from popz.posterior.catalog_fit import fit_in_batches
    from popz.posterior.summaries import summarize

    def block(rows, _ids):
        return summarize(rows, parameter_names, grid)

    return fit_in_batches(block, samples, np.arange(samples.shape[0]), _SUMMARY_BLOCK, first_row=first_row)
