# Two commands for a new user: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
FMNIST_DIR := /usr/share/datasets/fashion-mnist
PYTEST_WORKERS ?= 2
SHELL := /bin/bash
# pip on this kind of machine warns once per package about an unused local index; keep real errors.
PIP_QUIET_FILTER := grep -v "is ignored: it is neither a file nor a directory" || true

.PHONY: demo test bench lint data browser venv clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	set -o pipefail; $(PY) -m pip install -q --disable-pip-version-check -e '.[test]' 2>&1 | { $(PIP_QUIET_FILTER); }
	@touch $(STAMP)

# Fashion-MNIST from Debian's dataset-fashion-mnist package (real idx files, installed offline).
data:
	@if [ -f $(FMNIST_DIR)/train-images-idx3-ubyte.gz ] || [ -f $(FMNIST_DIR)/train-images-idx3-ubyte ]; then \
		echo "fashion-mnist: found in $(FMNIST_DIR)"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "fashion-mnist: installing Debian package dataset-fashion-mnist"; \
		(apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null)) && \
		echo "fashion-mnist: installed in $(FMNIST_DIR)"; \
	else \
		echo "fashion-mnist: not found. Run: sudo apt-get install dataset-fashion-mnist"; \
		echo "  (or let cnnlab download it: cnnlab data fetch fashion-mnist --download)"; \
	fi

# Chromium for the browser tests (playwright drives Debian's binary; playwright's own download is unreachable),
# and a Korean font (fonts-nanum) so the lectures' quotes render in the report and the screenshots.
CHROMIUM ?= /usr/bin/chromium
KOREAN_FONT ?= /usr/share/fonts/truetype/nanum/NanumGothic.ttf
browser:
	@if [ -x $(CHROMIUM) ] && [ -f $(KOREAN_FONT) ]; then \
		echo "chromium: found at $(CHROMIUM); Korean font: found"; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "chromium, fonts-nanum: installing Debian packages"; \
		(apt-get install -y -q chromium fonts-nanum >/dev/null 2>&1 || \
		 (apt-get update -q >/dev/null && apt-get install -y -q chromium fonts-nanum >/dev/null)) && \
		echo "chromium: installed at $(CHROMIUM); Korean font: installed"; \
	else \
		echo "chromium or fonts-nanum not found; browser tests skip without chromium, Korean shows as boxes without"; \
		echo "  the font. Run: sudo apt-get install chromium fonts-nanum"; \
	fi

demo: $(STAMP) data
	$(PY) -m cnnlab.demo

test: $(STAMP) data browser
	$(PY) -m pytest -q -n $(PYTEST_WORKERS) --durations=15

bench: $(STAMP) data
	@for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf $(VENV) build dist src/*.egg-info .pytest_cache
