"""The FastAPI upstream users run, on uvicorn; `--agno-public-key` adds Agno's JWTMiddleware in process.

Run as `python -m bench.apps.fastapi_app --port P [--agno-public-key PEM --audience AUD]`.
"""

from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import uvicorn
from fastapi import FastAPI


def build_app(agno_public_key: Path | None, audience: str) -> FastAPI:
    app = FastAPI()

    @app.get("/agents/{agent_id}")
    async def get_agent(agent_id: str) -> dict[str, str]:
        return {"id": agent_id, "name": "bench"}

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    if agno_public_key is not None:
        from agno.os.middleware.jwt import JWTMiddleware

        # RS256 and authorization on: Agno's default scope map requires agents:read for GET /agents/*.
        app.add_middleware(
            JWTMiddleware,
            verification_keys=[agno_public_key.read_text()],
            algorithm="RS256",
            authorization=True,
            verify_audience=True,
            audience=audience,
        )
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--agno-public-key", type=Path)
    parser.add_argument("--audience", default="bench")
    args = parser.parse_args()
    app = build_app(args.agno_public_key, args.audience)
    # uvicorn[standard]'s parser when the harness put it on the path, as `fastapi[standard]` installs it.
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    uvicorn.run(app, host="127.0.0.1", port=args.port, http=http, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
