# One training job per model (target x input set) and fold, on a GPU where there is one.


# The three tables an image model reads, named in one file that is rewritten whenever one of
# them is: one input of a training job instead of three (at UK Biobank scale each input of a
# training job costs the DAG about 0.1 ms a job, a third of a second per thousand image jobs).
rule image_inputs:
    input:
        preprocess="results/preprocessed/index_res-{res}.tsv",
        augment="results/augment/index_res-{res}.tsv",
        regions="results/regions.tsv",
    output:
        "results/training_inputs/images_res-{res}.json",
    log:
        "logs/training_inputs/images_res-{res}.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/image_inputs.py"


rule train:
    input:
        unpack(train_inputs),
    output:
        metrics="results/models/{model}/{fold}/metrics.json",
        predictions="results/models/{model}/{fold}/predictions.tsv",
        weights="results/models/{model}/{fold}/model.pt",
    params:
        model=model_params,
        phenotypes=PHENOTYPE_FILE,
        copies=config["augment"]["copies"],
        folds=N_FOLDS,
        seed=config["seed"],
    threads: model_resource("threads")  # on SLURM, cpus_per_task
    resources:
        gpu=model_resource("gpu"),
        mem_mb=model_resource("mem_mb"),
        runtime=model_resource("runtime"),
        workers=model_setting("workers"),  # data-loader processes on a GPU: speed, not results
        disk_mb=1000,  # weights and predictions (declared: the default stats every input file)
    log:
        "logs/train/{model}/{fold}.log",
    benchmark:
        "results/benchmarks/train/{model}/{fold}.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/train.py"
