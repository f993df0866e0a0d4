# Two commands for a fresh machine: `make demo` and `make test`. Both build .venv once (make install) and
# are fast the second time: the venv is rebuilt only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgekit-installed

.PHONY: install demo test fuzz clean services

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# constraints.txt pins every version we tested (torch to the local CPU build, never the CUDA one)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,test]'
	# onnx2tf (ONNX -> TFLite / Core ML routes) pins numpy 1.x, TF 2.19 and onnx 1.19: install its real
	# dependencies at our tested versions, then onnx2tf itself without its pins
	$(BIN)/python -m pip install --quiet -c constraints.txt tf-keras onnx_graphsurgeon sng4onnx sne4onnx psutil onnxsim
	$(BIN)/python -m pip install --quiet --no-deps -c constraints.txt onnx2tf
	@touch $(STAMP)

demo: install
	$(BIN)/edgekit demo

test: install services
	$(BIN)/python -m pytest -q

# Servers and programs the tests start on 127.0.0.1 from Debian's packages (never a mock): PostgreSQL for
# `edgekit tune --storage postgresql://`, OpenSSH's server for `--device`, Prometheus scraping `edgekit monitor`,
# and headless Chromium rendering the HTML reports. Installed here when missing (root, or sudo without a password).
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo -n)
DEBIAN_NEEDS := $(shell ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || echo postgresql) \
	$(shell [ -x /usr/sbin/sshd ] || echo openssh-server) $(shell command -v ssh-keygen >/dev/null || echo openssh-client) \
	$(shell command -v prometheus >/dev/null || echo prometheus) $(shell command -v chromium >/dev/null || echo chromium)
services:
	@[ -z "$(strip $(DEBIAN_NEEDS))" ] || { echo "installing from Debian: $(strip $(DEBIAN_NEEDS))"; \
	  $(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $(DEBIAN_NEEDS) >/dev/null; }

# atheris harnesses for the TFLite and ONNX readers (fuzz/), FUZZ_TIME seconds each; findings in build/fuzz/findings.
# atheris is installed here only: `make test` does not need it (its bounded fuzz suite is tests/fuzz).
FUZZ_TIME ?= 300
fuzz: install
	$(BIN)/python -m pip install --quiet "atheris==3.0.0"
	$(BIN)/python fuzz/run.py --time $(FUZZ_TIME)

clean:
	rm -rf $(VENV) .venv-runtime .pytest_cache
