"""Assistants and their versions. Every change writes a new version row; `assistants` holds the latest."""

from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import Connection, and_, delete, func, insert, select, update

from aegra_server.configurable import mirrored
from aegra_server.storage.common import (
    Conflict,
    NotFound,
    Page,
    fetch_page,
    first,
    insert_unless_taken,
    order_by,
    row_dict,
)
from aegra_server.storage.database import Database, utcnow
from aegra_server.storage.filters import auth_filter_clause, json_contains
from aegra_server.storage.tables import assistant_versions, assistants

# What marks the assistant every graph gets for free (langgraph-api's mark too).
SYSTEM_METADATA = {"created_by": "system"}

SORTABLE = {"assistant_id", "graph_id", "name", "created_at", "updated_at"}
# Sorted ignoring case, as langgraph dev does (byte order put "Zeta" before "alpha").
SORTED_IGNORING_CASE = frozenset({"graph_id", "name"})
_VERSION_FIELDS = ("graph_id", "name", "description", "config", "context", "metadata")


def _by_id(assistant_id: str):
    return select(assistants).where(assistants.c.assistant_id == assistant_id)


def _visible(query, auth_filter: dict[str, Any] | None, dialect: str):
    """Only assistants an authorization filter lets through: the others look missing (404)."""
    return query.where(auth_filter_clause(assistants.c.metadata, auth_filter, dialect)) if auth_filter else query


def _version_row(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "assistant_id": row["assistant_id"],
        "version": row["version"],
        **{k: row[k] for k in _VERSION_FIELDS},
        "created_at": row["updated_at"],
    }


class AssistantRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(
        self,
        *,
        graph_id: str,
        assistant_id: str | None = None,
        config: dict | None = None,
        context: dict | None = None,
        metadata: dict | None = None,
        name: str | None = None,
        description: str | None = None,
        if_exists: str = "raise",
        auth_filter: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        now = utcnow()
        config, context = mirrored(config, context)
        row = {
            "assistant_id": assistant_id or str(uuid.uuid4()),
            "graph_id": graph_id,
            "name": name or "Untitled",  # as langgraph-api; system assistants are named after their graph
            "description": description,
            "config": config,
            "context": context,
            "metadata": metadata or {},
            "version": 1,
            "created_at": now,
            "updated_at": now,
        }

        def create(conn: Connection) -> dict[str, Any]:
            existing = first(conn, _by_id(row["assistant_id"]))
            if existing is not None:
                visible = not auth_filter or first(conn, _visible(_by_id(row["assistant_id"]), auth_filter, self.db.dialect))
                if if_exists == "do_nothing" and visible:
                    return existing
                raise Conflict(f"assistant {row['assistant_id']} already exists")
            if not insert_unless_taken(conn, assistants, row):
                return create(conn)  # made meanwhile by another client: as if it had been there already
            conn.execute(insert(assistant_versions).values(_version_row(row)))
            return row

        return await self.db.write(create)

    async def get(self, assistant_id: str, *, auth_filter: dict[str, Any] | None = None) -> dict[str, Any]:
        row = await self.db.read(first, _visible(_by_id(assistant_id), auth_filter, self.db.dialect))
        if row is None:
            raise NotFound(f"assistant {assistant_id} not found")
        return row

    async def update(
        self, assistant_id: str, changes: dict[str, Any], *, auth_filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Apply a PATCH: metadata is merged, other given fields replace; the result is a new version."""

        def patch(conn: Connection) -> dict[str, Any]:
            # Held (Postgres) until the new version is in: two edits at once would take the same version number.
            row = first(conn, _visible(_by_id(assistant_id).with_for_update(), auth_filter, self.db.dialect))
            if row is None:
                raise NotFound(f"assistant {assistant_id} not found")
            latest = conn.execute(
                select(func.max(assistant_versions.c.version)).where(assistant_versions.c.assistant_id == assistant_id)
            ).scalar_one()
            for key, value in changes.items():
                if value is not None:
                    row[key] = {**row["metadata"], **value} if key == "metadata" else value
            # The two stay one: the side this patch gave replaces the other.
            row["config"], row["context"] = mirrored(
                row["config"], row["context"], context_wins=changes.get("context") is not None
            )
            row["version"] = (latest or 0) + 1
            row["updated_at"] = utcnow()
            conn.execute(
                update(assistants)
                .where(assistants.c.assistant_id == assistant_id)
                .values({k: row[k] for k in (*_VERSION_FIELDS, "version", "updated_at")})
            )
            conn.execute(insert(assistant_versions).values(_version_row(row)))
            return row

        return await self.db.write(patch)

    async def delete(self, assistant_id: str, *, auth_filter: dict[str, Any] | None = None) -> None:
        def remove(conn: Connection) -> int:
            if auth_filter and first(conn, _visible(_by_id(assistant_id), auth_filter, self.db.dialect)) is None:
                return 0
            conn.execute(delete(assistant_versions).where(assistant_versions.c.assistant_id == assistant_id))
            return conn.execute(delete(assistants).where(assistants.c.assistant_id == assistant_id)).rowcount

        if await self.db.write(remove) == 0:
            raise NotFound(f"assistant {assistant_id} not found")

    def _filtered(self, query, *, graph_id=None, metadata=None, name=None, auth_filter=None):
        query = _visible(query, auth_filter, self.db.dialect)
        if graph_id:
            query = query.where(assistants.c.graph_id == graph_id)
        if metadata:
            query = query.where(json_contains(assistants.c.metadata, metadata, self.db.dialect))
        if name:
            query = query.where(assistants.c.name.icontains(name, autoescape=True))
        return query

    async def search(
        self,
        *,
        graph_id=None,
        metadata=None,
        name=None,
        limit=10,
        offset=0,
        sort_by=None,
        sort_order=None,
        auth_filter=None,
    ) -> Page:
        query = self._filtered(
            select(assistants), graph_id=graph_id, metadata=metadata, name=name, auth_filter=auth_filter
        ).order_by(
            *order_by(assistants, sort_by, sort_order, SORTABLE, "created_at", SORTED_IGNORING_CASE)
        )
        return await self.db.read(lambda conn: fetch_page(conn, query, limit=limit, offset=offset))

    async def count(self, *, graph_id=None, metadata=None, name=None, auth_filter=None) -> int:
        query = self._filtered(
            select(func.count()).select_from(assistants),
            graph_id=graph_id,
            metadata=metadata,
            name=name,
            auth_filter=auth_filter,
        )
        return await self.db.read(lambda conn: conn.execute(query).scalar_one())

    async def versions(
        self, assistant_id: str, *, metadata=None, limit=10, offset=0, auth_filter=None
    ) -> list[dict[str, Any]]:
        if auth_filter:
            await self.get(assistant_id, auth_filter=auth_filter)  # 404 for an assistant the caller may not see
        query = select(assistant_versions).where(assistant_versions.c.assistant_id == assistant_id)
        if metadata:
            query = query.where(json_contains(assistant_versions.c.metadata, metadata, self.db.dialect))
        query = query.order_by(assistant_versions.c.version.desc()).limit(limit).offset(offset)
        rows = await self.db.read(lambda conn: [row_dict(r) for r in conn.execute(query).all()])
        if not rows:
            await self.get(assistant_id)  # 404 for an unknown assistant, [] for a filter that matched nothing
        return rows

    async def set_latest(
        self, assistant_id: str, version: int, *, auth_filter: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        def roll(conn: Connection) -> dict[str, Any]:
            # Held (Postgres), so that it cannot be deleted between reading its version and changing it.
            if first(conn, _visible(_by_id(assistant_id).with_for_update(), auth_filter, self.db.dialect)) is None:
                raise NotFound(f"assistant {assistant_id} not found")
            chosen = first(
                conn,
                select(assistant_versions).where(
                    and_(assistant_versions.c.assistant_id == assistant_id, assistant_versions.c.version == version)
                ),
            )
            if chosen is None:
                raise NotFound(f"assistant {assistant_id} has no version {version}")
            conn.execute(
                update(assistants)
                .where(assistants.c.assistant_id == assistant_id)
                .values(**{k: chosen[k] for k in _VERSION_FIELDS}, version=version, updated_at=utcnow())
            )
            return first(conn, _by_id(assistant_id))

        return await self.db.write(roll)

    async def ensure_defaults(self, graphs: dict[str, str], descriptions: dict[str, str | None]) -> list[str]:
        """Create the system assistant of each graph once (id = uuid5 of the graph id), and delete those of graphs
        no longer served, as langgraph-api does at start: they would be listed (in Studio, say) and fail to run.

        Returns the ids of the graphs whose system assistants went. Assistants people created stay.
        """
        def remove_stale(conn: Connection) -> list[str]:
            stale = conn.execute(
                select(assistants.c.assistant_id, assistants.c.graph_id).where(
                    assistants.c.graph_id.not_in(list(graphs)),
                    json_contains(assistants.c.metadata, SYSTEM_METADATA, self.db.dialect),
                )
            ).all()
            if not stale:
                return []
            ids = [row.assistant_id for row in stale]
            conn.execute(delete(assistant_versions).where(assistant_versions.c.assistant_id.in_(ids)))
            conn.execute(delete(assistants).where(assistants.c.assistant_id.in_(ids)))
            return sorted({row.graph_id for row in stale})

        removed = await self.db.write(remove_stale)
        for graph_id, assistant_id in graphs.items():
            await self.create(
                graph_id=graph_id,
                assistant_id=assistant_id,
                name=graph_id,
                description=descriptions.get(graph_id),
                metadata=dict(SYSTEM_METADATA),
                if_exists="do_nothing",
            )
        return removed
