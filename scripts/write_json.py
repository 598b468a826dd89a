"""Write a JSON document given as the rule's parameter."""

from legibility import jobs
from legibility.io import write_json

jobs.log_to(snakemake.log[0])
write_json(snakemake.output[0], snakemake.params.description)
