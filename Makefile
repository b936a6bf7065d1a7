# The two commands of the README: `make reproduce` (main job) and `make test` (the test suite).
# Both first run `deps`, which installs the system OpenBLAS when it is missing.
SHELL := /bin/bash
ARGS ?=
# parallel runs of the grid (each on one thread; results do not depend on it)
JOBS ?= 2

.PHONY: deps build reproduce test bench compare compare-train lint docs

deps:
	@bash scripts/deps.sh

build: deps
	cargo build --release

reproduce: deps
	cargo run --release --bin reproduce-paper -- run --jobs $(JOBS) $(ARGS)

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

# the book (docs/book.toml, chapters in docs/src/) into docs/book/ (ignored); installs mdbook from
# crates.io with cargo when it is not on PATH (a few minutes, once)
MDBOOK_VERSION ?= 0.4.52
docs:
	@command -v mdbook >/dev/null 2>&1 || [ -x "$$HOME/.cargo/bin/mdbook" ] || { \
	  echo "docs: mdbook not found; installing mdbook $(MDBOOK_VERSION) from crates.io (cargo install, a few minutes)"; \
	  cargo install mdbook --locked --version $(MDBOOK_VERSION); }
	PATH="$$HOME/.cargo/bin:$$PATH" mdbook build docs
