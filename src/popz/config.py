"""The model configuration: the single source of truth for a popz model.

A model is a YAML file validated into a :class:`ModelConfig`: its parameters
(name, unit, bounds, default prior, description) in the order of the parameter
vector, its band set, its cosmology and its simulator backend with settings.
Every other part of popz reads parameter names and bounds from here.

Shipped models live in ``popz/data/models/<name>.yaml`` and load by name:
``load_model("lsst-default")``; any other model loads from a path.
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import numpy as np
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from popz.errors import ConfigError

__all__ = [
    "UniformPrior",
    "NormalPrior",
    "StudentTPrior",
    "Parameter",
    "CosmologyConfig",
    "SimulatorConfig",
    "ModelConfig",
    "load_model",
    "shipped_models",
]


HASHED_FIELDS = ("name", "description", "parameters", "bands", "cosmology", "simulator")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class UniformPrior(_Strict):
    """Uniform between the parameter's bounds."""

    type: Literal["uniform"] = "uniform"


class NormalPrior(_Strict):
    """Normal(loc, scale), truncated to the parameter's bounds."""

    type: Literal["normal"] = "normal"
    loc: float
    scale: float = Field(gt=0)


class StudentTPrior(_Strict):
    """Student-t(df, loc, scale), truncated to the parameter's bounds.

    The continuity star-formation-history prior (Leja et al. 2019) is a Student-t
    with df=2 and scale 0.3 on each log SFR ratio.
    """

    type: Literal["student_t"] = "student_t"
    df: float = Field(gt=0)
    loc: float = 0.0
    scale: float = Field(gt=0)


Prior = Annotated[Union[UniformPrior, NormalPrior, StudentTPrior], Field(discriminator="type")]


class Parameter(_Strict):
    """One entry of the parameter vector."""

    name: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    unit: str = ""
    bounds: tuple[float, float]
    prior: Prior = UniformPrior()
    description: str

    @field_validator("bounds")
    @classmethod
    def _ordered(cls, bounds: tuple[float, float]) -> tuple[float, float]:
        lo, hi = bounds
        if not (np.isfinite(lo) and np.isfinite(hi)) or not lo < hi:
            raise ValueError(f"bounds must be finite with lower < upper, got {list(bounds)}")
        return bounds


class CosmologyConfig(_Strict):
    """A named astropy cosmology (``Planck18``, ``WMAP9``, ...) or flat LambdaCDM by H0 and Om0."""

    name: str | None = "Planck18"
    H0: float | None = None
    Om0: float | None = None

    @model_validator(mode="after")
    def _one_of(self) -> "CosmologyConfig":
        custom = self.H0 is not None or self.Om0 is not None
        if custom and (self.H0 is None or self.Om0 is None):
            raise ValueError("a custom cosmology needs both H0 and Om0")
        if custom and self.name not in (None, "Planck18"):
            raise ValueError("give either a cosmology name or H0 and Om0, not both")
        return self

    def astropy(self):
        """The astropy cosmology object."""
        from astropy import cosmology

        if self.H0 is not None:
            return cosmology.FlatLambdaCDM(H0=self.H0, Om0=self.Om0)
        if self.name not in cosmology.realizations.available:
            raise ConfigError(
                f"unknown cosmology {self.name!r}; astropy has {', '.join(cosmology.realizations.available)}"
            )
        return getattr(cosmology, self.name)


class SimulatorConfig(_Strict):
    """Which SPS backend turns parameters into SEDs, and its settings (validated by the backend)."""

    backend: str = "bagpipes"
    settings: dict[str, Any] = Field(default_factory=dict)


class Hyperparameter(_Strict):
    """One hyperparameter of the population prior: its default value, bounds and hyperprior."""

    value: float
    bounds: tuple[float, float]
    hyperprior: Prior = UniformPrior()
    unit: str = ""
    description: str = ""

    @model_validator(mode="after")
    def _inside(self) -> "Hyperparameter":
        lo, hi = self.bounds
        if not (np.isfinite(lo) and np.isfinite(hi)) or not lo < hi:
            raise ValueError(f"bounds must be finite with lower < upper, got {list(self.bounds)}")
        if not lo <= self.value <= hi:
            raise ValueError(f"value {self.value} is outside its bounds {list(self.bounds)}")
        return self


