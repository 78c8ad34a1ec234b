"""Wrong answers to lesson 03's exercise (an autoscaled Worker)."""

EXERCISES = {
    "deploy_autoscaled": {
        "the default target_ongoing_requests (2)": ('        "target_ongoing_requests": 1,\n', ""),
        "target_ongoing_requests=2": ('"target_ongoing_requests": 1', '"target_ongoing_requests": 2'),
        "a whole CPU per replica": ('{"num_cpus": 0.5}', '{"num_cpus": 1}'),
        "three fixed replicas": ("Worker.options(autoscaling_config=spec,", "Worker.options(num_replicas=3,"),
    }
}

# each answer starts from the lesson's state, not from the app the previous answer left
RESET = {"deploy_autoscaled": 'serve.delete("exercise")'}
