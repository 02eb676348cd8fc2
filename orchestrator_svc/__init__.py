"""The orchestrator service: plans a request, runs the plan on workers, relays the synthesis."""