class PopulationConfig(_Strict):
    """The population prior (ingredient C): a parametric family and its hyperparameters by name."""

    family: str
    hyperparameters: dict[str, Hyperparameter]


class ModelConfig(_Strict):
    """A popz model: parameters, bands, cosmology, simulator, and optionally a population prior.

    ``population`` is not part of :attr:`hash`: changing it does not invalidate
    training sets or emulators.
    """

    name: str
    description: str = ""
    parameters: tuple[Parameter, ...]
    bands: tuple[str, ...]
    cosmology: CosmologyConfig = CosmologyConfig()
    simulator: SimulatorConfig = SimulatorConfig()
    population: PopulationConfig | None = None

    @field_validator("parameters")
    @classmethod
    def _unique_names(cls, parameters: tuple[Parameter, ...]) -> tuple[Parameter, ...]:
        names = [p.name for p in parameters]
        duplicated = sorted({n for n in names if names.count(n) > 1})
        if duplicated:
            raise ValueError(f"duplicated parameter names: {duplicated}")
        if not parameters:
            raise ValueError("a model needs at least one parameter")
        return parameters

    @field_validator("bands")
    @classmethod
    def _bands(cls, bands: tuple[str, ...]) -> tuple[str, ...]:
        if not bands:
            raise ValueError("a model needs at least one band")
        if len(set(bands)) != len(bands):
            raise ValueError(f"duplicated bands in {list(bands)}")
        return bands

    @property
    def parameter_names(self) -> tuple[str, ...]:
        return tuple(p.name for p in self.parameters)

    @property
    def n_parameters(self) -> int:
        return len(self.parameters)

    @property
    def lower(self) -> np.ndarray:
        """Lower bounds, shape (n_parameters,), in each parameter's unit."""
        return np.array([p.bounds[0] for p in self.parameters])

    @property
    def upper(self) -> np.ndarray:
        """Upper bounds, shape (n_parameters,), in each parameter's unit."""
        return np.array([p.bounds[1] for p in self.parameters])

    def index(self, name: str) -> int:
        """Position of parameter ``name`` in the parameter vector."""
        try:
            return self.parameter_names.index(name)
        except ValueError:
            raise ConfigError(f"model {self.name!r} has no parameter {name!r}") from None

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def hash(self) -> str:
        """SHA-256 of the validated model (canonical JSON of the fields in ``HASHED_FIELDS``).

        Emulators and training sets record it and loaders check it. Only what
        shapes the simulator's outputs and the training draws is hashed, so a
        section added later for other ingredients (the population prior) does
        not invalidate them.
        """
        data = {k: v for k, v in self.to_dict().items() if k in HASHED_FIELDS}
        canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def shipped_models() -> list[str]:
    """Names of the models shipped with popz."""
    folder = resources.files("popz") / "data" / "models"
    return sorted(p.name[: -len(".yaml")] for p in folder.iterdir() if p.name.endswith(".yaml"))


def _format_validation_error(err: ValidationError, source: str) -> str:
    first = err.errors()[0]
    where = ".".join(str(x) for x in first["loc"]) or "(top level)"
    more = f" (and {err.error_count() - 1} more)" if err.error_count() > 1 else ""
    return f"invalid model {source}: {where}: {first['msg']}{more}"


def load_model(name_or_path: str | Path) -> ModelConfig:
    """Load and validate a model by shipped name (``lsst-default``) or from a YAML path.

    Raises :class:`ConfigError` with a one-line message for a missing file,
    malformed YAML or invalid values.
    """
    text_source = str(name_or_path)
    path = Path(name_or_path)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise ConfigError(f"model file {path} does not exist")
        text = path.read_text()
    elif text_source in shipped_models():
        text = (resources.files("popz") / "data" / "models" / f"{text_source}.yaml").read_text()
        text_source = f"'{text_source}' (shipped)"
    else:
        raise ConfigError(
            f"unknown model {text_source!r}: not a file and not a shipped model ({', '.join(shipped_models())})"
        )
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"model {text_source} is not valid YAML{where}: {getattr(err, 'problem', err)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"model {text_source} must be a YAML mapping, got {type(raw).__name__}")
    try:
        return ModelConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(_format_validation_error(err, text_source)) from None
