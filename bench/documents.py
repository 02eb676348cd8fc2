"""Documents routed to the subtasks that need them: what each worker receives, and what the whole fan-out reads.

Starts the fake Anthropic API and the mesh, sends one request carrying ``--documents`` Markdown files of
``--tokens`` tokens each (OpenAI ``file`` parts) and a one-entry map plan (the fake planner is scripted: one
subtask per document), then prints how many worker calls carried exactly their own document, the workers' total
input beside the documents' size (and beside what it was when every worker read the whole request), and the
planner's input (the documents' index, not their text).

    .venv/bin/python -m bench.documents [--documents 40] [--tokens 2000]
"""

from __future__ import annotations

import argparse
import re
import tempfile
from pathlib import Path

from agentmesh.shared_prefix import shared_prefix
from tests.support.fake_anthropic import agent_of, spawn_fake_anthropic
from tests.support.fanout import API_KEY, CHARS_PER_TOKEN, document, fanout_mesh, file_part, run_fanout

REQUEST = "Summarise each contract's termination terms."
PLAN = {"subtasks": [], "map": [{"id": "m1", "title": "Summarise", "instruction": "Summarise its termination terms"}]}


def own_document_only(body: dict[str, object]) -> bool:
    message = str(body["messages"][-1]["content"])  # type: ignore[index]
    subtask = re.match(r"Subtask m1-D(\d+):", message)
    return subtask is not None and set(re.findall(r"Contract (\d{3}):", message)) == {f"{int(subtask[1]):03d}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=40)
    parser.add_argument("--tokens", type=int, default=2_000)
    args = parser.parse_args()
    documents = [document(number, args.tokens) for number in range(1, args.documents + 1)]
    content = [{"type": "text", "text": REQUEST}, *(file_part(name, text) for name, text in documents)]
    # MAX_SUBTASKS is 64 in this mesh: a map over more documents is cut there, and the plan says so.
    with (
        spawn_fake_anthropic(api_key=API_KEY) as fake,
        tempfile.TemporaryDirectory() as workdir,
        fanout_mesh(Path(workdir), fake) as mesh,
    ):
        run = run_fanout(mesh, fake, content, PLAN)
        planner = next(r for r in fake.requests() if agent_of(r) == "orchestrator")
    documents_tokens = sum(len(text) for _, text in documents) // CHARS_PER_TOKEN
    prefix_tokens = len(shared_prefix(REQUEST)) // CHARS_PER_TOKEN
    own = sum(own_document_only(r["body"]) for r in run.worker_requests)
    total = run.worker_input_tokens
    print(f"{args.documents} documents of {args.tokens} tokens ({documents_tokens} in all), one subtask per document")
    print(f"worker calls carrying their own document and no other: {own} of {len(run.worker_requests)}")
    print(
        f"workers' input: {total} tokens = {total / documents_tokens:.2f}x the documents "
        f"(bound: 1.5x + {args.documents} x {prefix_tokens}-token prefix = "
        f"{1.5 * documents_tokens + args.documents * prefix_tokens:.0f}); every worker reading every document "
        f"would be {args.documents * documents_tokens} ({args.documents}x)"
    )
    print(f"planner's input: {planner['usage']['input_tokens']} tokens (the index: names, sizes, opening lines)")
    written = planner["usage"]["output_tokens"]
    print(f"plan: one map entry, {written} output tokens, for {len(run.worker_requests)} subtasks")


if __name__ == "__main__":
    main()
