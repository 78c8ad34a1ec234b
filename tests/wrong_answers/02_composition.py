"""Wrong answers to lesson 02's exercises (the pipeline for many texts; two translators)."""

BODY = (
    "    summaries = [summarizer.summarize.remote(text, sentences) for text in texts]\n"
    "    translations = [translator.translate.remote(summary) for summary in summaries]\n"
    "    spanish = await asyncio.gather(*translations)\n"
    "    english = await asyncio.gather(*summaries)\n"
    '    return [{"summary": s, "translation": t} for s, t in zip(english, spanish, strict=True)]\n'
)

EXERCISES = {
    "summarize_and_translate_many": {
        "one text at a time": (
            BODY,
            "    results = []\n"
            "    for text in texts:\n"
            "        summary = summarizer.summarize.remote(text, sentences)\n"
            "        spanish = await translator.translate.remote(summary)\n"
            '        results.append({"summary": await summary, "translation": spanish})\n'
            "    return results\n",
        ),
        "stage by stage: every summary awaited before any translation (not chained)": (
            BODY,
            "    started = [summarizer.summarize.remote(t, sentences) for t in texts]\n"
            "    english = await asyncio.gather(*started)\n"
            "    spanish = await asyncio.gather(*[translator.translate.remote(s) for s in english])\n"
            '    return [{"summary": s, "translation": t} for s, t in zip(english, spanish, strict=True)]\n',
        ),
        "sentences not passed on": (
            "summarizer.summarize.remote(text, sentences)",
            "summarizer.summarize.remote(text)",
        ),
        "summary and translation swapped": (
            '{"summary": s, "translation": t}',
            '{"summary": t, "translation": s}',
        ),
    },
    "deploy_two_translators": {
        "one translator": ("num_replicas=2", "num_replicas=1"),
        "half a CPU per translator": ('"num_cpus": 0.25', '"num_cpus": 0.5'),
        "a second app beside the first": (
            'name="composition", route_prefix="/compose"',
            'name="two", route_prefix="/two"',
        ),
    },
}

# the last wrong answer replaces the lesson's app by another: the next answer (and the check's first
# requests) start from the lesson's app, on free CPUs
RESET = {
    "deploy_two_translators": 'serve.delete("two")\n'
    'if "composition" not in serve.status().applications:\n'
    '    serve.run(app, name="composition", route_prefix="/compose")'
}
