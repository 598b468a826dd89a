# Quality control of every image: readable, sane, brain-extracted; failures are listed, not dropped.


rule qc_shard:
    input:
        shard_files(EXPECTED),
    output:
        "results/qc/shard-{shard}.tsv",
    params:
        images=shard_images,
        expected=EXPECTED,
        thresholds=config["qc"],
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


rule qc_table:
    input:
        per_shard("results/qc/shard-{shard}.tsv"),
    output:
        "results/qc.tsv",
    log:
        "logs/qc_table.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/qc_table.py"
