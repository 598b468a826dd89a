# Structural images to RAS cubes of 128³ and 64³: NIfTI for people, packed float16 for training,
# and their atlas-region means for the linear baselines.


rule preprocess_shard:
    input:
        images=shard_files(MODALITIES),
        qc="results/qc/shard-{shard}.tsv",
    output:
        table="results/preprocessed/shard-{shard}.tsv",
        arrays=expand("results/preprocessed/shard-{{shard}}_res-{res}.npy", res=RESOLUTIONS),
        images=directory("results/preprocessed/shard-{shard}"),
    params:
        images=shard_images,
        settings=config["preprocess"],
        resolutions=RESOLUTIONS,
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
