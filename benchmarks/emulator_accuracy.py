"""Held-out accuracy of the shipped lsst-default emulators against the simulator.

Needs a held-out set never used in training, e.g.
    popz simulate --model lsst-default --n 10000 --seed 2 --workers 2 --chunk-size 1000 --spectra --out sims/heldout.parquet
then
    python benchmarks/emulator_accuracy.py --test sims/heldout.parquet --sdss-filters ../shared/data/sdss_mgs/filters

Writes the tables into benchmarks/RESULTS.md and residual PNGs beside it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from _results import write_section

HERE = Path(__file__).parent


def _rows(table: dict) -> list[str]:
    return [f"| {band} | {r['rms']:.4f} | {r['p68']:.4f} | {r['p99']:.4f} | {r['n']} |" for band, r in table.items()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test", required=True, help="held-out training set with spectra")
    parser.add_argument("--sdss-filters", required=True, help="folder with sdss_{u,g,r,i,z}.dat")
    parser.add_argument("--emulator", default="lsst-default")
    args = parser.parse_args()

    from popz.config import ModelConfig
    from popz.emulate.files import emulator_folder, load, read_manifest
    from popz.emulate.validate import check_held_out, validate_photometry_emulator, validate_spectrum_emulator

    header = ["| band | RMS [mag] | p68 [mag] | p99 [mag] | n |", "|---|---:|---:|---:|---:|"]
    body = [f"Held-out set: `{args.test}` (never used in training)."]
    for kind in ("photometry", "spectrum"):
        manifest = read_manifest(emulator_folder(args.emulator, kind))
        check_held_out(manifest, args.test)
        config = ModelConfig.model_validate(manifest["model_config"])
        emulator = load(args.emulator, kind=kind, config=config)
        t = manifest["training"]
        body += [
            "",
            f"### {kind} emulator: {manifest['architecture']['hidden']} {manifest['architecture']['activation']}, "
            f"{t['n_train']} training rows, epoch {t['best_epoch']} of {t['epochs_run']} kept ({t['stopped']})",
            "",
        ]
        if kind == "photometry":
            table = validate_photometry_emulator(emulator, config, args.test, None, HERE / "emulator_photometry_residuals.png")
            body += ["LSST bands (`emulator_photometry_residuals.png`):", "", *header, *_rows(table)]
        else:
            table = validate_spectrum_emulator(emulator, config, args.test, None, None, HERE / "emulator_spectrum_lsst_residuals.png")
            body += ["Photometry derived in LSST bands (`emulator_spectrum_lsst_residuals.png`):", "", *header, *_rows(table)]
            sdss = [str(Path(args.sdss_filters) / f"sdss_{b}.dat") for b in "ugriz"]
            table = validate_spectrum_emulator(emulator, config, args.test, sdss, None, HERE / "emulator_spectrum_sdss_residuals.png")
            body += ["", "SDSS ugriz curves, never trained on (`emulator_spectrum_sdss_residuals.png`):", "", *header, *_rows(table)]
    print("\n".join(body))
    write_section("Emulator accuracy on held-out draws (emulator_accuracy.py)", "\n".join(body))


if __name__ == "__main__":
    main()
