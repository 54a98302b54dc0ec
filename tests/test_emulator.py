"""The photometric emulator: domain flags, files, gradients (small trainings only)."""

import json
import shutil

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from popz.emulate.files import EmulatorFileError, load
from popz.emulate.inputs import domain_share
from popz.emulate.photometry import DOMAIN_OUTSIDE_BOUNDS, DOMAIN_SPARSE_TAIL
from popz.emulate.train import train_photometry_emulator
from popz.emulate.training import TrainingSettings
from popz.emulate.training_set import simulate_training_set
from popz.errors import PopzError


@pytest.fixture(scope="module")
def small_emulator(config, tmp_path_factory):
    """A 2x32 emulator trained for 40 epochs on 600 simulator draws (seconds, not accuracy)."""
    folder = tmp_path_factory.mktemp("emu")
    sims = folder / "sims.parquet"
    simulate_training_set(config, 600, sims, seed=11, chunk_size=300)
    emulator, manifest = train_photometry_emulator(
        config,
        sims,
        folder / "photometry",
        seed=0,
        hidden=(32, 32),
        settings=TrainingSettings(epochs=40, batch_size=64, learning_rate=3e-3, decay_epochs=20),
        validation_fraction=0.2,
        log=lambda s: None,
    )
    return emulator, manifest, folder / "photometry", sims


def test_training_learns_and_writes_a_complete_manifest(small_emulator, config):
    emulator, manifest, folder, sims = small_emulator
    assert manifest["model_hash"] == config.hash and manifest["kind"] == "photometry"
    assert manifest["training"]["n_rows"] == 600 and len(manifest["training"]["train_set_sha256"]) == 64
    assert set(manifest["accuracy_validation"]) == set("ugrizy")
    history_rms = [row["rms"] for row in manifest["accuracy_validation"].values()]
    # Untrained networks are off by magnitudes; 600 draws and 40 epochs give a few tenths.
    assert max(history_rms) < 1.5
    assert not (folder / "checkpoint.bin").exists()
    errors = np.asarray(emulator.error_rms_mag)
    assert errors.shape == (16, 6) and np.all(errors > 0)


def test_save_load_round_trip_is_identical(small_emulator, config, prior_draws):
    emulator, _, folder, _ = small_emulator
    loaded = load(folder, config=config)
    theta = jnp.asarray(prior_draws, jnp.float32)
    a = jax.vmap(emulator.magnitudes)(theta)
    b = jax.vmap(loaded.magnitudes)(theta)
    assert np.array_equal(np.asarray(a), np.asarray(b))


def test_domain_flag_fires_exactly_outside_the_bounds(small_emulator, config):
    emulator = small_emulator[0]
    lo, hi = np.asarray(emulator.inputs.lower), np.asarray(emulator.inputs.upper)
    mid = (0.5 * (lo + hi)).astype(np.float32)
    flags = eqx.filter_jit(emulator.domain_flags)
    assert int(flags(mid)) & DOMAIN_OUTSIDE_BOUNDS == 0
    for i in range(config.n_parameters):
        for bound, direction in ((lo[i], -np.inf), (hi[i], np.inf)):
            theta = mid.copy()
            theta[i] = bound
            assert int(flags(theta)) & DOMAIN_OUTSIDE_BOUNDS == 0, (config.parameter_names[i], "at bound")
            # one float32 step outside; at a zero bound the step is the smallest normal
            # number, since XLA on CPU flushes denormals to zero
            step_out = np.nextafter(np.float32(bound), np.float32(direction))
            if bound == 0:
                step_out = np.copysign(np.finfo(np.float32).tiny, direction)
            theta[i] = step_out
            assert int(flags(theta)) & DOMAIN_OUTSIDE_BOUNDS, (config.parameter_names[i], "just outside")


def test_sparse_tail_flag(small_emulator):
    emulator = small_emulator[0]
    theta = (0.5 * (emulator.inputs.lower + emulator.inputs.upper)).astype(jnp.float32)
    assert int(emulator.domain_flags(theta)) == 0
    theta = theta.at[3].set(emulator.inputs.tail_upper[3] + 0.01)  # a log SFR ratio in the far tail
    assert int(emulator.domain_flags(theta)) == DOMAIN_SPARSE_TAIL


