# Cached augmentation: K seeded copies of every subject, made once per setting (under k-fold every
# subject trains in some fold; a model reads copies of its training subjects only).


rule augment_shard:
    input:
        table="results/preprocessed/shard-{shard}.tsv",
        array="results/preprocessed/shard-{shard}_res-{res}.npy",
    output:
        table="results/augment/shard-{shard}_res-{res}.tsv",
        array="results/augment/shard-{shard}_res-{res}.npy",
    params:
        settings=lookup(dpath="augment", within=config),
        normalise=config["preprocess"]["normalise"],
        fov_mm=config["preprocess"]["fov_mm"],
        seed=config["seed"],
    priority: 1  # as preprocessing
    log:
        "logs/augment/shard-{shard}_res-{res}.log",
    benchmark:
        "results/benchmarks/augment/shard-{shard}_res-{res}.tsv"
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/augment_shard.py"


use rule preprocess_index as augment_index with:
    input:
        tables=per_shard("results/augment/shard-{shard}_res-{{res}}.tsv"),
        arrays=per_shard("results/augment/shard-{shard}_res-{{res}}.npy"),
    output:
        "results/augment/index_res-{res}.tsv",
    log:
        "logs/augment/index_res-{res}.log",
