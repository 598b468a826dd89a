# Each target's split: holdout or k folds, stratified by the target itself, shard by shard.


rule target_split:
    input:
        qc="results/qc.tsv",
        phenotypes=config["phenotypes"]["path"],
    output:
        "results/splits/target-{target}.tsv",
    params:
        modalities=target_modalities,
        phenotypes=PHENOTYPE_FILE,
        variables=split_variables,
        split=SPLIT,
        shards=config["shards"],
        seed=config["seed"],
    priority: 1  # as preprocessing
    log:
        "logs/splits/target-{target}.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/target_split.py"


rule splits_table:
    input:
        expand("results/splits/target-{target}.tsv", target=TARGETS),
    output:
        "results/splits.tsv",
    log:
        "logs/splits/table.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/concat_tables.py"
