"""Wrong answers to lesson 06's exercise (a labels API in front of the running model)."""

EXERCISES = {
    "deploy_labels_api": {
        "the default CPU for the ingress (serve.run waits forever)": (
            '@serve.deployment(ray_actor_options={"num_cpus": 0})',
            "@serve.deployment",
        ),
        "a quarter CPU for the ingress": ('{"num_cpus": 0}', '{"num_cpus": 0.25}'),
        "a dict answer, no response model": (
            "-> LabelsOut:\n            return LabelsOut(labels=",
            "-> dict:\n            return dict(labels=",
        ),
        "a dict annotation on a LabelsOut answer (the route answers 500)": ("-> LabelsOut:", "-> dict:"),
    }
}

RESET = {"deploy_labels_api": 'serve.delete("labels-api")'}