def test_domain_share_counts_tails_per_parameter(small_emulator):
    """A posterior whose draws reach the tails as often as the training set's (0.2% per parameter) is not flagged,
    though most of its draws may have some parameter in some tail; 2% in one tail, or 2% outside the bounds, is."""
    space = small_emulator[0].inputs
    n, d = 1000, space.n_parameters
    mid = np.asarray(0.5 * (space.tail_lower + space.tail_upper), np.float32)
    draws = np.tile(mid, (n, 1))
    beyond_tail = np.asarray(space.tail_upper) + 1e-3 * (np.asarray(space.upper) - np.asarray(space.tail_upper))
    for i in range(d):  # 5 draws (0.5%) beyond each parameter's tail, a different 5 each: 5 d draws in some tail
        draws[5 * i : 5 * (i + 1), i] = beyond_tail[i]
    assert np.mean(np.asarray(jax.vmap(space.domain_flags)(jnp.asarray(draws))) > 0) > 0.05
    assert float(domain_share(space, jnp.asarray(draws))) == pytest.approx(0.005)

    one_tail = np.tile(mid, (n, 1))
    one_tail[:20, 3] = beyond_tail[3]
    assert float(domain_share(space, jnp.asarray(one_tail))) == pytest.approx(0.02)

    outside = np.tile(mid, (n, 1))
    outside[:20, 0] = np.asarray(space.upper)[0] + 1.0
    assert float(domain_share(space, jnp.asarray(outside))) == pytest.approx(0.02)
    # importance weights (npe+is): the 20 draws outside carry 10% of the weight
    weights = np.full(n, 0.9 / (n - 20), np.float32)
    weights[:20] = 0.1 / 20
    assert float(domain_share(space, jnp.asarray(outside), jnp.asarray(weights))) == pytest.approx(0.1, rel=1e-5)


def _copy(folder, tmp_path):
    target = tmp_path / "emu"
    shutil.copytree(folder, target)
    return target


