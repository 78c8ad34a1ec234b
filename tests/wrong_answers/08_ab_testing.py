"""Wrong answers to lesson 08's exercises (a canary step; ask one version)."""

EXERCISES = {
    "canary": {
        "v2 keeps 100, v3 gets percent (a 20% share)": ('"2": 100 - percent', '"2": 100'),
        "percent for v2": ('{"2": 100 - percent, "3": percent}', '{"2": percent, "3": 100 - percent}'),
        "only v3 listed": ('{"2": 100 - percent, "3": percent}', '{"3": percent}'),
    },
    "ask_version": {
        "no model id (the replica's default)": (
            "versions.options(multiplexed_model_id=model_id).predict",
            "versions.predict",
        ),
        "always the champion": ("multiplexed_model_id=model_id", 'multiplexed_model_id="2"'),
    },
}
