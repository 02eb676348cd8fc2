"""Asks the gateway one question with the official openai SDK: the answer on stdout; progress and cost on stderr.

Usage: python console_client.py "prompt" [--url http://127.0.0.1:8000] [--token T] [--model agentmesh]
Without --token (or AGENTMESH_TOKEN) a token is minted from JWT_SECRET_KEY in the environment or `.env`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import openai
from openai.types import CompletionUsage
from openai.types.chat import ChatCompletionChunk

SCRIPTS_DIR = Path(__file__).resolve().parent / "scripts"


def default_token() -> str:
    # generate_jwt is a script, not part of the installed package: import it from its directory.
    sys.path.insert(0, str(SCRIPTS_DIR))
    from generate_jwt import TokenConfigError, mint_from_env

    try:
        return mint_from_env(subject="console-client", expires_in_s=3600)
    except TokenConfigError as exc:
        raise SystemExit(f"error: cannot mint a token: {exc} (or pass --token)") from None


class Printer:
    """Progress (reasoning deltas) goes to stderr, dimmed; the answer to stdout as it arrives."""

    def __init__(self) -> None:
        self.dim = sys.stderr.isatty() and not os.environ.get("NO_COLOR")
        self.in_progress_line = False
        self.answer_started = False

    def progress(self, text: str) -> None:
        sys.stderr.write(f"\033[2m{text}\033[0m" if self.dim else text)
        sys.stderr.flush()
        self.in_progress_line = not text.endswith("\n")

    def answer(self, text: str) -> None:
        if self.in_progress_line:
            sys.stderr.write("\n")
            self.in_progress_line = False
        if not self.answer_started:
            sys.stderr.flush()
            self.answer_started = True
        sys.stdout.write(text)
        sys.stdout.flush()

    def end(self) -> None:
        if self.answer_started:
            sys.stdout.write("\n")
            sys.stdout.flush()


def reasoning_of(chunk: ChatCompletionChunk) -> str | None:
    """The gateway's progress text: an extra field the SDK keeps in ``model_extra``."""
    if not chunk.choices:
        return None
    value = getattr(chunk.choices[0].delta, "reasoning_content", None)
    return value if isinstance(value, str) and value else None


def stream_answer(chunks: Iterable[ChatCompletionChunk], printer: Printer) -> CompletionUsage | None:
    usage: CompletionUsage | None = None
    for chunk in chunks:
        if chunk.usage is not None:
            usage = chunk.usage
        progress = reasoning_of(chunk)
        if progress:
            printer.progress(progress)
        if chunk.choices and chunk.choices[0].delta.content:
            printer.answer(chunk.choices[0].delta.content)
    printer.end()
    return usage


def format_usage(usage: CompletionUsage) -> str:
    extra: Mapping[str, Any] = usage.model_extra or {}
    cost = extra.get("cost_usd")
    lines = [
        f"usage: {usage.prompt_tokens} input + {usage.completion_tokens} output = {usage.total_tokens} tokens"
        + (f", ${cost:.6f}" if isinstance(cost, int | float) else ", cost unknown (a model has no price)")
    ]
    agents = extra.get("agents") or []
    if agents:
        header = f"{'calls':>5} {'input':>8} {'cache_w':>8} {'cache_r':>8} {'output':>8} {'cost_usd':>10}"
        lines.append(f"  {'agent':<20} {'model':<28} {header}")
    for agent in agents:
        lines.append(_agent_row(agent))
    return "\n".join(lines)


def _agent_row(agent: Mapping[str, Any]) -> str:
    cost = agent.get("cost_usd")
    cost_text = f"{cost:.6f}" if isinstance(cost, int | float) else "unpriced"  # null: the model has no price
    # A worker row names its specialist: "worker/researcher".
    name = "/".join(filter(None, [agent.get("agent", "?"), agent.get("specialist")]))
    # input is uncached; cache_w was written to the prompt cache (1.25x input price), cache_r read from it (0.1x).
    written, read = agent.get("cache_creation_input_tokens", 0), agent.get("cache_read_input_tokens", 0)
    return (
        f"  {name:<20} {agent.get('model', '?'):<28} {agent.get('calls', ''):>5} "
        f"{agent.get('input_tokens', 0):>8} {written:>8} {read:>8} {agent.get('output_tokens', 0):>8} {cost_text:>10}"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Stream one answer from agentmesh and show its cost.")
    parser.add_argument("prompt")
    parser.add_argument("--url", default=os.environ.get("AGENTMESH_URL", "http://127.0.0.1:8000"))
    parser.add_argument("--token", default=os.environ.get("AGENTMESH_TOKEN"), help="default: minted from .env")
    parser.add_argument("--model", default=os.environ.get("SERVICE_MODEL_NAME", "agentmesh"))
    args = parser.parse_args(argv)
    token = args.token or default_token()
    client = openai.OpenAI(base_url=args.url.rstrip("/") + "/v1", api_key=token, max_retries=0)
    printer = Printer()
    try:
        stream = client.chat.completions.create(
            model=args.model,
            messages=[{"role": "user", "content": args.prompt}],
            stream=True,
            stream_options={"include_usage": True},
        )
        usage = stream_answer(stream, printer)
    except openai.APIConnectionError:
        printer.end()
        print(f"error: cannot reach {args.url} (is the mesh running? `make run`)", file=sys.stderr)
        return 1
    except openai.APIError as exc:
        printer.end()
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        printer.end()
        return 130
    if usage is not None:
        print(format_usage(usage), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