def test_loading_another_format_version_fails_clearly(small_emulator, tmp_path):
    folder = _copy(small_emulator[2], tmp_path)
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["format_version"] = 99
    (folder / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(EmulatorFileError, match=r"format version 99; this popz .* reads version 1"):
        load(folder)


def test_corrupted_or_mismatched_files_fail_clearly(small_emulator, tmp_path, config):
    folder = _copy(small_emulator[2], tmp_path)
    data = bytearray((folder / "weights.eqx").read_bytes())
    data[100] ^= 0xFF
    (folder / "weights.eqx").write_bytes(bytes(data))
    with pytest.raises(EmulatorFileError, match="corrupted: its SHA-256 differs"):
        load(folder)
    (folder / "manifest.json").write_text("{not json")
    with pytest.raises(EmulatorFileError, match="corrupted: not valid JSON"):
        load(folder)
    other = config.model_copy(update={"name": "other", "bands": ("lsst2023-g",)})
    with pytest.raises(EmulatorFileError, match="trained for model 'lsst-default'"):
        load(small_emulator[2], config=other)
    with pytest.raises(EmulatorFileError, match="no emulator at"):
        load(tmp_path / "nothing")


def test_mass_enters_exactly(small_emulator, prior_draws, config):
    emulator = small_emulator[0]
    theta = jnp.asarray(prior_draws[0], jnp.float32)
    i = config.index("log_stellar_mass")
    delta = emulator.magnitudes(theta) - emulator.magnitudes(theta.at[i].add(0.5))
    assert np.allclose(np.asarray(delta), 1.25, atol=2e-5)


@pytest.mark.parametrize("jit", [False, True])
def test_gradients_are_finite_and_match_finite_differences(small_emulator, prior_draws, jit):
    emulator = small_emulator[0]

    def mags(e, t):
        return e.magnitudes(t)

    def jacobian(e, t):
        return jax.jacfwd(e.magnitudes)(t)

    if jit:
        mags, jacobian = eqx.filter_jit(mags), eqx.filter_jit(jacobian)
    fn = lambda t: mags(emulator, t)  # noqa: E731
    jac = lambda t: jacobian(emulator, t)  # noqa: E731
    for theta in prior_draws[:5]:
        theta = jnp.asarray(theta, jnp.float32)
        analytic = np.asarray(jac(theta))
        assert np.all(np.isfinite(analytic))
        step = 1e-2
        for i in range(theta.shape[0]):
            plus, minus = fn(theta.at[i].add(step)), fn(theta.at[i].add(-step))
            numeric = np.asarray(plus - minus) / (2 * step)
            assert np.allclose(analytic[:, i], numeric, rtol=5e-2, atol=2e-3), (i, analytic[:, i], numeric)


class _Killed(Exception):
    pass


def test_training_resumes_from_checkpoint(config, small_emulator, tmp_path):
    sims = small_emulator[3]
    settings = TrainingSettings(epochs=6, batch_size=64, learning_rate=3e-3, decay_epochs=20)
    out = tmp_path / "emu"

    def kill_during_epoch_2(line):
        if line.startswith("epoch    2"):  # logged before epoch 2's checkpoint is written
            raise _Killed

    with pytest.raises(_Killed):
        train_photometry_emulator(config, sims, out, hidden=(16,), settings=settings, log=kill_during_epoch_2)
    assert (out / "checkpoint.bin").exists() and not (out / "manifest.json").exists()
    with pytest.raises(PopzError, match="belongs to another training run"):
        train_photometry_emulator(config, sims, out, hidden=(16,), seed=1, settings=settings, log=lambda s: None)
    resumed = []
    resumed_emulator, manifest = train_photometry_emulator(config, sims, out, hidden=(16,), settings=settings, log=resumed.append)
    assert resumed[0].startswith("resumed from") and "at epoch 1 " in resumed[0]
    assert manifest["training"]["epochs_run"] == 6
    assert not (out / "checkpoint.bin").exists()
    # the resumed run ends exactly where an uninterrupted one does
    straight, _ = train_photometry_emulator(config, sims, tmp_path / "straight", hidden=(16,), settings=settings, log=lambda s: None)
    theta = jnp.asarray(np.asarray(straight.inputs.tail_lower) * 0 + 0.5 * (straight.inputs.lower + straight.inputs.upper))
    assert np.array_equal(np.asarray(straight.magnitudes(theta)), np.asarray(resumed_emulator.magnitudes(theta)))


def test_time_limited_training_stays_resumable(config, small_emulator, tmp_path):
    settings = TrainingSettings(epochs=50, batch_size=64, max_minutes=0.0)
    _, manifest = train_photometry_emulator(config, small_emulator[3], tmp_path / "e", hidden=(16,), settings=settings, log=lambda s: None)
    assert manifest["training"]["stopped"] == "time budget" and manifest["training"]["epochs_run"] == 1
    assert (tmp_path / "e" / "checkpoint.bin").exists()


def test_bad_architecture_and_held_out_with_the_training_seed(config, small_emulator, tmp_path):
    from popz.emulate.validate import check_held_out

    with pytest.raises(PopzError, match="--hidden must list layers of one positive width"):
        train_photometry_emulator(config, small_emulator[3], tmp_path / "e", hidden=(32, 16))
    with pytest.raises(PopzError, match="--activation must be one of"):
        train_photometry_emulator(config, small_emulator[3], tmp_path / "e", activation="relu")
    with pytest.raises(PopzError, match="drawn with seed 11, the training set's seed"):
        check_held_out(small_emulator[1], small_emulator[3])


def test_loss_in_magnitudes_uses_one_output_scale(config, prior_draws):
    from popz.emulate.photometry import new_photometry_emulator

    mags = np.random.default_rng(0).normal(20.0, [3.0, 2.0, 1.0, 1.0, 1.0, 1.5], size=(len(prior_draws), 6))
    per_band = new_photometry_emulator(jax.random.key(0), config, prior_draws, hidden=(8,), activation="gelu", magnitudes=mags)
    common = new_photometry_emulator(
        jax.random.key(0), config, prior_draws, hidden=(8,), activation="gelu", magnitudes=mags, loss_units="mag"
    )
    assert np.ptp(np.asarray(per_band.y_standardiser.scale)) > 0.5
    assert np.ptp(np.asarray(common.y_standardiser.scale)) == 0.0
    assert np.allclose(common.y_standardiser.shift, per_band.y_standardiser.shift)
    with pytest.raises(PopzError, match="--loss-units must be standardised or mag"):
        train_photometry_emulator(config, "unused.parquet", "unused", loss_units="dex")
