"""Documents: file parts become numbered documents, the planner sees their index, the plan routes them (a map
expands to one subtask per document), and a worker's prompt carries only its own."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest

from agentmesh.shared_prefix import shared_prefix
from agentmesh.teams.spec import AgentSpec
from agentmesh.v1 import common_pb2, worker_pb2
from gateway.openai.protocol import ChatCompletionRequest, InvalidRequest
from gateway.openai.translate import to_run_request
from orchestrator_svc.planner import PlanError, plan_from_tool_input, plan_tool, planning_prompt, validate_plan
from worker_svc.task import build_prompt

DOCS = [
    common_pb2.Document(id=f"D{i}", name=f"c{i}.md", text=f"Contract {i}\nline two\n\nline three\nfour")
    for i in (1, 2, 3)
]


def _file(name: str, text: str, media_type: str = "text/markdown") -> dict[str, Any]:
    data = base64.b64encode(text.encode()).decode()
    return {"type": "file", "file": {"filename": name, "file_data": f"data:{media_type};base64,{data}"}}


def _request(*parts: dict[str, Any]) -> ChatCompletionRequest:
    return ChatCompletionRequest.model_validate(
        {"model": "agentmesh", "messages": [{"role": "user", "content": list(parts)}]}
    )


# -- the gateway --


def test_file_parts_become_numbered_documents_and_the_text_stays_the_request() -> None:
    run = to_run_request(
        _request({"type": "text", "text": "Summarise each"}, _file("a.md", "# A"), _file("b.txt", "B"))
    )
    assert [(d.id, d.name, d.text) for d in run.documents] == [("D1", "a.md", "# A"), ("D2", "b.txt", "B")]
    assert run.messages[0].content == "Summarise each"


def test_a_message_of_documents_alone_still_says_what_it_carries() -> None:
    run = to_run_request(_request(_file("a.md", "# A")))
    assert run.messages[0].content == "(attached: D1 a.md)"


@pytest.mark.parametrize(
    ("part", "words"),
    [
        (_file("c.pdf", "%PDF-1.7", "application/pdf"), "PDF documents are not supported"),
        (_file("x.png", "png", "image/png"), "'image/png' are not supported"),
        ({"type": "file", "file": {"file_id": "file-abc"}}, "file_id references are not supported"),
        ({"type": "file", "file": {"filename": "a.md", "file_data": "not a data url"}}, "must be a data URL"),
        ({"type": "file", "file": {"filename": "a.md", "file_data": "data:text/plain;base64,%%%"}}, "not valid base64"),
        ({"type": "file"}, "needs a 'file' object"),
    ],
)
def test_unusable_files_are_a_400_naming_the_part(part: dict[str, Any], words: str) -> None:
    with pytest.raises(InvalidRequest, match=words) as caught:
        to_run_request(_request({"type": "text", "text": "read it"}, part))
    assert caught.value.param == "messages[0].content[1]"


def test_a_text_file_sent_as_octet_stream_is_read_by_its_extension() -> None:
    run = to_run_request(_request(_file("notes.md", "# N", "application/octet-stream")))
    assert run.documents[0].text == "# N"


# -- the planner --


def test_the_planner_sees_each_documents_name_size_and_opening_lines() -> None:
    prompt = planning_prompt([common_pb2.ChatMessage(role="user", content="Compare")], "m", 100, documents=DOCS)
    index = prompt.messages[-1].content
    assert index.startswith("Compare\n\nThe request carries 3 documents.")
    assert "D2 c2.md (36 characters): Contract 2 / line two / line three" in index
    assert "four" not in index  # three opening lines, not every word


def test_the_plan_tool_names_documents_as_an_enum_and_offers_a_map() -> None:
    properties = plan_tool(8, documents=DOCS).input_schema["properties"]
    subtask = properties["subtasks"]["items"]["properties"]
    assert subtask["documents"]["items"]["enum"] == ["D1", "D2", "D3"]
    assert properties["map"]["items"]["properties"]["documents"]["items"]["enum"] == ["D1", "D2", "D3"]
    assert "map" not in plan_tool(8).input_schema["properties"]


def test_a_map_entry_becomes_one_subtask_per_document_and_a_dependent_waits_for_all() -> None:
    raw = {
        "subtasks": [{"id": "cmp", "title": "Compare", "instruction": "compare them", "depends_on": ["m1"]}],
        "map": [{"id": "m1", "title": "Summarise", "instruction": "summarise it"}],
    }
    subtasks = validate_plan(raw, 8, DOCS)
    by_id = {s.id: s for s in subtasks}
    assert [s.id for s in subtasks] == ["cmp", "m1-D1", "m1-D2", "m1-D3"]
    assert (by_id["m1-D2"].title, list(by_id["m1-D2"].documents)) == ("Summarise: c2.md", ["D2"])
    assert list(by_id["cmp"].depends_on) == ["m1-D1", "m1-D2", "m1-D3"]


def test_a_map_beyond_max_subtasks_is_cut_and_the_plan_says_which_documents() -> None:
    documents = [common_pb2.Document(id=f"D{i}", name=f"c{i}.md", text="x") for i in range(1, 11)]
    raw = {
        "subtasks": [{"id": "t1", "title": "t", "instruction": "i"}],
        "map": [{"id": "m", "title": "S", "instruction": "s"}],
    }
    plan = plan_from_tool_input(raw, "request", 4, documents=documents)
    assert [s.id for s in plan.subtasks] == ["t1", "m-D1", "m-D2", "m-D3"]
    assert plan.repairs == ("map m: 10 documents, but MAX_SUBTASKS=4 leaves room for 3: D4 to D10 (7) left out",)
    assert not plan.fallback_reason


def test_unknown_document_ids_are_dropped_visibly() -> None:
    raw = {"subtasks": [{"id": "t1", "title": "t", "instruction": "i", "documents": ["D2", "D9", "D2"]}]}
    plan = plan_from_tool_input(raw, "request", 8, documents=DOCS)
    assert list(plan.subtasks[0].documents) == ["D2"]
    assert plan.repairs == ("t1: unknown document D9 dropped",)


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (
            {"map": [{"id": "t1", "title": "S", "instruction": "s"}], "subtasks": [{"id": "t1", "instruction": "x"}]},
            "has the id",
        ),
        ({"subtasks": [{"id": "t1", "instruction": "x", "documents": "D1"}]}, "not a list of ids"),
        ({"map": "each"}, "map is not a list"),
    ],
)
def test_unusable_document_plans_are_rejected(raw: dict[str, Any], reason: str) -> None:
    with pytest.raises(PlanError, match=reason):
        validate_plan(raw, 8, DOCS)


def test_the_fallback_subtask_gets_every_document() -> None:
    plan = plan_from_tool_input({"subtasks": []}, "request", 8, documents=DOCS)
    assert list(plan.subtasks[0].documents) == ["D1", "D2", "D3"]


# -- the worker --

SPEC = AgentSpec(
    team="default", role="worker", name="analyst", description="", provider="anthropic", model="m",
    max_tokens=100, prompt="You analyse.", source=Path("analyst.md"),
)  # fmt: skip


def _execute(**fields: Any) -> worker_pb2.ExecuteRequest:
    subtask = common_pb2.Subtask(id="m1-D2", title="Summarise: c2.md", instruction="summarise it", documents=["D2"])
    return worker_pb2.ExecuteRequest(objective="the request", subtask=subtask, documents=[DOCS[1]], **fields)


def test_a_worker_prompt_carries_its_documents_and_without_a_cache_key_is_laid_out_as_before() -> None:
    prompt = build_prompt(_execute(), SPEC)
    assert prompt.system == "You analyse." and prompt.cache is None
    text = prompt.messages[0].content
    assert '<document id="D2" name="c2.md">\nContract 2' in text
    assert text.endswith("The overall request, for context:\nthe request")


def test_with_a_cache_key_the_prompt_begins_with_the_runs_shared_prefix() -> None:
    prompt = build_prompt(_execute(cache_key="run-1"), SPEC)
    assert prompt.system == f"{shared_prefix('the request')}\n\nYou analyse."
    assert prompt.cache is not None and prompt.cache.key == "run-1"
    assert prompt.system[: prompt.cache.chars] == shared_prefix("the request")
    assert "the request" not in prompt.messages[0].content  # the subtask's own part only
