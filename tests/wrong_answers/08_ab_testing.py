"""Wrong answers to lesson 08's canary exercise."""

EXERCISES = {
    "canary": {
        "v2 keeps 100, v3 gets percent (a 20% share)": ('"2": 100 - percent', '"2": 100'),
        "percent for v2": ('{"2": 100 - percent, "3": percent}', '{"2": percent, "3": 100 - percent}'),
        "only v3 listed": ('{"2": 100 - percent, "3": percent}', '{"3": percent}'),
    }
}
