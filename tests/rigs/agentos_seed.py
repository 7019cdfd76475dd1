"""Two users' rows (sessions with runs, memories) written through Agno's own DB API, no model called.

The same rows go into the isolated-RBAC AgentOS's database and into the open one behind authproxy, so
both answer from identical data.
"""

from __future__ import annotations

from dataclasses import dataclass

USERS = ("alice", "bob")
AGENT = "agno-agent"


@dataclass(frozen=True, slots=True)
class Seeded:
    user: str
    session_id: str
    run_id: str
    memory_id: str
    spare_memory_id: str  # deleted by its owner in the write tests


def seeded(user: str) -> Seeded:
    return Seeded(user, f"sess-{user}", f"run-{user}", f"mem-{user}", f"mem-{user}-spare")


def seed(db_file: str) -> None:
    from agno.db.schemas.memory import UserMemory
    from agno.db.sqlite import SqliteDb
    from agno.run.agent import RunOutput
    from agno.run.base import RunStatus
    from agno.session.agent import AgentSession

    db = SqliteDb(db_file=db_file)
    for user in USERS:
        rows = seeded(user)
        run = RunOutput(
            run_id=rows.run_id,
            agent_id=AGENT,
            session_id=rows.session_id,
            user_id=user,
            content=f"answer for {user}",
            status=RunStatus.completed,
            created_at=1_700_000_000,
        )
        session = AgentSession(
            session_id=rows.session_id,
            agent_id=AGENT,
            user_id=user,
            runs=[run],
            session_data={"session_name": f"{user}'s session"},
            created_at=1_700_000_000,
            updated_at=1_700_000_000,
        )
        db.upsert_session(session)
        db.upsert_run(run, session_id=rows.session_id, user_id=user, run_index=0)  # runs have their own table
        for memory_id in (rows.memory_id, rows.spare_memory_id):
            db.upsert_user_memory(
                UserMemory(memory=f"{user} likes tea", memory_id=memory_id, user_id=user, topics=["tea"])
            )
