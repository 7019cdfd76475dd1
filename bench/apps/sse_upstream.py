"""An upstream that answers every request with a Server-Sent Events stream: one event per interval.

Run as `python -m bench.apps.sse_upstream --port P [--interval 1]`; GET /healthz answers 200 at once.
"""

from __future__ import annotations

import argparse
import asyncio

from aiohttp import web


def build_app(interval: float) -> web.Application:
    async def stream(request: web.Request) -> web.StreamResponse:
        if request.path == "/healthz":
            return web.json_response({"status": "ok"})
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        seq = 0
        try:
            while True:  # until the client goes away
                await response.write(f'id: {seq}\nevent: tick\ndata: {{"seq": {seq}}}\n\n'.encode())
                seq += 1
                await asyncio.sleep(interval)
        except ConnectionResetError:
            return response

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", stream)
    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--interval", type=float, default=1.0)
    args = parser.parse_args()
    web.run_app(build_app(args.interval), host="127.0.0.1", port=args.port, print=None)


if __name__ == "__main__":
    main()
