import json

import pytest
import yaml

from popz.config import load_model, shipped_models
from popz.errors import ConfigError


def test_shipped_model_loads_and_every_parameter_is_documented(config):
    assert "lsst-default" in shipped_models()
    for p in config.parameters:
        assert p.description and p.bounds[0] < p.bounds[1]
    assert len(config.hash) == 64
    assert load_model("lsst-default").hash == config.hash  # stable


def _write(tmp_path, data, name="m.yaml"):
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _default_dict():
    return load_model("lsst-default").to_dict()


def test_round_trip_through_yaml_keeps_the_hash(tmp_path, config):
    path = _write(tmp_path, config.to_dict())
    assert load_model(path).hash == config.hash


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda d: d["parameters"][0].update(bounds=[4.0, 0.0]), r"parameters\.0\.bounds: .*lower < upper"),
        (lambda d: d["parameters"][1].update(name="redshift"), r"duplicated parameter names: \['redshift'\]"),
        (lambda d: d["parameters"][3].update(prior={"type": "cauchy"}), r"parameters\.3\.prior"),
        (lambda d: d["parameters"][3].update(prior={"type": "student_t", "df": 2, "scale": -1}), r"scale"),
        (lambda d: d.update(bands=[]), r"bands: .*at least one band"),
        (lambda d: d.update(colour="blue"), r"colour: Extra inputs are not permitted"),
        (lambda d: d.pop("parameters"), r"parameters: Field required"),
    ],
)
def test_invalid_models_give_one_line_errors_naming_the_field(tmp_path, mutate, message):
    data = _default_dict()
    mutate(data)
    with pytest.raises(ConfigError, match=message) as info:
        load_model(_write(tmp_path, data))
    assert "\n" not in str(info.value)


def test_malformed_yaml_says_where(tmp_path):
    with pytest.raises(ConfigError, match=r"not valid YAML at line \d+, column \d+"):
        load_model(_write(tmp_path, "name: x\nparameters: [unclosed\n"))


def test_unknown_model_name_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="unknown model 'nope'.*lsst-default"):
        load_model("nope")
    with pytest.raises(ConfigError, match="does not exist"):
        load_model(tmp_path / "missing.yaml")


def test_unknown_cosmology_and_backend(tmp_path):
    from popz.sps.simulator import make_simulator

    data = _default_dict()
    data["cosmology"] = {"name": "Planck99"}
    with pytest.raises(ConfigError, match="unknown cosmology 'Planck99'"):
        load_model(_write(tmp_path, data)).cosmology.astropy()
    data = _default_dict()
    data["simulator"]["backend"] = "fsps"
    with pytest.raises(ConfigError, match="unknown simulator backend 'fsps'"):
        make_simulator(load_model(_write(tmp_path, data)))


def test_bagpipes_backend_checks_parameters_and_settings(tmp_path):
    from popz.sps.simulator import make_simulator

    data = _default_dict()
    data["parameters"] = [p for p in data["parameters"] if p["name"] != "log_u"]
    with pytest.raises(ConfigError, match=r"missing \['log_u'\]"):
        make_simulator(load_model(_write(tmp_path, data)))
    data = _default_dict()
    data["simulator"]["settings"]["birth_cloud_age_gyr"] = -1
    with pytest.raises(ConfigError, match="birth_cloud_age_gyr"):
        make_simulator(load_model(_write(tmp_path, data)))


def test_config_is_json_serialisable(config):
    assert json.loads(json.dumps(config.to_dict()))["name"] == "lsst-default"
