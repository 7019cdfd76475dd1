"""A real Agno AgentOS for the differential suite, run as a subprocess by conftest.py.

    python agentos_app.py --mode rbac|rbac-isolated|open --db FILE --fd N --os-id ID

`--fd` is a listening TCP socket the parent bound on 127.0.0.1 with an OS-chosen port and passed down,
so the parent knows the port before this process starts. `rbac` turns AgentOS's own JWT RBAC on (HS256,
secret from $AGENTOS_TEST_SECRET, audience = the OS id), `rbac-isolated` adds per-user isolation;
`open` has no auth at all (the upstream that authproxy guards). No request here calls a model: the dummy
OPENAI_API_KEY is never used.
"""

from __future__ import annotations

import argparse
import os
import socket
from typing import Any

AGENT_IDS = ("web-search-agent", "agno-agent", "research-agent")
TEAM_IDS = ("research-team",)
WORKFLOW_IDS = ("research-workflow",)
SECRET_ENV = "AGENTOS_TEST_SECRET"  # not JWT_VERIFICATION_KEY: Agno reads that one by itself


def build_agentos(mode: str, db_file: str, os_id: str) -> Any:
    """The AgentOS object (agno imported lazily so that importing this module stays cheap)."""
    from agno.agent import Agent
    from agno.db.sqlite import SqliteDb
    from agno.models.openai import OpenAIChat
    from agno.os import AgentOS
    from agno.os.config import AuthorizationConfig
    from agno.team import Team
    from agno.workflow import Workflow
    from agno.workflow.step import Step

    db = SqliteDb(db_file=db_file)

    def agent(agent_id: str) -> Agent:
        return Agent(id=agent_id, name=agent_id, model=OpenAIChat(id="gpt-4o-mini"), db=db)

    team = Team(
        id=TEAM_IDS[0],
        name="research team",
        members=[agent("team-member")],
        model=OpenAIChat(id="gpt-4o-mini"),
    )
    workflow = Workflow(
        id=WORKFLOW_IDS[0], name="research workflow", steps=[Step(name="s", agent=agent("wf-step"))]
    )
    auth: dict[str, Any] = {}
    if mode in ("rbac", "rbac-isolated"):
        config = AuthorizationConfig(
            verification_keys=[os.environ[SECRET_ENV]],
            algorithm="HS256",
            verify_audience=True,
            user_isolation=mode == "rbac-isolated",
        )
        auth = {"authorization": True, "authorization_config": config}
    return AgentOS(
        id=os_id,
        db=db,
        agents=[agent(a) for a in AGENT_IDS],
        teams=[team],
        workflows=[workflow],
        telemetry=False,
        mcp=True,  # AgentOS's MCP server at /mcp (needs fastmcp, in the agentos extra)
        **auth,
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=("rbac", "rbac-isolated", "open"), required=True)
    parser.add_argument("--db", required=True)
    parser.add_argument("--fd", type=int, required=True)
    parser.add_argument("--os-id", required=True)
    args = parser.parse_args()
    os.environ.setdefault("OPENAI_API_KEY", "sk-dummy-never-used")
    os.environ["AGNO_TELEMETRY"] = "false"

    import uvicorn

    app = build_agentos(args.mode, args.db, args.os_id).get_app()
    sock = socket.socket(fileno=args.fd)  # family and type are read from the inherited descriptor
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
