# legibility: how well can each target be predicted from each combination of brain-imaging
# inputs? Raw images and a phenotype table in, an aggregated performance table out.
#
#   snakemake --cores all                                  the demo cohort, end to end
#   snakemake --configfile config/my_study.yaml --cores all    your own data
#   snakemake --profile profiles/slurm                     the same DAG on a SLURM cluster
#
# Data flow: inputs -> qc -> preprocess -> augment / connectivity -> split -> train -> aggregate -> analysis


# The demo's settings apply only when no --configfile is given: a user's file is their whole
# configuration, and what it leaves out takes the schema's defaults, never the demo's.
if not workflow.overwrite_configfiles:

    configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/demo.smk"
include: "workflow/rules/qc.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/connectivity.smk"
include: "workflow/rules/mind.smk"
include: "workflow/rules/split.smk"
include: "workflow/rules/augment.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/aggregate.smk"
include: "workflow/rules/analysis.smk"
include: "workflow/rules/provenance.smk"


# tables of tables and atlases take a second: on a cluster they run where Snakemake runs, not in
# the queue
localrules:
    atlas,
    baseline_atlas,
    mind_atlas,
    qc_table,
    effective_config,
    derivative_description,
    target_split,
    splits_table,
    preprocess_index,
    regions_table,
    augment_index,
    image_inputs,
    connectivity_index,
    mind_index,
    domain_effects,
    training_cost,
    dashboard,
    bundles,


rule all:
    input:
        "results/config.yaml",
        "results/qc.tsv",
        # the grid's results (none in predict mode without a grid), and each bundle's predictions
        *(["results/splits.tsv", "results/performance.tsv", "results/legibility.tsv", "results/performance_grid.png", "results/dashboard.html",
           *(f"results/{path}" for path in ANALYSIS_FIGURES.values())] if MODELS else []),  # fmt: skip
        *(f"results/models/{m}/brain_age.tsv" for m in BRAIN_AGE_MODELS),
        *(f"results/predictions/{m}.tsv" for m in PREDICT),
        *(["results/connectivity/group_mean.png"] if CONNECTIVITY_FROM in EXPECTED else []),
        *(["results/mind/group_mean.png"] if USES_MIND else []),
        *(["results/preprocessed/dataset_description.json"] if RESOLUTIONS or USES_MIND else []),
