#!/usr/bin/env bash
# Snakemake runs this after creating the conda environment: the packages installed without
# their dependencies (see requirements-nodeps.lock), which conda's pip list cannot express.
set -euo pipefail
pip install --no-deps deepbet==1.0.2
