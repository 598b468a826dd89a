# Structural images to cubes of 128³ and 64³ on one MNI grid, through their registration: NIfTI for people, packed float16 for training,
# and their atlas-region means for the linear baselines.


rule preprocess_shard:
    input:
        qc="results/registration/shard-{shard}.tsv",
    output:
        table="results/preprocessed/shard-{shard}.tsv",
        arrays=expand("results/preprocessed/shard-{{shard}}_res-{res}.npy", res=RESOLUTIONS),
        images=directory("results/preprocessed/shard-{shard}"),
    params:
        images=shard_images,
        settings=config["preprocess"],
        resolutions=RESOLUTIONS,
    priority: 1  # the image models' inputs first: their training, the longest jobs, overlaps the rest
    log:
        "logs/preprocess/shard-{shard}.log",
    benchmark:
        "results/benchmarks/preprocess/shard-{shard}.tsv"
    resources:
        mem_mb=2000,
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/preprocess_shard.py"


rule region_means_shard:
    input:
        table="results/preprocessed/shard-{shard}.tsv",
        images="results/preprocessed/shard-{shard}",
        atlas="results/atlas/baseline.nii.gz",
    output:
        "results/regions/shard-{shard}.tsv",
    params:
        resolution=min(config["preprocess"]["resolutions"]),
    priority: 1  # as preprocessing
    log:
        "logs/regions/shard-{shard}.log",
    benchmark:
        "results/benchmarks/regions/shard-{shard}.tsv"
    group:
        "shard"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/region_means.py"


rule preprocess_index:
    input:
        tables=per_shard("results/preprocessed/shard-{shard}.tsv"),
        arrays=per_shard("results/preprocessed/shard-{shard}_res-{{res}}.npy"),
    output:
        "results/preprocessed/index_res-{res}.tsv",
    priority: 1  # as preprocessing
    log:
        "logs/preprocess/index_res-{res}.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/concat_tables.py"


rule regions_table:
    input:
        per_shard("results/regions/shard-{shard}.tsv"),
    output:
        "results/regions.tsv",
    priority: 1  # as preprocessing
    log:
        "logs/regions/table.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/concat_tables.py"
