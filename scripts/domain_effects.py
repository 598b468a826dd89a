"""What each input adds to out-of-sample performance: mixed-effects models per target domain."""

import logging
from legibility import analysis, jobs
from legibility.io import read_tsv, save_figure, write_tsv

jobs.log_to(snakemake.log[0])
effects = analysis.domain_effects(read_tsv(snakemake.input[0]), snakemake.params.variables)
logging.info("%d input effects fitted in %d domains", effects["term"].notna().sum(), effects.loc[effects["term"].notna(), "domain"].nunique())
write_tsv(snakemake.output.table, effects)
save_figure(snakemake.output.figure, analysis.domain_effects_figure(effects))
