# The verdicts over all models and folds: performance and legibility tables, the grid heatmap,
# one figure per target, and each model's predictions on the subjects it never saw and training
# curves (drawn here, not by the training jobs: two files fewer per job keep the DAG fast).


rule performance:
    input:
        metrics=expand("results/models/{model}/{fold}/metrics.json", model=MODELS, fold=FOLDS),
        predictions=expand("results/models/{model}/{fold}/predictions.tsv", model=MODELS, fold=FOLDS),
    output:
        table="results/performance.tsv",
        legibility="results/legibility.tsv",
        figure=report(
            "results/performance_grid.png",
            caption="../report/performance_grid.rst",
            category="Performance",
        ),
        targets=report(
            directory("results/targets"),
            patterns=["{target}.png"],
            caption="../report/target.rst",
            category="Performance",
            subcategory="Targets",
        ),
        predictions=report(
            directory("results/test_predictions"),
            patterns=["{model}.png"],
            caption="../report/test_predictions.rst",
            category="Models",
            subcategory="Predictions on unseen subjects",
        ),
        curves=report(
            directory("results/training_curves"),
            patterns=["{model}.png"],
            caption="../report/training_curve.rst",
            category="Models",
            subcategory="Training curves",
        ),
    params:
        statistics=config["statistics"],
        seed=config["seed"],
    log:
        "logs/performance.log",
    benchmark:
        "results/benchmarks/performance.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/performance.py"


# Each age model's brain-age gap: raw, and less its linear trend on age fitted on the model's
# validation subjects (per fold), so that test subjects are corrected by a fit that never saw them.
rule brain_age:
    input:
        expand("results/models/{model}/{fold}/predictions.tsv", model=BRAIN_AGE_MODELS, fold=FOLDS),
    output:
        tables=expand("results/models/{model}/brain_age.tsv", model=BRAIN_AGE_MODELS),
        summaries=expand("results/models/{model}/brain_age.json", model=BRAIN_AGE_MODELS),
    params:
        folds=FOLDS,
    log:
        "logs/brain_age.log",
    benchmark:
        "results/benchmarks/brain_age.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/brain_age.py"


# A model as one archive for another lab (legibility.bundle): on request, not part of `all`:
# snakemake results/bundles/<model>.tar, or every model's with: snakemake bundles
rule bundle:
    input:
        unpack(bundle_atlases),
        metrics=expand("results/models/{{model}}/{fold}/metrics.json", fold=FOLDS),
        weights=expand("results/models/{{model}}/{fold}/model.pt", fold=FOLDS),
        config="results/config.yaml",
        performance="results/performance.tsv",
    output:
        "results/bundles/{model}.tar",
    log:
        "logs/bundle/{model}.log",
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/bundle.py"


rule bundles:
    input:
        expand("results/bundles/{model}.tar", model=MODELS),


# Predict mode: each bundle's model on this cohort, prepared with the bundle's own settings
rule predict:
    input:
        unpack(predict_inputs),
    output:
        predictions="results/predictions/{model}.tsv",
        metrics="results/predictions/{model}.json",
    params:
        phenotypes=PHENOTYPE_FILE,
        variables=lambda w: {n: config["phenotypes"]["variables"][n] for n in predict_variables(w.model)},
        modalities=lambda w: [CONNECTIVITY_FROM if m == BOLD else m for m in PREDICT_SPECS[w.model].raw_modalities],
        seed=config["seed"],
    threads: model_resource("threads", PREDICT_SPECS)
    resources:
        gpu=model_resource("gpu", PREDICT_SPECS),
        mem_mb=model_resource("mem_mb", PREDICT_SPECS),
        runtime=model_resource("runtime", PREDICT_SPECS),
    log:
        "logs/predict/{model}.log",
    benchmark:
        "results/benchmarks/predict/{model}.tsv"
    conda:
        "../../envs/legibility.yaml"
    script:
        "../../scripts/predict.py"
