# Quality control of every image: readable, sane, brain-extracted; failures are listed, not dropped.


rule qc_shard:
    input:
        cohort_files,
    output:
        table="results/qc/shard-{shard}.tsv",
        montages=report(
            directory("results/qc/montages/shard-{shard}"),
            patterns=["{name}.png"],
            caption="../report/qc_montage.rst",
            category="Quality control",
            subcategory="Failed images",
        ),
    params:
        images=shard_images,
        stamps=shard_stamps,
        expected=EXPECTED,
        thresholds=QC_THRESHOLDS,
    priority: 1  # as preprocessing, which follows it
    log:
        "logs/qc/shard-{shard}.log",
    benchmark:
        "results/benchmarks/qc/shard-{shard}.tsv"
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/qc_shard.py"


rule register_shard:
    input:
        qc="results/qc/shard-{shard}.tsv",
    output:
        table="results/registration/shard-{shard}.tsv",
        montage=report(
            "results/registration/shard-{shard}.png",
            caption="../report/registration.rst",
            category="Quality control",
            subcategory="Registration",
        ),
    params:
        images=shard_images,
        settings=REGISTRATION,
        seed=config["seed"],
    priority: 1  # as preprocessing, which follows it
    log:
        "logs/registration/shard-{shard}.log",
    benchmark:
        "results/benchmarks/registration/shard-{shard}.tsv"
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/register_shard.py"


rule qc_table:
    input:
        per_shard("results/registration/shard-{shard}.tsv"),
    output:
        table="results/qc.tsv",
        figure=report(
            "results/qc/qc_metrics.png",
            caption="../report/qc_metrics.rst",
            category="Quality control",
        ),
    params:
        rejected=REJECTED,
        thresholds={**config["qc"], **REGISTRATION},
    priority: 1  # as preprocessing
    log:
        "logs/qc_table.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/qc_table.py"

