# Resting-state connectivity: atlas region time series and their matrices, or matrices given.


rule atlas:
    output:
        image="results/atlas/atlas.nii.gz",
        table="results/atlas/atlas.tsv",
    params:
        atlas=lookup(dpath="atlas", within=config),
    log:
        "logs/atlas.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/atlas.py"


use rule atlas as baseline_atlas with:
    output:
        image="results/atlas/baseline.nii.gz",
        table="results/atlas/baseline.tsv",
    params:
        atlas=lookup(dpath="baseline/atlas", within=config),
    log:
        "logs/baseline_atlas.log",


rule connectivity_shard:
    input:
        unpack(connectivity_inputs),
    output:
        table="results/connectivity/shard-{shard}.tsv",
        array="results/connectivity/shard-{shard}.npy",
        series="results/connectivity/shard-{shard}_timeseries.npz",
        figures=report(
            directory("results/connectivity/matrices/shard-{shard}"),
            patterns=["{name}.png"],
            caption="../report/connectivity_subject.rst",
            category="Connectivity",
            subcategory="Subjects",
        ),
    params:
        images=shard_images,
        settings=lookup(dpath="connectivity", within=config),
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


rule connectivity_group:
    input:
        tables=per_shard("results/connectivity/shard-{shard}.tsv"),
        arrays=per_shard("results/connectivity/shard-{shard}.npy"),
    output:
        matrix="results/connectivity/group_mean.tsv",
        figure=report(
            "results/connectivity/group_mean.png",
            caption="../report/connectivity_group.rst",
            category="Connectivity",
        ),
        # how the region signals were denoised, or that they were not (mind_group has no such file)
        readme=report(
            "results/connectivity/README.md",
            caption="../report/connectivity_readme.rst",
            category="Connectivity",
        ),
    params:
        kind=config["connectivity"]["kind"],
        denoising=DENOISING,
    log:
        "logs/connectivity/group.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/connectivity_group.py"


# the tangent space is fitted on a fold's training subjects: one per target and fold
rule connectivity_tangent:
    input:
        series=per_shard("results/connectivity/shard-{shard}_timeseries.npz"),
        split="results/splits/target-{target}.tsv",
    output:
        table="results/connectivity/tangent/target-{target}_{fold}.tsv",
        array="results/connectivity/tangent/target-{target}_{fold}.npy",
    params:
        folds=N_FOLDS,
    log:
        "logs/connectivity/tangent/target-{target}_{fold}.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/connectivity_tangent.py"


use rule preprocess_index as connectivity_index with:
    input:
        tables=per_shard("results/connectivity/shard-{shard}.tsv"),
        arrays=per_shard("results/connectivity/shard-{shard}.npy"),
    output:
        "results/connectivity/index.tsv",
    log:
        "logs/connectivity/index.log",
