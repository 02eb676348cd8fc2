"""Runs as the gateway saw them: the record of each, its log line, the recent history, /v1/runs and the inspector."""
