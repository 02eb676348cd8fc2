"""The recent runs of one gateway process, for `/v1/runs` and `/inspect`: RUN_HISTORY_SIZE, oldest dropped first."""

from __future__ import annotations

from collections import OrderedDict

from gateway.edge.identity import subject_key
from gateway.runs.record import RunRecord


class RunHistory:
    """Records keyed by (subject, id): a caller sees only its own runs, and no id another caller picks can
    replace one of them."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._runs: OrderedDict[tuple[str, str], RunRecord] = OrderedDict()

    def start(self, run_id: str, request_id: str, subject: str, stream: bool) -> RunRecord:
        """A new record of a run of ``subject`` (kept hashed), in the history from now on."""
        record = RunRecord(run_id, request_id, subject_key(subject), stream)
        self.add(record)
        return record

    def add(self, record: RunRecord) -> None:
        key = (record.subject, record.id)
        self._runs.pop(key, None)
        self._runs[key] = record
        while len(self._runs) > self._size:
            self._runs.popitem(last=False)

    def of(self, subject: str) -> list[RunRecord]:
        """The subject's runs, newest first."""
        key = subject_key(subject)
        return [record for (owner, _), record in reversed(self._runs.items()) if owner == key]

    def get(self, subject: str, run_id: str) -> RunRecord | None:
        return self._runs.get((subject_key(subject), run_id))
