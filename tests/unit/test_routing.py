"""Routing subtasks to specialists: the plan schema, repairs, the offline plan, targets, spend per specialist."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agentmesh.llm.offline import OfflineProvider
from agentmesh.llm.pricing import ModelPrice
from agentmesh.llm.provider import Message, Prompt
from agentmesh.settings import DEFAULT_TEAMS_DIR
from agentmesh.teams.loader import RoleDefaults, load_teams
from agentmesh.teams.spec import AgentSpec, TeamError
from agentmesh.v1 import common_pb2
from orchestrator_svc.planner import Plan, plan_from_tool_input, plan_tool, route
from orchestrator_svc.routing import WorkerRoutes, parse_targets
from orchestrator_svc.spend import Agent, CostAllotter, fit_plan

TEAMS = load_teams(DEFAULT_TEAMS_DIR, RoleDefaults(llm_provider="offline"))
RESEARCH = TEAMS.by_name["research"]


def _spec(name: str, description: str = "does things") -> AgentSpec:
    return AgentSpec("t", "worker", name, description, "offline", "m", 100, "p", Path(f"{name}.md"))


def test_with_several_specialists_each_subtask_must_name_one_of_them() -> None:
    tool = plan_tool(8, [_spec("coder", "writes code"), _spec("critic", "finds flaws")])
    items = tool.input_schema["properties"]["subtasks"]["items"]
    assert items["properties"]["agent"]["enum"] == ["coder", "critic"]
    assert "agent" in items["required"]
    assert "- coder: writes code" in tool.description and "- critic: finds flaws" in tool.description


def test_a_team_of_one_keeps_todays_schema() -> None:
    assert plan_tool(8, [_spec("solo")]).input_schema == plan_tool(8).input_schema


def test_unknown_and_missing_agents_are_repaired_to_the_first_specialist_with_the_reason() -> None:
    raw = {
        "subtasks": [
            {"id": "a", "title": "a", "instruction": "do a", "depends_on": [], "agent": "critic"},
            {"id": "b", "title": "b", "instruction": "do b", "depends_on": [], "agent": "poet"},
            {"id": "c", "title": "c", "instruction": "do c", "depends_on": []},
        ]
    }
    plan = route(plan_from_tool_input(raw, "request", 8), ["coder", "critic"])
    assert [s.agent for s in plan.subtasks] == ["critic", "coder", "coder"]
    assert plan.repairs == ("b: unknown agent 'poet', routed to coder", "c: no agent, routed to coder")
    assert not plan.fallback_reason


def test_a_team_of_one_routes_everything_to_it_without_repairs() -> None:
    plan = route(Plan(subtasks=[common_pb2.Subtask(id="t1", instruction="x")]), ["solo"])
    assert [s.agent for s in plan.subtasks] == ["solo"] and plan.repairs == ()


def test_the_offline_planner_fans_a_one_line_request_out_over_the_research_team() -> None:
    tool = plan_tool(8, list(RESEARCH.workers.values()))
    prompt = Prompt(
        model="m", system="s", messages=[Message(role="user", content="Compare gRPC and REST")], max_tokens=9
    )
    call = asyncio.run(OfflineProvider().call_tool(prompt, tool))
    plan = route(plan_from_tool_input(call.input, "Compare gRPC and REST", 8), list(RESEARCH.workers))
    assert len(plan.subtasks) >= 3 and len({s.agent for s in plan.subtasks}) >= 2
    assert plan.repairs == ()


def test_worker_targets_pairs_keep_multi_address_targets_and_fall_back_to_worker_target() -> None:
    pairs = parse_targets("researcher=ipv4:127.0.0.1:1,127.0.0.1:2, research/writer=dns:///w:3,*=rest:4")
    assert pairs == {"researcher": "ipv4:127.0.0.1:1,127.0.0.1:2", "research/writer": "dns:///w:3", "*": "rest:4"}
    routes = WorkerRoutes.create("researcher=r:1,research/writer=w:2", "default:9", TEAMS)
    assert routes.target(RESEARCH.workers["researcher"]) == "r:1"
    assert routes.target(RESEARCH.workers["writer"]) == "w:2"
    assert routes.target(RESEARCH.workers["analyst"]) == "default:9"
    assert routes.targets(TEAMS) == {"r:1", "w:2", "default:9"}


@pytest.mark.parametrize(
    ("value", "message"),
    [("critic=x:1", "'critic' is no specialist"), ("x:1", "no name=target"), ("writer=", "no target")],
)
def test_a_bad_worker_targets_value_names_the_problem(value: str, message: str) -> None:
    with pytest.raises(TeamError, match=f"WORKER_TARGETS: .*{message}"):
        WorkerRoutes.create(value, "default:9", TEAMS)


def test_spend_prices_each_subtask_with_its_own_specialists_model_and_cap() -> None:
    cheap, dear = Agent("cheap", ModelPrice(1.0, 1.0), 1000), Agent("dear", ModelPrice(1.0, 100.0), 200)
    synthesizer = Agent("cheap", ModelPrice(1.0, 1.0), 500)
    subtasks = [common_pb2.Subtask(id="a", agent="cheap"), common_pb2.Subtask(id="b", agent="dear")]
    roomy = fit_plan(1.0, "objective", subtasks, {"cheap": cheap, "dear": dear}, synthesizer)
    assert roomy.worker_tokens == 1000 and roomy.left_out == []  # each still capped by its own max_tokens below
    alone_cheap = fit_plan(0.02, "objective", subtasks[:1], {"cheap": cheap, "dear": dear}, synthesizer)
    with_dear = fit_plan(0.02, "objective", subtasks, {"cheap": cheap, "dear": dear}, synthesizer)
    assert with_dear.worker_tokens < alone_cheap.worker_tokens  # the dear specialist's output costs 100x
    budget = CostAllotter.create(
        0.05, {"cheap": cheap.price, "dear": dear.price}, ("cheap", 1000), ("cheap", 500), {"dear": ("dear", 200)}
    )
    budget.fit("objective", subtasks)
    _, tokens = budget.reserve_worker("objective", subtasks[1], [])
    assert 0 < tokens <= 200
