# What made the results: the run's effective configuration, and the description that makes
# results/preprocessed/ a BIDS derivative dataset.


rule effective_config:
    output:
        "results/config.yaml",
    params:
        config=config,
    log:
        "logs/effective_config.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/effective_config.py"


rule derivative_description:
    output:
        "results/preprocessed/dataset_description.json",
    params:
        description=jobs.dataset_description("legibility preprocessed images"),
    log:
        "logs/derivative_description.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/write_json.py"
