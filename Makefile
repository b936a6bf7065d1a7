# The two commands of the README: `make reproduce` (main job) and `make test` (the test suite).
# Both first run `deps`, which installs the system OpenBLAS when it is missing.
SHELL := /bin/bash
ARGS ?=
# parallel runs of the grid (each on one thread; results do not depend on it)
JOBS ?= 2

.PHONY: deps build reproduce test bench compare compare-train lint

deps:
	@bash scripts/deps.sh

build: deps
	cargo build --release

reproduce: deps
	cargo run --release --bin reproduce-paper -- --jobs $(JOBS) $(ARGS)

test: deps
	cargo test --release

bench: deps
	cargo bench --bench estimators --bench synergy

# numpy/scipy side-by-side timings of the same work (creates .venv-bench with numpy and scipy)
compare: deps
	bash benches/compare.sh

# Candle vs PyTorch eager training steps (installs torch in a throwaway venv; never in CI)
compare-train: deps
	bash benches/train_compare.sh

lint:
	cargo fmt --check
	cargo clippy --all-targets -- -D warnings
