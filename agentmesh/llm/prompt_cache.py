"""Which prompts a model API caches: the shortest cacheable prefix per model, and how we estimate a text's tokens.

Anthropic caches a prefix up to a ``cache_control`` breakpoint when it has at least the model's minimum (below it
the request is served uncached, without an error); OpenAI caches every prompt of 1,024 tokens or more on its own.
"""

from __future__ import annotations

import re

# Anthropic's documented minimums (docs.anthropic.com, prompt caching): the first pattern that matches wins.
_ANTHROPIC_MINIMUMS: tuple[tuple[re.Pattern[str], int], ...] = (
    (re.compile(r"claude-(haiku-4-5|opus-4-5|opus-4-6)"), 4096),
    (re.compile(r"claude-(3-5-haiku|3-haiku|haiku-3)"), 2048),
)
ANTHROPIC_DEFAULT_MINIMUM = 1024
OPENAI_MINIMUM = 1024
# No tokenizer here: about 4 bytes of English text per token. A wrong guess costs little either way: too high,
# and a prefix the API will not cache is warmed for nothing; too low, and a cacheable one goes uncached.
BYTES_PER_TOKEN = 4


def anthropic_minimum(model: str) -> int:
    return next((tokens for pattern, tokens in _ANTHROPIC_MINIMUMS if pattern.search(model)), ANTHROPIC_DEFAULT_MINIMUM)


def openai_minimum(model: str) -> int:
    return OPENAI_MINIMUM


def estimated_tokens(text: str) -> int:
    return len(text.encode("utf-8")) // BYTES_PER_TOKEN
