"""Wrong answers to lesson 01's exercises (classify many texts at once; a tweet-sized service)."""

GATHER = (
    "    responses = [handle.analyze.remote(text) for text in texts]\n"
    "    results = await asyncio.gather(*responses)\n"
)

EXERCISES = {
    "classify_many": {
        "one call at a time (await each before the next)": (
            GATHER,
            "    results = [await handle.analyze.remote(text) for text in texts]\n",
        ),
        "two halves, one after the other": (
            GATHER,
            "    half = len(texts) // 2\n"
            "    results = await asyncio.gather(*[handle.analyze.remote(t) for t in texts[:half]])\n"
            "    results += await asyncio.gather(*[handle.analyze.remote(t) for t in texts[half:]])\n",
        ),
        "max() of the scores dict (its largest key, not its best label)": (
            'result["label"] for result in results',
            'max(result["scores"]) for result in results',
        ),
        "each distinct text once": ("for text in texts]", "for text in set(texts)]"),
    },
    "deploy_tweet_service": {
        "a whole CPU per replica": ('{"num_cpus": 0.5}', '{"num_cpus": 1}'),
        "no max_chars (the default limit)": (", max_chars=280", ""),
        "max_chars off by one": ("max_chars=280", "max_chars=281"),
        "another route": ('route_prefix="/sentiment"', 'route_prefix="/tweets"'),
    },
}
