"""Wrong answers to lesson 05's exercise (a batched deployment)."""

EXERCISES = {
    "batched_deployment": {
        "the default max_ongoing_requests (batches of at most 5)": (", max_ongoing_requests=32", ""),
        "one CPU": ('ray_actor_options={"num_cpus": 2}', 'ray_actor_options={"num_cpus": 1}'),
        "batches of up to 32": ("max_batch_size=16", "max_batch_size=32"),
        "answers in the wrong order": (
            "return await asyncio.to_thread(self.model, texts)",
            "return sorted(await asyncio.to_thread(self.model, texts), key=lambda a: a['label'])",
        ),
    }
}

# the check deletes the lesson's app after reading its answers: each answer starts with it back
RESET = {
    "batched_deployment": 'serve.delete("exercise")\n'
    'handle = serve.run(SentimentAnalyzer.bind(model.location), name="batching", route_prefix="/batching")'
}
