# Two commands do all the set-up on a fresh machine (Python 3.11+ with venv):
#   make demo   install (pinned) and run the whole workflow on the demo cohort
#   make test   install (pinned) and run the tests
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo test report clean

$(BIN)/.installed: requirements.lock requirements-nodeps.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first: 2.13.0 from the CPU wheel where one is offered, else the CUDA build
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -r requirements.lock
	# without their declared dependencies (a GUI toolkit the workflow never uses; see the file)
	$(BIN)/pip install --quiet --no-deps -r requirements-nodeps.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

install: $(BIN)/.installed

demo: install
	$(BIN)/snakemake --cores all

report: install
	$(BIN)/snakemake --report report.html

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf results logs .snakemake report.html
