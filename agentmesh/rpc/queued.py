"""The metadata a worker sends before its answer when its model call waits for quota, read by the orchestrator.

Execute stays unary: its initial metadata is the one thing a unary call can send before its response.
"""

QUEUED_MS_METADATA = "agentmesh-queued-ms"  # the worker's estimate of the wait, in milliseconds
QUEUED_REASON_METADATA = "agentmesh-queued-reason"  # why, for people (printable ASCII)
