"""All repositories of one database, built together."""

from __future__ import annotations

from dataclasses import dataclass

from aegra_server.storage.assistants import AssistantRepository
from aegra_server.storage.crons import CronRepository
from aegra_server.storage.database import Database
from aegra_server.storage.runs import RunRepository
from aegra_server.storage.threads import ThreadRepository


@dataclass(frozen=True)
class Repositories:
    db: Database
    assistants: AssistantRepository
    threads: ThreadRepository
    runs: RunRepository
    crons: CronRepository

    @classmethod
    def build(cls, db: Database) -> Repositories:
        return cls(db, AssistantRepository(db), ThreadRepository(db), RunRepository(db), CronRepository(db))
