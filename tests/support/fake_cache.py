"""The prompt caches of the fake model APIs, with the real APIs' rules.

Anthropic (explicit): a prefix up to a ``cache_control`` breakpoint (tools, then system, then messages) of at least
the model's minimum is written on a miss (``cache_creation_input_tokens``, priced 1.25x) and read by later requests
(``cache_read_input_tokens``, 0.1x), each breakpoint being looked up, the longest hit winning. An entry is readable
once the response of the request writing it has begun, and lives 5 minutes from its last use. A request decides on
arrival, before its latency: requests sent together all miss, and all write.

OpenAI (automatic): a prompt of 1,024 tokens or more is cached; a later prompt routed to the same cache (same
model and ``prompt_cache_key``) reads its longest common prefix, in 128-token steps from 1,024
(``usage.prompt_tokens_details.cached_tokens``).

Tokens are the fakes' own count: characters // 4.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

TTL_S = 300.0
OPENAI_MINIMUM = 1024
OPENAI_STEP = 128
_ANTHROPIC_MINIMUMS = (
    ("haiku-4-5", 4096),
    ("opus-4-5", 4096),
    ("opus-4-6", 4096),
    ("3-5-haiku", 2048),
    ("3-haiku", 2048),
)


def anthropic_minimum(model: str) -> int:
    return next((tokens for name, tokens in _ANTHROPIC_MINIMUMS if name in model), 1024)


@dataclass
class CacheUse:
    """What one request does with the cache: tokens written and read, and the entries it makes readable."""

    write: int = 0
    read: int = 0
    entries: tuple[tuple[str, str], ...] = ()  # (key, stored value)


class PromptCache:
    """Entries by key, each readable once begun and until it expires; thread-safe (tests read it from theirs)."""

    def __init__(self, ttl_s: float = TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, tuple[str, float]] = {}  # key -> (value, expires at)
        self.writes = 0
        self.reads = 0

    def get(self, key: str) -> str | None:
        """The entry's value, refreshing its lifetime; None when absent or expired."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None or entry[1] <= self.clock():
                return None
            self._entries[key] = (entry[0], self.clock() + self.ttl_s)
            return entry[0]

    def values(self, prefix: str) -> list[str]:
        with self._lock:
            now = self.clock()
            return [
                value for key, (value, expires) in self._entries.items() if key.startswith(prefix) and expires > now
            ]

    def begin(self, use: CacheUse) -> None:
        """The response of the request that wrote these has begun: they are readable from now on."""
        with self._lock:
            for key, value in use.entries:
                self._entries[key] = (value, self.clock() + self.ttl_s)
            self.writes += bool(use.write)
            self.reads += bool(use.read)


def _blocks(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every cacheable block in the order the API caches them: tools, system, then each message's content."""
    blocks: list[dict[str, Any]] = [dict(tool) for tool in body.get("tools") or []]
    system = body.get("system")
    blocks += [{"type": "text", "text": system}] if isinstance(system, str) else list(system or [])
    for message in body.get("messages") or []:
        content = message.get("content")
        parts = [{"type": "text", "text": content}] if isinstance(content, str) else list(content or [])
        blocks += [{**part, "role": message.get("role")} for part in parts]
    return blocks


def anthropic_use(body: Mapping[str, Any], cache: PromptCache) -> CacheUse:
    model = str(body.get("model"))
    breakpoints: list[tuple[str, int]] = []  # (key, tokens up to and including the block)
    digest, chars = hashlib.sha256(model.encode()), 0
    for block in _blocks(body):
        digest.update(json.dumps({k: v for k, v in block.items() if k != "cache_control"}, sort_keys=True).encode())
        chars += len(block.get("text") or "") if block.get("type") == "text" else 0
        if block.get("cache_control"):
            breakpoints.append((digest.hexdigest(), chars // 4))
    if not breakpoints:
        return CacheUse()
    read, hit = 0, -1
    for index in range(len(breakpoints) - 1, -1, -1):
        if cache.get(breakpoints[index][0]) is not None:
            read, hit = breakpoints[index][1], index
            break
    minimum = anthropic_minimum(model)
    last_tokens = breakpoints[-1][1]
    if hit == len(breakpoints) - 1 or last_tokens < minimum:
        return CacheUse(read=read)
    entries = tuple((key, "") for key, tokens in breakpoints[hit + 1 :] if tokens >= minimum)
    return CacheUse(write=last_tokens - read, read=read, entries=entries)


def openai_use(body: Mapping[str, Any], cache: PromptCache, prompt_tokens: int) -> CacheUse:
    if prompt_tokens < OPENAI_MINIMUM:
        return CacheUse()
    route = f"{body.get('model')}\x00{body.get('prompt_cache_key') or ''}\x00"
    text = "".join(f"<{m.get('role')}>{_text(m.get('content'))}" for m in body.get("messages") or [])
    common = max((_common_prefix(text, seen) for seen in cache.values(route)), default=0)
    tokens = min(common // 4, prompt_tokens)
    read = 0 if tokens < OPENAI_MINIMUM else tokens - (tokens - OPENAI_MINIMUM) % OPENAI_STEP
    key = route + hashlib.sha256(text.encode()).hexdigest()
    return CacheUse(read=read, entries=((key, text),))


def _common_prefix(a: str, b: str) -> int:
    low, high = 0, min(len(a), len(b))
    while low < high:  # a[:low] == b[:low]; is a longer prefix common too?
        middle = (low + high + 1) // 2
        low, high = (middle, high) if a[:middle] == b[:middle] else (low, middle - 1)
    return low


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict) and p.get("type") == "text")
