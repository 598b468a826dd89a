"""Write the synthetic demo cohort."""

from legibility import demo, jobs

jobs.log_to(snakemake.log[0])
demo.make_cohort(
    snakemake.params.config,
    snakemake.params.images,
    snakemake.output.participants,
    snakemake.output.truth,
    workers=snakemake.threads,
)
