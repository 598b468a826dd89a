"""The tables an image model reads, by name: one input for a training job instead of three."""

from legibility import jobs
from legibility.io import write_json

jobs.log_to(snakemake.log[0])
write_json(snakemake.output[0], {name: snakemake.input[name] for name in snakemake.input.keys()})
