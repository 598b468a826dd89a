# One training job per model (target x input set), on a GPU where there is one.


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics="results/models/{model}/metrics.json",
        predictions="results/models/{model}/predictions.tsv",
        weights="results/models/{model}/model.pt",
        fitted="results/models/{model}/fitted.json",
        curve="results/models/{model}/training_curve.png",
        test=report(
            "results/models/{model}/test_predictions.png",
            caption="../report/test_predictions.rst",
            category="Models",
            subcategory="{model}",
        ),
    params:
        spec=model_spec,
        workers=model_setting("workers"),
        variables=model_variables,
        phenotypes=PHENOTYPE_FILE,
        copies=config["augment"]["copies"],
        seed=config["seed"],
    threads: model_resource("threads")  # on SLURM, cpus_per_task
    resources:
        gpu=model_resource("gpu"),
        mem_mb=model_resource("mem_mb"),
        runtime=model_resource("runtime"),
    log:
        "logs/train/{model}.log",
    benchmark:
        "results/benchmarks/train/{model}.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/train.py"
