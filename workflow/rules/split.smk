# One stratified train/validation/test assignment of subjects, restricted per target.


rule subject_split:
    output:
        "results/splits/subjects.tsv",
    params:
        split=SPLIT.to_dict("list"),
    log:
        "logs/splits/subjects.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/subject_split.py"


rule target_split:
    input:
        subjects="results/splits/subjects.tsv",
        qc="results/qc.tsv",
        phenotypes=config["phenotypes"]["path"],
    output:
        "results/splits/target-{target}.tsv",
    params:
        modalities=target_modalities,
        phenotypes=PHENOTYPE_FILE,
        variables=target_variable,
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
