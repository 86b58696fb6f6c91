"""A lean Stripe API reader: raw pages over one keep-alive connection, parsed with orjson.

stripe-python builds a StripeObject per object and reads about 2,300 charges/s; the same
pages read here run an order of magnitude faster (see the project's benchmarks). Retries
follow Stripe's rules: connection errors, 409, 429 and 5xx are retried with exponential
backoff and jitter unless the answer carries `Stripe-Should-Retry: false`; any other 4xx is
raised, never swallowed. The API key never appears in a message.

The pages are fetched with the standard library's `http.client` (gzip asked for, TLS
verified as httpx verifies it): httpx's request and cookie handling cost about 2 ms of CPU
a page, a tenth of a first load. A list's next page is asked for before the current one is
handed on, so that the server makes it while the load works (`iter_pages`). Through a
proxy from the environment (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, unless `NO_PROXY`
names the host) and with a test's transport, the reader uses httpx.
"""

from __future__ import annotations

import http.client
import logging
import random
import time
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable, Iterator, Mapping
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, NamedTuple

import httpx
import orjson

if TYPE_CHECKING:
    from ingestion.settings import Secret

log = logging.getLogger(__name__)

_RETRY_STATUSES = {409, 429, 500, 502, 503, 504}
# What a request over `http.client` raises when the connection fails (refused, reset, timed
# out, TLS, a truncated or unreadable answer): retried like httpx's transport errors.
_CONNECTION_ERRORS = (OSError, http.client.HTTPException, zlib.error)
# A kept-alive connection the server has since closed: opened again at once, once.
_STALE_CONNECTION = (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError)


