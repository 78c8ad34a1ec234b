"""Wrong answers to lesson 11's exercise (stream a chat answer through a handle)."""

BODY = """    tokens = handle.options(stream=True).generate.remote(messages, max_tokens)
    try:
        async for item in tokens:
            if "text" in item:
                yield item["text"]
    finally:  # the consumer stopped early (aclose, break): stop the replica too
        tokens.cancel()
"""

EXERCISES = {
    "stream_text": {
        "the replica keeps generating after the consumer leaves (no cancel)": (
            BODY,
            """    tokens = handle.options(stream=True).generate.remote(messages, max_tokens)
    async for item in tokens:
        if "text" in item:
            yield item["text"]
""",
        ),
        "the whole answer as one piece": (
            BODY,
            """    tokens = handle.options(stream=True).generate.remote(messages, max_tokens)
    yield "".join([item["text"] async for item in tokens if "text" in item])
""",
        ),
        "the replica's dicts, not text": ('yield item["text"]', "yield item"),
    }
}
