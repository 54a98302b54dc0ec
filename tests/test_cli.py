"""The command line: user errors are one line with a non-zero exit and no traceback."""

import subprocess
import sys

import pandas as pd
import pytest
import yaml

from popz.config import load_model


def _popz(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "popz.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=300
    )


def _assert_one_line_error(result, pattern):
    import re

    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert re.search(pattern, lines[0]), lines[0]


def _model_file(tmp_path, mutate):
    data = load_model("lsst-default").to_dict()
    mutate(data)
    path = tmp_path / "model.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_models_and_show_model():
    listing = _popz("models")
    assert listing.returncode == 0 and "lsst-default" in listing.stdout
    shown = _popz("show-model", "lsst-default")
    assert shown.returncode == 0 and "log_sfr_ratio_6" in shown.stdout and "student_t" in shown.stdout


def test_simulate_writes_a_table(tmp_path):
    out = tmp_path / "s.parquet"
    result = _popz("simulate", "--n", "6", "--out", str(out), "--seed", "4", "--chunk-size", "3", "--quiet")
    assert result.returncode == 0, result.stderr
    table = pd.read_parquet(out)
    assert len(table) == 6 and table["mag_i"].notna().all()


@pytest.mark.parametrize(
    "mutate, pattern",
    [
        (lambda d: d.update(bands=["lsst2023-u", "lsst2023-w"]), r"^error: unknown band 'lsst2023-w'"),
        (lambda d: d.update(bands=["/no/such/filter.dat"]), r"^error: filter file /no/such/filter.dat does not exist"),
        (lambda d: d["parameters"][2].update(bounds=[1, -1]), r"^error: invalid model .*parameters\.2\.bounds"),
    ],
)
def test_bad_models_are_one_line_errors(tmp_path, mutate, pattern):
    result = _popz("simulate", "--model", _model_file(tmp_path, mutate), "--n", "2", "--out", str(tmp_path / "s.parquet"))
    _assert_one_line_error(result, pattern)


def test_malformed_yaml_and_unknown_model(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [x\n")
    _assert_one_line_error(_popz("show-model", str(bad)), r"^error: model .*not valid YAML at line")
    _assert_one_line_error(_popz("show-model", "no-such-model"), r"^error: unknown model 'no-such-model'")


def test_malformed_filter_file(tmp_path):
    curve = tmp_path / "f.dat"
    curve.write_text("5000 0.1\n4000 0.2\n6000 0.3\n7000 0.1\n8000 0\n")
    result = _popz("simulate", "--model", _model_file(tmp_path, lambda d: d.update(bands=[str(curve)])), "--n", "2", "--out", str(tmp_path / "s.parquet"))
    _assert_one_line_error(result, r"^error: filter .*f.dat: wavelengths must increase strictly; row 2")


def test_emulator_commands_report_bad_input_in_one_line(tmp_path):
    missing = tmp_path / "missing.parquet"
    _assert_one_line_error(
        _popz("train-emulator", "--train", str(missing), "--out", str(tmp_path / "e"), "--hidden", "32,16"),
        r"^error: --hidden must list layers of one positive width",
    )
    _assert_one_line_error(
        _popz("train-emulator", "--train", str(missing), "--out", str(tmp_path / "e")),
        r"^error: training set .*missing.parquet does not exist",
    )
    _assert_one_line_error(
        _popz("validate-emulator", str(tmp_path), "--test", str(missing)),
        r"^error: no emulator at",
    )