class StripeApiError(RuntimeError):
    """Stripe answered with an error, or could not be reached."""

    def __init__(self, message: str, *, status: int | None = None, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code


class StripeAuthError(StripeApiError):
    """The key was rejected (401) or lacks a permission (403)."""


class StripeUnreachableError(StripeApiError):
    """No answer from the server after every retry."""


class _Answer(NamedTuple):
    status: int
    headers: Mapping[str, str]  # looked up by name in any case
    content: bytes


def _query(params: Mapping[str, Any]) -> str:
    """A query string as httpx writes one: lists repeat their key, booleans are lower case."""
    pairs = []
    for key, value in params.items():
        for item in value if isinstance(value, list | tuple) else [value]:
            text = "" if item is None else (str(item).lower() if isinstance(item, bool) else item)
            pairs.append((key, text))
    return urllib.parse.urlencode(pairs)


def _proxied(url: urllib.parse.SplitResult) -> bool:
    """Whether the environment sends requests to this server through a proxy."""
    proxies = urllib.request.getproxies()
    if url.scheme not in proxies and "all" not in proxies:
        return False
    return not urllib.request.proxy_bypass(url.netloc)


class _Connection:
    """GETs over one kept-alive `http.client` connection, opened again when it breaks.

    A GET can also be sent ahead (`send_ahead`) and its answer read later: the server makes
    the next page while the caller works on this one. One answer at most is outstanding; a
    GET made in between drops it (the connection is opened again) and the one sent ahead is
    asked again when it is read.
    """

    def __init__(self, url: urllib.parse.SplitResult, headers: dict[str, str], timeout: float):
        self._url = url
        self._prefix = url.path.rstrip("/")
        self._headers = {**headers, "Accept-Encoding": "gzip"}
        self._timeout = timeout
        self._connection: http.client.HTTPConnection | None = None
        # The GET sent ahead whose answer has not been read (see `send_ahead`).
        self._pending: object | None = None

    def _open(self) -> http.client.HTTPConnection:
        host, port = self._url.hostname or "", self._url.port
        if self._url.scheme == "https":
            # httpx's own TLS context: certifi's roots, or SSL_CERT_FILE / SSL_CERT_DIR.
            return http.client.HTTPSConnection(
                host, port, timeout=self._timeout, context=httpx.create_ssl_context()
            )
        return http.client.HTTPConnection(host, port, timeout=self._timeout)

    def _target(self, path: str, params: Mapping[str, Any] | None) -> str:
        return self._prefix + path + (f"?{_query(params)}" if params else "")

    def get(self, path: str, params: Mapping[str, Any] | None) -> _Answer:
        target = self._target(path, params)
        self.discard_pending()
        reused = self._connection is not None
        try:
            return self._exchange(target)
        except _STALE_CONNECTION:
            if not reused:
                raise
            return self._exchange(target)

    def send_ahead(
        self, path: str, params: Mapping[str, Any] | None
    ) -> Callable[[], _Answer] | None:
        """Sends a GET now and returns what reads its answer (or asks again, if the
        connection served another GET since or the server had closed it); None if it could
        not be sent, and the GET is then made when its answer is wanted."""
        target = self._target(path, params)
        self.discard_pending()
        reused = self._connection is not None
        try:
            if self._connection is None:
                self._connection = self._open()
            self._connection.request("GET", target, headers=self._headers)
        except _CONNECTION_ERRORS:
            self.close()
            return None
        token = self._pending = object()

        def answer() -> _Answer:
            if self._pending is not token:
                return self.get(path, params)
            self._pending = None
            try:
                return self._read()
            except _STALE_CONNECTION:
                if not reused:
                    raise
                return self.get(path, params)  # on a new connection, as `get` does

        return answer

    def discard_pending(self) -> None:
        """Drops an answer sent ahead that will not be read: its bytes would come first."""
        if self._pending is not None:
            self.close()

    def _exchange(self, target: str) -> _Answer:
        if self._connection is None:
            self._connection = self._open()
        try:
            self._connection.request("GET", target, headers=self._headers)
        except BaseException:
            self.close()
            raise
        return self._read()

    def _read(self) -> _Answer:
        assert self._connection is not None
        try:
            response = self._connection.getresponse()
            content = response.read()
            if response.getheader("Content-Encoding") == "gzip":
                content = zlib.decompress(content, 16 + zlib.MAX_WBITS)
        except BaseException:
            self.close()
            raise
        if response.will_close:
            self.close()
        return _Answer(response.status, response.headers, content)

    def close(self) -> None:
        self._pending = None
        if self._connection is not None:
            self._connection.close()
            self._connection = None


class StripeApi:
    """Reads one Stripe account (or, with `stripe_account`, one connected account)."""

    def __init__(
        self,
        api_key: Secret,
        base_url: str,
        *,
        stripe_account: str | None = None,
        account_id: str | None = None,
        max_retries: int = 5,
        timeout: float = 30.0,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        headers = {
            "Authorization": f"Bearer {api_key.reveal()}",
            "User-Agent": "stripe-elt",
            "Stripe-Version": "2025-09-30.clover",
        }
        if stripe_account:
            headers["Stripe-Account"] = stripe_account
        url = urllib.parse.urlsplit(self.base_url)
        self._connection: _Connection | None = None
        self._client: httpx.Client | None = None
        if transport is None and url.scheme in ("http", "https") and not _proxied(url):
            self._connection = _Connection(url, headers, timeout)
            self._connection_errors: tuple[type[BaseException], ...] = _CONNECTION_ERRORS
        else:
            self._client = httpx.Client(
                base_url=self.base_url,
                headers=headers,
                timeout=timeout,
                follow_redirects=False,
                transport=transport,
            )
            self._connection_errors = (httpx.TransportError,)
        self._account: dict[str, Any] | None = None
        self.stripe_account = stripe_account
        self.configured_account_id = account_id
        self.requests_made = 0
        # The API's clock (its `Date` header): at the first answer, and at the latest.
        self.first_server_time: int | None = None
        self.server_time: int | None = None

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._client is not None:
            self._client.close()

    def __enter__(self) -> StripeApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ---------------------------------------------------------------------------

    def get_json(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        sent: Callable[[], _Answer] | None = None,
    ) -> Any:
        """A GET's body parsed; a body that is not JSON is a clear error, not a parser's."""
        body = self.get(path, params, sent=sent)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError as err:
            raise StripeApiError(
                f"GET {path} on {self.base_url} answered malformed JSON ({err}); nothing from "
                "this run was written."
            ) from None

    def get(
        self,
        path: str,
        params: dict[str, Any] | None = None,
        *,
        sent: Callable[[], _Answer] | None = None,
    ) -> bytes:
        """The raw body of a GET, retried as Stripe advises; `sent` reads the answer to the
        GET sent ahead (see `_send_ahead`), which counts as the first attempt."""
        attempt = 0
        while True:
            attempt += 1
            try:
                if sent is not None and attempt == 1:
                    response = sent()
                else:
                    self.requests_made += 1
                    response = self._send(path, params)
            except self._connection_errors as err:
                if attempt > self.max_retries:
                    raise StripeUnreachableError(
                        f"Cannot reach the Stripe API at {self.base_url} "
                        f"({type(err).__name__}) after {attempt} attempts; check "
                        "STRIPE_API_BASE and the network."
                    ) from None
                self._sleep(attempt, None)
                continue
            if response.status < 400:
                self._clock(response.headers.get("Date"))
                return response.content
            should_retry = response.headers.get("Stripe-Should-Retry")
            retryable = should_retry == "true" or (
                response.status in _RETRY_STATUSES and should_retry != "false"
            )
            if retryable and attempt <= self.max_retries:
                self._sleep(attempt, response.headers.get("Retry-After"))
                continue
            raise self._error(path, response)

    def _send(self, path: str, params: dict[str, Any] | None) -> _Answer:
        """One GET, answered or raising one of `self._connection_errors`."""
        if self._connection is not None:
            return self._connection.get(path, params)
        assert self._client is not None
        response = self._client.get(path, params=params)
        return _Answer(response.status_code, response.headers, response.content)

    def _send_ahead(self, path: str, params: dict[str, Any]) -> Callable[[], _Answer] | None:
        """The GET sent now, read later (see `_Connection.send_ahead`); over httpx, None."""
        if self._connection is None:
            return None
        self.requests_made += 1
        return self._connection.send_ahead(path, params)

    def _clock(self, date: str | None) -> None:
        try:
            when = int(parsedate_to_datetime(date).timestamp()) if date else int(time.time())
        except (TypeError, ValueError):
            when = int(time.time())
        self.server_time = when
        if self.first_server_time is None:
            self.first_server_time = when

    def now(self) -> int:
        """The API's time (its clock, not this machine's), asking it if nothing was read yet."""
        if self.server_time is None:
            self.account()
            if self.server_time is None:
                self.get("/v1/events", {"limit": 1})
        return self.server_time or int(time.time())

    def _sleep(self, attempt: int, retry_after: str | None) -> None:
        delay = min(self.backoff_cap, self.backoff_base * 2 ** (attempt - 1))
        delay = delay / 2 + random.uniform(0, delay / 2)
        if retry_after and retry_after.replace(".", "", 1).isdigit():
            delay = max(delay, float(retry_after))
        log.info("Stripe API: retrying in %.1fs (attempt %d)", delay, attempt + 1)
        time.sleep(delay)

    def _error(self, path: str, response: _Answer) -> StripeApiError:
        status = response.status
        try:
            error = orjson.loads(response.content).get("error", {})
        except (orjson.JSONDecodeError, AttributeError):
            error = {}
        code = error.get("code")
        if status == 401:
            return StripeAuthError(
                f"Stripe rejected the API key (401 from {self.base_url}): set STRIPE_API_KEY "
                "to a valid secret or restricted key for this account.",
                status=status,
                code=code,
            )
        if status == 403 and code == "account_invalid":
            return StripeAuthError(
                f"The platform key does not have access to connected account "
                f"{self.stripe_account} (403 {code or ''}): the account was disconnected or "
                "does not exist; remove it from STRIPE_CONNECTED_ACCOUNTS.",
                status=status,
                code=code,
            )
        if status == 403:
            return StripeAuthError(
                f"The API key may not read {path} (403): give the restricted key read "
                "access to this resource.",
                status=status,
                code=code,
            )
        text = response.content[:200].decode("utf-8", "replace")
        message = str(error.get("message") or text).replace("\n", " ")
        return StripeApiError(
            f"Stripe API error {status} on GET {path}: {message}", status=status, code=code
        )

    # -- the account and its lists ----------------------------------------------------------

    def account(self) -> dict[str, Any]:
        """The account this key reads (checks the key before anything else is fetched).

        A Stripe-compatible server without `/v1/account` (localstripe, say) needs the
        account id from configuration; the key is then checked with a one-object list.
        """
        if self._account is None:
            # With `Stripe-Account`, /v1/account answers the connected account.
            path = "/v1/account"
            try:
                self._account = self.get_json(path)
            except StripeApiError as err:
                if err.status != 404:
                    raise
                if not self.configured_account_id:
                    raise StripeApiError(
                        f"{self.base_url} has no {path} endpoint to name the account: set "
                        "STRIPE_ACCOUNT_ID to the account id the rows should carry.",
                        status=404,
                    ) from None
                self.get("/v1/customers", {"limit": 1})
                self._account = {"id": self.configured_account_id, "object": "account"}
            if self.configured_account_id and self._account["id"] != self.configured_account_id:
                raise StripeApiError(
                    f"STRIPE_ACCOUNT_ID is {self.configured_account_id} but the key reads "
                    f"account {self._account['id']}."
                )
        return self._account

    @property
    def account_id(self) -> str:
        return self.account()["id"]

    def iter_pages(
        self, list_name: str, params: dict[str, Any] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """Every page of `/v1/<list_name>`, newest first, to the end of the list. Each next
        page is asked for before this one is yielded, and read when the caller is done with
        this one: the server makes it meanwhile (a sandbox on the same machine, or Stripe
        across the network)."""
        query = {"limit": 100, **(params or {})}
        path = f"/v1/{list_name}"
        sent: Callable[[], _Answer] | None = None
        try:
            while True:
                page = self.get_json(path, query, sent=sent)
                sent = None
                data = page.get("data")
                if page.get("object") != "list" or not isinstance(data, list):
                    raise StripeApiError(f"GET {path} did not answer a list object")
                more = bool(page.get("has_more")) and bool(data)
                if more:
                    query = {**query, "starting_after": data[-1]["id"]}
                    sent = self._send_ahead(path, query)
                if data:
                    yield data
                if not more:
                    return
        finally:
            if sent is not None and self._connection is not None:
                # Left before the next page was read (an error, or the caller stopped).
                self._connection.discard_pending()
