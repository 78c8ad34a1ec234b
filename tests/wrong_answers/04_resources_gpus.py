"""Wrong answers to lesson 04's exercise (redeploy for any machine)."""

EXERCISES = {
    "sentiment_deployment": {
        "half a GPU even where there is none": (
            '    if gpus_in_cluster >= 1:\n        options["num_gpus"] = 0.5\n',
            '    options["num_gpus"] = 0.5\n',
        ),
        "a whole GPU per replica (the second waits for a GPU for ever)": (
            'options["num_gpus"] = 0.5',
            'options["num_gpus"] = 1',
        ),
        "one replica": ("num_replicas=2", "num_replicas=1"),
        "half a CPU per replica": ('options = {"num_cpus": 1}', 'options = {"num_cpus": 0.5}'),
        "a new app beside the running one": (
            'name="gpu-sentiment", route_prefix="/sentiment"',
            'name="gpu-sentiment-2", route_prefix="/sentiment-2"',
        ),
    }
}

# each answer starts from the lesson's app as the exercise finds it (an answer that timed out deleted it;
# the last one leaves a second app holding CPUs)
RESET = {
    "sentiment_deployment": 'serve.delete("gpu-sentiment-2")\n'
    "lesson_app = SentimentAnalyzer.options(num_replicas=2, ray_actor_options=sentiment_options)\n"
    'serve.run(lesson_app.bind(model.location), name="gpu-sentiment", route_prefix="/sentiment")'
}
