# MIND structural similarity networks of the preprocessed volumes: a model input beside
# connectivity (Sebenius et al. 2023, here on volumes rather than FreeSurfer surfaces).


use rule atlas as mind_atlas with:
    output:
        image="results/atlas/mind.nii.gz",
        table="results/atlas/mind.tsv",
    params:
        atlas=lookup(dpath="mind/atlas", within=config),
    log:
        "logs/mind_atlas.log",


rule mind_shard:
    input:
        table="results/preprocessed/shard-{shard}.tsv",
        images="results/preprocessed/shard-{shard}",
        atlas="results/atlas/mind.nii.gz",
    output:
        table="results/mind/shard-{shard}.tsv",
        array="results/mind/shard-{shard}.npy",
    params:
        features=config["mind"]["features"],
        resolution=config["mind"]["resolution"],
    log:
        "logs/mind/shard-{shard}.log",
    benchmark:
        "results/benchmarks/mind/shard-{shard}.tsv"
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/mind_shard.py"


use rule preprocess_index as mind_index with:
    input:
        tables=per_shard("results/mind/shard-{shard}.tsv"),
        arrays=per_shard("results/mind/shard-{shard}.npy"),
    output:
        "results/mind/index.tsv",
    log:
        "logs/mind/index.log",


use rule connectivity_group as mind_group with:
    input:
        tables=per_shard("results/mind/shard-{shard}.tsv"),
        arrays=per_shard("results/mind/shard-{shard}.npy"),
    output:
        matrix="results/mind/group_mean.tsv",
        figure=report(
            "results/mind/group_mean.png",
            caption="../report/mind_group.rst",
            category="MIND",
        ),
    params:
        kind="MIND",
    log:
        "logs/mind/group.log",
