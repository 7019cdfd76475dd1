"""Keys from an identity provider: a JWKS URL or OIDC discovery, refreshed in the background.

We own the key lifecycle instead of using PyJWKClient (STYLE.md §1.5): fetches are async, a failed or
empty fetch keeps the last good set, and refreshes triggered by unknown `kid`s are rate-limited and
shared, so an attacker sending random kids cannot make us hammer the IdP. Their budget is their own
(`unknown_kid_refresh_interval`, one per 10 s by default): a scheduled fetch, the startup one included,
never holds back the first token signed with a key the IdP has just rotated in.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from typing import Any

import aiohttp
import structlog
from yarl import URL

from authproxy.auth.keys import KeyEntry, entries_from_jwks
from authproxy.config.model import JwksUrl, OidcIssuer
from authproxy.config.values import check_fetch_scheme

__all__ = ["DISCOVERY_PATH", "JwksSource", "check_remote_url"]

DISCOVERY_PATH = "/.well-known/openid-configuration"
_MAX_REFRESH_INTERVAL = 24 * 3600.0
_MAX_REDIRECTS = 3
_REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


class _FetchFailed(Exception):
    """One fetch could not produce a usable key set; the reason is logged, the last good set stays."""


def check_remote_url(url: str | URL, *, allow_insecure_http: bool = False) -> URL:
    """The URL parsed; ValueError unless https, or http to a loopback host (or explicitly allowed)."""
    parsed = url if isinstance(url, URL) else URL(url)
    if not parsed.is_absolute() or not parsed.host:
        raise ValueError(f"{_shown(parsed)}: not an absolute URL with a host")
    try:
        check_fetch_scheme(parsed.scheme, parsed.host, allow_insecure_http=allow_insecure_http)
    except ValueError as refused:
        raise ValueError(f"{_shown(parsed)}: key URLs {refused}") from None
    return parsed


def _first_url(source: JwksUrl | OidcIssuer) -> URL:
    """The JWKS URL, or the issuer's discovery document URL (appended to the issuer's own path)."""
    if isinstance(source, JwksUrl):
        return check_remote_url(source.url, allow_insecure_http=source.allow_insecure_http)
    issuer = check_remote_url(source.issuer, allow_insecure_http=source.allow_insecure_http)
    return URL(str(issuer).rstrip("/") + DISCOVERY_PATH)


def _shown(url: URL) -> str:
    """A URL fit for logs and error messages: no userinfo, no query (either may carry a secret)."""
    return str((url.with_user(None) if url.is_absolute() else url).with_query(None))


def _max_age(cache_control: str | None) -> float | None:
    """Seconds from Cache-Control; no-store/no-cache count as 0; None when the header says nothing."""
    if not cache_control:
        return None
    for directive in cache_control.lower().split(","):
        name, _, value = directive.strip().partition("=")
        if name in ("no-store", "no-cache"):
            return 0.0
        if name == "max-age":
            try:
                return max(0.0, float(int(value.strip().strip('"'))))
            except ValueError:
                return None
    return None


async def _read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    if response.content_length is not None and response.content_length > limit:
        raise _FetchFailed(f"response of {response.content_length} bytes exceeds the {limit}-byte cap")
    body = bytearray()
    async for chunk in response.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            raise _FetchFailed(f"response exceeds the {limit}-byte cap")
    return bytes(body)


def _json_object(body: bytes, url: URL) -> dict[str, Any]:
    try:
        document = json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are both ValueErrors
        raise _FetchFailed(f"{_shown(url)}: response is not JSON") from exc
    if not isinstance(document, dict):
        raise _FetchFailed(f"{_shown(url)}: response is not a JSON object")
    return document


class JwksSource:
    """A remote key set (implements keys.RemoteKeys): last good set, back-off, rate-limited refresh."""

    def __init__(
        self,
        source: JwksUrl | OidcIssuer,
        algorithms: frozenset[str],
        *,
        session_factory: Callable[[], aiohttp.ClientSession] | None = None,
        clock: Callable[[], float] = time.monotonic,
        min_refresh_interval: float = 30.0,
        fetch_timeout: float = 10.0,
        max_body_bytes: int = 1024 * 1024,
        backoff_initial: float = 1.0,
        backoff_max: float = 300.0,
    ) -> None:
        if min_refresh_interval <= 0 or backoff_initial <= 0:
            raise ValueError("min_refresh_interval and backoff_initial must be positive")
        self._source, self._algorithms, self._url = source, algorithms, _first_url(source)
        self._issuer = source.issuer if isinstance(source, OidcIssuer) else None
        self._session_factory = session_factory or self._default_session
        self._clock = clock
        self._min_interval = min_refresh_interval
        self._timeout = aiohttp.ClientTimeout(total=fetch_timeout)
        self._max_body = max_body_bytes
        self._backoff = (backoff_initial, backoff_max)
        self._entries: tuple[KeyEntry, ...] = ()
        self._fingerprint: str | None = None
        self._generation = 0
        self._ready = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._inflight: asyncio.Task[bool] | None = None
        self._unknown_kid_interval = source.unknown_kid_refresh_interval
        self._last_unknown_kid_fetch_at: float | None = None
        # Read by metrics and /readyz. `refreshes` counts successful fetches, changed or not.
        self.refreshes = 0
        self.fetch_failures = 0
        self.last_success: float | None = None
        self.last_error: str | None = None
        self.next_refresh_delay: float | None = None  # what the background loop waits next

    @property
    def entries(self) -> tuple[KeyEntry, ...]:
        return self._entries

    @property
    def generation(self) -> int:
        return self._generation

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    @property
    def url(self) -> str:
        """The URL fetched first (JWKS or OIDC discovery), without userinfo or query: a safe label."""
        return _shown(self._url)

    def _default_session(self) -> aiohttp.ClientSession:
        return aiohttp.ClientSession(
            timeout=self._timeout,
            headers={"Accept": "application/json, application/jwk-set+json", "User-Agent": "authproxy"},
        )

    async def start(self) -> None:
        """Launch the background refresher and return at once; `wait_ready` waits for the first set."""
        if self._runner is not None:
            return
        self._session = self._session_factory()
        self._runner = asyncio.create_task(self._run(), name=f"jwks-refresh {self.url}")
        self._runner.add_done_callback(self._runner_stopped)

    def _runner_stopped(self, task: asyncio.Task[None]) -> None:
        # Only a bug ends the loop early; say so loudly, as refreshes stop from here on.
        if not task.cancelled() and (exc := task.exception()) is not None:
            structlog.get_logger("authproxy.jwks").error(
                "jwks_refresher_stopped", url=self.url, error=repr(exc)
            )

    async def close(self) -> None:
        tasks = [task for task in (self._runner, self._inflight) if task is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = self._inflight = None
        if self._session is not None:
            await self._session.close()
            self._session = None

    # A bool, not an exception, is what startup and /readyz want, hence a timeout argument.
    async def wait_ready(self, timeout: float) -> bool:  # noqa: ASYNC109
        """True once a key set is loaded; False if none arrived within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout):
                await self._ready.wait()
        except TimeoutError:
            pass
        return self.ready

    async def refresh_for_unknown_kid(self, kid: str | None) -> bool:
        """Join the fetch in flight, or refetch now unless an unknown-kid refetch started within
        `unknown_kid_refresh_interval`; concurrent callers share one fetch. True if the key set changed
        (or already holds `kid`), so a retry may succeed."""
        before = self._generation
        if self._inflight is None:
            if self._session is None:
                return False
            now, last = self._clock(), self._last_unknown_kid_fetch_at
            if last is not None and now - last < self._unknown_kid_interval:
                return self._knows(kid)
            self._last_unknown_kid_fetch_at = now
        await self._refresh()
        return self._generation != before or self._knows(kid)

    def _knows(self, kid: str | None) -> bool:
        return kid is not None and any(entry.kid == kid for entry in self._entries)

    async def _run(self) -> None:
        failures = 0
        while True:
            if await self._refresh():
                failures = 0
            else:
                failures += 1
                self.next_refresh_delay = self._backoff_delay(failures)
            delay = self.next_refresh_delay
            await asyncio.sleep(self._min_interval if delay is None else delay)

    def _refresh_delay(self, max_age: float | None) -> float:
        wanted = self._source.refresh_interval if max_age is None else max_age
        return min(max(wanted, self._min_interval), _MAX_REFRESH_INTERVAL)

    def _backoff_delay(self, failures: int) -> float:
        initial, cap = self._backoff
        ceiling = min(cap, initial * 2.0 ** min(failures - 1, 32))
        # Jitter spreads the retries of many proxies after a shared IdP outage; not security-relevant.
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311

    async def _refresh(self) -> bool:
        """Join the fetch in flight or start one; shielded so one cancelled waiter cannot cancel it."""
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._fetch_and_apply())
        return await asyncio.shield(self._inflight)

    async def _fetch_and_apply(self) -> bool:
        """One fetch; True when a usable set arrived (changed or not)."""
        try:
            document, max_age = await self._fetch()
            entries = entries_from_jwks(document, self._algorithms, issuer=self._issuer)
            if not entries:
                raise _FetchFailed("key set holds no usable signing key")
        except (_FetchFailed, aiohttp.ClientError, OSError, ValueError) as exc:  # TimeoutError is an OSError
            self._record_failure(exc)
            return False
        finally:
            self._inflight = None
        self._apply(entries, json.dumps(document.get("keys"), sort_keys=True))
        self.next_refresh_delay = self._refresh_delay(max_age)
        return True

    def _record_failure(self, exc: BaseException) -> None:
        self.fetch_failures += 1
        self.last_error = str(exc) or type(exc).__name__
        # Looked up per event (failures and rotations are rare) so a later structlog.configure applies.
        structlog.get_logger("authproxy.jwks").warning(
            "jwks_fetch_failed",
            url=self.url,
            error=type(exc).__name__,
            reason=self.last_error,
            failures=self.fetch_failures,
            keeping_keys=len(self._entries),
        )

    def _apply(self, entries: tuple[KeyEntry, ...], fingerprint: str) -> None:
        self.refreshes += 1
        self.last_success = self._clock()
        self.last_error = None
        if fingerprint != self._fingerprint:
            self._entries, self._fingerprint = entries, fingerprint
            self._generation += 1
            structlog.get_logger("authproxy.jwks").info(
                "jwks_keys_loaded", url=self.url, keys=len(entries), generation=self._generation
            )
        self._ready.set()

    async def _fetch(self) -> tuple[dict[str, Any], float | None]:
        """The JWKS document and its max-age; for OIDC, discovery first, then the `jwks_uri` it names."""
        if self._issuer is None:
            return await self._get_json(self._url)
        discovery, _ = await self._get_json(self._url)
        named = discovery.get("issuer")
        if named != self._issuer:
            # Bounded: the document is the IdP's (or an impostor's) text, not ours.
            raise _FetchFailed(f"discovery names issuer {str(named)[:200]!r}, expected {self._issuer!r}")
        jwks_uri = discovery.get("jwks_uri")
        if not isinstance(jwks_uri, str):
            raise _FetchFailed("discovery document has no jwks_uri")
        try:
            url = check_remote_url(jwks_uri, allow_insecure_http=self._source.allow_insecure_http)
        except ValueError as exc:
            raise _FetchFailed(f"discovered jwks_uri refused: {exc}") from exc
        return await self._get_json(url)

    async def _get_json(self, url: URL) -> tuple[dict[str, Any], float | None]:
        session = self._session
        if session is None:
            raise _FetchFailed("source is closed")
        for _ in range(_MAX_REDIRECTS + 1):
            async with session.get(url, allow_redirects=False, timeout=self._timeout) as response:
                if response.status in _REDIRECT_STATUSES:
                    url = self._redirect_target(url, response.headers.get("Location"))
                    continue
                if response.status != 200:
                    raise _FetchFailed(f"{_shown(url)}: HTTP {response.status}")
                body = await _read_capped(response, self._max_body)
                max_age = _max_age(response.headers.get("Cache-Control"))
            return _json_object(body, url), max_age
        raise _FetchFailed(f"{_shown(url)}: more than {_MAX_REDIRECTS} redirects")

    def _redirect_target(self, current: URL, location: str | None) -> URL:
        if not location:
            raise _FetchFailed(f"{_shown(current)}: redirect without Location")
        try:
            target = check_remote_url(
                current.join(URL(location)), allow_insecure_http=self._source.allow_insecure_http
            )
        except ValueError as exc:
            raise _FetchFailed(f"redirect refused: {exc}") from exc
        if current.scheme == "https" and target.scheme != "https":
            raise _FetchFailed(f"redirect from https to {target.scheme} refused")
        return target
