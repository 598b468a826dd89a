"""One target's split: the subject assignment restricted to eligible subjects."""

from legibility import jobs, splits
from legibility.inputs import read_phenotypes
from legibility.io import read_tsv, write_tsv

jobs.log_to(snakemake.log[0])
source, target = snakemake.params.phenotypes, snakemake.wildcards.target
table = read_phenotypes(source["path"], source["subject_column"], source["strip_prefix"], snakemake.params.variables)
assigned = read_tsv(snakemake.input.subjects).set_index("subject")["split"]
result = splits.target_split(assigned, target, table.values[target], read_tsv(snakemake.input.qc), snakemake.params.modalities)
write_tsv(snakemake.output[0], result)
