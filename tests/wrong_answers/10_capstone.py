"""Wrong answers to lesson 10's autoscaling exercise."""

FIXED_TWO = """def autoscaled(deployment, max_replicas: int):
    return deployment.options(num_replicas=max_replicas)
"""

EXERCISES = {
    "autoscaled": {
        "two fixed replicas": FIXED_TWO,
        "min_replicas=2": ('"min_replicas": 1', '"min_replicas": 2'),
        "the default delays (30 s up, 600 s down)": (
            '            "upscale_delay_s": 1,\n            "downscale_delay_s": 5,\n',
            "",
        ),
        "the default downscale delay (600 s)": ('            "downscale_delay_s": 5,\n', ""),
    }
}
