"""Where LLM call results are kept, by content address (see `base.call_key`); the results store implements it."""

from __future__ import annotations

from typing import Protocol


class CallStore(Protocol):
    """A durable map from call key to the JSON-serialisable result of one successful LLM call.

    `put` must be durable when it returns (a SIGKILL right after loses nothing); errors are never stored.
    """

    def get_many(self, keys: list[str]) -> dict[str, dict]: ...

    def put(self, key: str, record: dict) -> None: ...


class MemoryCallStore:
    """In-process CallStore for tests and notebooks."""

    def __init__(self) -> None:
        self.records: dict[str, dict] = {}

    def get_many(self, keys: list[str]) -> dict[str, dict]:
        return {k: self.records[k] for k in keys if k in self.records}

    def put(self, key: str, record: dict) -> None:
        self.records[key] = record
