"""One HTTP POST with urllib3 to the addresses a :class:`~webhooks.targets.Target` was checked for.

The connection goes to the checked IP address itself, with the URL's host name in the ``Host`` header and, for
https, in the TLS SNI and the certificate check: the name is never resolved again, so a DNS rebind between the check
and the connection cannot reach an internal address. Redirects are not followed, nothing is retried here (the
queue retries the job), and only the first ``MAX_BODY_BYTES`` of the answer are read.
"""

from __future__ import annotations

from dataclasses import dataclass

import urllib3
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .conf import Timeout
from .targets import Target

MAX_BODY_BYTES = 1024


@dataclass(frozen=True)
class Response:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes  # at most MAX_BODY_BYTES


def post(target: Target, body: bytes, headers: dict[str, str], timeout: Timeout) -> Response:
    """POST ``body`` to ``target``: to each of its addresses in turn until one accepts the connection.

    Raises:
        urllib3.exceptions.HTTPError: no address could be connected to (the last error), or the exchange failed
            (read timeout, connection reset, TLS error...).
    """
    limits = urllib3.Timeout(connect=timeout.connect, read=timeout.read, total=timeout.connect + timeout.read)
    error: Exception | None = None
    for address in target.addresses:
        pool = _pool(target, address, limits)
        try:
            response = pool.urlopen("POST", target.request_uri, body=body,
                                    headers={**headers, "Host": target.host_header}, redirect=False, retries=False,
                                    preload_content=False, assert_same_host=False)
            try:
                content = response.read(MAX_BODY_BYTES)
            finally:
                response.close()
            return Response(response.status, {k.lower(): v for k, v in response.headers.items()}, content)
        except (NewConnectionError, ConnectTimeoutError) as e:
            error = e  # nothing was sent: the next address may answer
        finally:
            pool.close()
    assert error is not None, "a resolved target has at least one address"
    raise error


def _pool(target: Target, address: str, limits: urllib3.Timeout) -> urllib3.HTTPConnectionPool:
    if target.scheme == "https":
        return urllib3.HTTPSConnectionPool(address, target.port, timeout=limits, retries=False, maxsize=1,
                                           cert_reqs="CERT_REQUIRED", server_hostname=target.host,
                                           assert_hostname=target.host)
    return urllib3.HTTPConnectionPool(address, target.port, timeout=limits, retries=False, maxsize=1)
