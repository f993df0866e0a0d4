# Two commands for a fresh machine: `make demo` and `make test`. Both build .venv once (make install) and
# are fast the second time: the venv is rebuilt only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgekit-installed

.PHONY: install demo test clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=24"
	# constraints.txt pins every version we tested (torch to the local CPU build, never the CUDA one)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[all,test]'
	@touch $(STAMP)

demo: install
	$(BIN)/edgekit demo

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .venv-runtime .pytest_cache
