# Resting-state connectivity: atlas region time series and their correlation matrices.


rule atlas:
    output:
        image="results/atlas/atlas.nii.gz",
        table="results/atlas/atlas.tsv",
    params:
        atlas=config["atlas"],
    log:
        "logs/atlas.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/atlas.py"


rule connectivity_shard:
    input:
        bold=shard_files([BOLD]),
        qc="results/qc/shard-{shard}.tsv",
        atlas="results/atlas/atlas.nii.gz",
    output:
        table="results/connectivity/shard-{shard}.tsv",
        array="results/connectivity/shard-{shard}.npy",
    params:
        bold=shard_bold,
        settings=config["connectivity"],
    log:
        "logs/connectivity/shard-{shard}.log",
    benchmark:
        "results/benchmarks/connectivity/shard-{shard}.tsv"
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/connectivity_shard.py"
