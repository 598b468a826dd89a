# Quality control of every image: readable, sane, brain-extracted; failures are listed, not dropped.


# deepbet's brain mask of each subject's first structural image: QC's brain-extraction check
# reads it whatever skullstrip.method says, so changing the method never reruns this
rule brain_mask_shard:
    input:
        cohort_files,
    output:
        table="results/brain/shard-{shard}.tsv",
        masks=directory("results/brain/shard-{shard}"),
    params:
        images=shard_images,
        stamps=shard_stamps,
        settings=BRAIN_MASK,
    threads: config["skullstrip"]["threads"]
    resources:
        gpu=config["skullstrip"]["gpu"],  # as training: on a GPU where there is one
        mem_mb=config["skullstrip"]["mem_mb"],
        runtime=config["skullstrip"]["runtime"],
    priority: 1  # as preprocessing, which follows it
    log:
        "logs/brain/shard-{shard}.log",
    benchmark:
        "results/benchmarks/brain/shard-{shard}.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/brain_mask_shard.py"


# skullstrip.method: deepbet -- the configured modalities, brain-extracted with that mask
rule skullstrip_shard:
    input:
        table="results/brain/shard-{shard}.tsv",
        masks="results/brain/shard-{shard}",
    output:
        directory("results/skullstrip/shard-{shard}"),
    params:
        images=shard_images,
        settings=BRAIN_MASK | {"modalities": config["skullstrip"]["modalities"]},
    priority: 1
    log:
        "logs/skullstrip/shard-{shard}.log",
    benchmark:
        "results/benchmarks/skullstrip/shard-{shard}.tsv"
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/skullstrip_shard.py"


rule qc_shard:
    input:
        unpack(qc_inputs),
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
        strip=qc_strip,
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

