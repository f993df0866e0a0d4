# Two commands for a fresh machine: `make demo` and `make test`. Both build .venv once (make install) and
# are fast the second time: the venv is rebuilt only when pyproject.toml or constraints.txt change.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.edgekit-installed

.PHONY: install demo test clean

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

test: install
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) .venv-runtime .pytest_cache
