"""agentmesh: the shared library of the orchestrator, worker, synthesizer and gateway services."""
