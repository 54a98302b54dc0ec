# The two set-up commands on a fresh machine are `make demo` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

export MPLBACKEND := Agg

.PHONY: install demo test bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[all]"
	touch $(STAMP)

demo: install
	$(BIN)/popz demo --out demo_output

# Two workers, each test file in one of them: compilation is mostly single-threaded, so two processes finish the
# suite in about 0.64 of the time of one on 2 cores (914 s against 1,420 s here, 2026-11-27). The workers share one
# XLA cache (tests/conftest.py). Last full run from a clean clone: 830 s for 232 tests, 2026-11-28.
test: install
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

# Speed and accuracy benchmarks; results go to benchmarks/RESULTS.md. The held-out
# emulator accuracy needs a held-out set (see benchmarks/emulator_accuracy.py).
bench: install
	$(BIN)/python benchmarks/bench_simulator.py --n 400 --workers 1,2
	$(BIN)/python benchmarks/simulator_accuracy.py --n 40
	$(BIN)/python benchmarks/bench_emulator.py --batch 100000
	$(BIN)/python benchmarks/mock_realism.py --n 100000
	$(BIN)/python benchmarks/bench_fit.py --galaxies 256 --steps 2000
	$(BIN)/python benchmarks/sbc_mock.py --n 500 --n-burn 2000 --n-steps 2000
	$(BIN)/python benchmarks/photoz_dc2.py --n 1000
	$(BIN)/python benchmarks/npe_calibration.py --n 2000 --n-mcmc 300
	$(BIN)/python benchmarks/npe_storage.py --n 2000
	$(BIN)/python benchmarks/bench_npe.py --n 16384
	$(BIN)/python benchmarks/photoz_dc2_paths.py --mcmc-n 1000

clean:
	rm -rf $(VENV) demo_output .pytest_cache
