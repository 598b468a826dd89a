# Two commands do all the set-up on a fresh machine (Python 3.11+ with venv):
#   make demo   install (pinned) and run the whole workflow on the demo cohort
#   make test   install (pinned) and run the tests
#   make demo-check   the demo, then the README's claims about it checked on its results (CI runs it)
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin

.PHONY: install demo demo-check test report clean

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

# the claims need the full demo's 96 subjects: the suite runs a smaller one (tests/test_workflow.py)
demo-check: demo
	$(BIN)/python -m pytest -n 0 tests/test_demo_claims.py --demo-results .

report: install
	$(BIN)/snakemake --report report.html

test: install
	$(BIN)/python -m pytest

clean:
	rm -rf results logs .snakemake report.html
