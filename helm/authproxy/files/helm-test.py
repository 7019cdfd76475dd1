"""`helm test`: the release is ready, and it refuses a request that carries no token.

Run by templates/tests/test-connection.yaml as `python3 -c` in the authproxy image (python3, no curl),
so it uses the standard library only. Everything it checks comes from the Pod's env:
  ADMIN_URL  base URL of the admin port: GET /readyz must answer 200
  TARGET     "METHOD URL" of a protected route, sent without a token
  EXPECT     401 (the denial), or tls-refused: a TLS listener that requires client certificates must
             refuse this client, which has none
Exit 0 when both hold; 1 with the reasons otherwise.
"""

import http.client
import os
import socket
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request


def unverified() -> ssl.SSLContext:
    # The check is that the request is refused, not who the server is: the test pod holds no CA for
    # the proxied port's certificate.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def status(method: str, url: str) -> str:
    """The answer's status code, or the connection error when none came back."""
    context = unverified() if url.startswith("https:") else None
    request = urllib.request.Request(url, method=method)  # noqa: S310 - the release's own Services
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:  # noqa: S310
            return str(response.status)
    except urllib.error.HTTPError as refused:
        return str(refused.code)
    except (urllib.error.URLError, OSError, http.client.HTTPException) as failed:
        return repr(failed)


def client_refused(url: str) -> str:
    """ "tls-refused" when a TLS server turns away a client without a certificate; else what happened."""
    target = urllib.parse.urlsplit(url)
    request = f"GET {target.path or '/'} HTTP/1.1\r\nHost: {target.netloc}\r\nConnection: close\r\n\r\n"
    try:
        with (
            socket.create_connection((target.hostname, target.port or 443), timeout=10) as raw,
            unverified().wrap_socket(raw, server_hostname=target.hostname) as tls,
        ):
            # TLS 1.2 refuses in the handshake; TLS 1.3 after it, so the first read shows it.
            tls.sendall(request.encode())
            first = tls.recv(64)
    except ssl.SSLError as error:
        # A refusal is the server's alert; anything else (a plain-HTTP port) is no TLS listener at all.
        return "tls-refused" if "ALERT" in str(error.reason) else repr(error)
    except ConnectionResetError:
        return "tls-refused"
    except OSError as error:
        return repr(error)
    # A clean close after the handshake is TLS 1.3's refusal when the alert is not read first.
    return "tls-refused" if not first else f"an answer: {first!r}"


def main() -> int:
    failures = []
    admin = os.environ["ADMIN_URL"] + "/readyz"
    ready = status("GET", admin)
    print(f"GET {admin} -> {ready}")
    if ready != "200":
        failures.append(f"/readyz answered {ready}, not 200")
    method, url = os.environ["TARGET"].split(" ", 1)
    expected = os.environ["EXPECT"]
    denied = client_refused(url) if expected == "tls-refused" else status(method, url)
    print(f"{method} {url} without a token -> {denied}")
    if denied != expected:
        failures.append(f"expected {expected} without a token, got {denied}")
    for failure in failures:
        print("FAIL:", failure)
    return 1 if failures else 0


sys.exit(main())
