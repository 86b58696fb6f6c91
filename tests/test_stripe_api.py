"""The Stripe reader retries what Stripe says to retry and raises everything else clearly."""

from __future__ import annotations

import gzip
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import orjson
import pytest

from ingestion.settings import Secret
from ingestion.stripe_api import (
    StripeApi,
    StripeApiError,
    StripeAuthError,
    StripeUnreachableError,
)

KEY = Secret("sk_test_recognisable_secret_9f8e7d")
PAGE = b'{"object":"list","data":[{"id":"ch_1","created":1}],"has_more":false,"url":"/v1/charges"}'


def api_answering(*answers: httpx.Response | Exception) -> tuple[StripeApi, list]:
    calls: list[httpx.Request] = []
    queue = list(answers)

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    api = StripeApi(
        KEY, "http://stripe.test", max_retries=3, backoff_base=0.001,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    return api, calls


def error(status: int, headers: dict | None = None) -> httpx.Response:
    body = {"error": {"type": "api_error", "message": f"status {status}", "code": None}}
    return httpx.Response(status, json=body, headers=headers or {})


def test_5xx_429_and_dropped_connections_are_retried():
    api, calls = api_answering(
        error(500),
        error(429, {"Stripe-Should-Retry": "true"}),
        httpx.RemoteProtocolError("connection dropped"),
        httpx.Response(200, content=PAGE),
    )
    pages = list(api.iter_pages("charges"))
    assert [o["id"] for page in pages for o in page] == ["ch_1"]
    assert len(calls) == 4


def test_stripe_should_retry_false_is_honoured():
    api, calls = api_answering(error(500, {"Stripe-Should-Retry": "false"}))
    with pytest.raises(StripeApiError, match="500"):
        api.get("/v1/charges")
    assert len(calls) == 1


def test_a_4xx_is_never_swallowed_or_retried():
    api, calls = api_answering(error(400))
    with pytest.raises(StripeApiError, match="400"):
        list(api.iter_pages("charges"))
    assert len(calls) == 1


def test_a_bad_key_fails_fast_without_showing_the_key():
    api, calls = api_answering(error(401))
    with pytest.raises(StripeAuthError) as raised:
        api.account()
    assert len(calls) == 1
    assert "STRIPE_API_KEY" in str(raised.value)
    assert KEY.reveal() not in str(raised.value) and KEY.reveal() not in repr(raised.value)


def test_an_unreachable_server_is_a_clear_error_after_the_retries():
    api, calls = api_answering(*[httpx.ConnectError("refused")] * 4)
    with pytest.raises(StripeUnreachableError, match="Cannot reach the Stripe API"):
        api.account()
    assert len(calls) == 4


def test_secrets_hide_in_repr():
    assert KEY.reveal() not in repr(KEY) and KEY.reveal() not in str(KEY)


def test_a_malformed_page_is_a_clear_error():
    api, _ = api_answering(httpx.Response(200, content=b'{"object": "list", "data": [tru'))
    with pytest.raises(StripeApiError, match="malformed JSON"):
        list(api.iter_pages("charges"))


# -- the same rules over the standard library's http.client, against a server on loopback --

DROP = "drop"  # the connection closed without an answer


class StandIn(ThreadingHTTPServer):
    """A Stripe-compatible server on loopback that answers from a queue and records each
    request's target and headers. An answer is `(status, headers, body)`, with
    `"then_close": True` among the headers to close a kept-alive connection without saying
    so (as a server does to an idle one), or DROP."""

    daemon_threads = True

    def __init__(self, *answers):
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.answers = list(answers)
        self.seen: list[tuple[str, dict[str, str]]] = []
        self.url = f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.serve_forever, args=(0.02,), daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.shutdown()
        self.server_close()


class _StandInHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        self.server.seen.append((self.path, {k.lower(): v for k, v in self.headers.items()}))
        answer = self.server.answers.pop(0)
        if answer == DROP:
            self.close_connection = True
            return
        status, headers, body = answer
        headers = dict(headers)
        self.close_connection = bool(headers.pop("then_close", False))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def ok(body: bytes = PAGE, **headers) -> tuple[int, dict, bytes]:
    return 200, headers, body


def failed(status: int, **headers) -> tuple[int, dict, bytes]:
    body = {"error": {"type": "api_error", "message": f"status {status}", "code": None}}
    return status, headers, orjson.dumps(body)


def lean_api(url: str, sleeps: list | None = None) -> StripeApi:
    api = StripeApi(KEY, url, max_retries=3, backoff_base=0.001)
    assert api._connection is not None, "the reader should use http.client here"
    if sleeps is not None:
        api._sleep = lambda attempt, retry_after: sleeps.append(attempt)
    return api


def test_http_client_retries_5xx_429_and_a_dropped_connection():
    answers = [DROP, failed(500), failed(429, **{"Stripe-Should-Retry": "true"}), ok()]
    with StandIn(*answers) as server:
        sleeps: list[int] = []
        pages = list(lean_api(server.url, sleeps).iter_pages("charges"))
    assert [o["id"] for page in pages for o in page] == ["ch_1"]
    assert len(server.seen) == 4 and sleeps == [1, 2, 3]


def test_http_client_raises_4xx_and_should_retry_false_at_once():
    with StandIn(failed(500, **{"Stripe-Should-Retry": "false"}), failed(400)) as server:
        api = lean_api(server.url)
        with pytest.raises(StripeApiError, match="500"):
            api.get("/v1/charges")
        with pytest.raises(StripeApiError, match="error 400 on GET /v1/charges: status 400"):
            api.get("/v1/charges")
    assert len(server.seen) == 2


def test_http_client_a_bad_key_fails_fast_without_showing_the_key():
    with StandIn(failed(401)) as server, pytest.raises(StripeAuthError) as raised:
        lean_api(server.url).account()
    assert "STRIPE_API_KEY" in str(raised.value)
    assert KEY.reveal() not in str(raised.value) and KEY.reveal() not in repr(raised.value)
    assert server.seen[0][1]["authorization"] == f"Bearer {KEY.reveal()}"


def test_http_client_an_unreachable_server_is_a_clear_error_after_the_retries(free_port):
    sleeps: list[int] = []
    with pytest.raises(StripeUnreachableError, match="Cannot reach the Stripe API") as raised:
        lean_api(f"http://127.0.0.1:{free_port}", sleeps).account()
    assert "after 4 attempts" in str(raised.value) and sleeps == [1, 2, 3]


def test_http_client_asks_for_gzip_and_reads_it():
    with StandIn(ok(gzip.compress(PAGE), **{"Content-Encoding": "gzip"})) as server:
        pages = list(lean_api(server.url).iter_pages("charges"))
    assert pages == [[{"id": "ch_1", "created": 1}]]
    assert server.seen[0][1]["accept-encoding"] == "gzip"


def test_a_kept_alive_connection_the_server_closed_is_opened_again_without_waiting():
    first = b'{"object":"list","data":[{"id":"ch_2","created":2}],"has_more":true}'
    with StandIn(ok(first, then_close=True), ok()) as server:
        sleeps: list[int] = []
        api = lean_api(server.url, sleeps)
        pages = list(api.iter_pages("charges"))
    assert [o["id"] for page in pages for o in page] == ["ch_2", "ch_1"]
    assert sleeps == [] and len(server.seen) == 2


def test_http_client_writes_the_query_as_httpx_does_under_the_base_path():
    params = {
        "limit": 100, "status": "all", "expand[]": ["data.discounts", "data.customer"],
        "created[gte]": 1_700_000_000, "starting_after": "ch_1 x/y", "include": True,
    }  # fmt: skip
    with StandIn(ok()) as server:
        lean_api(server.url + "/stripe/").get("/v1/subscriptions", params)
    assert server.seen[0][0] == f"/stripe/v1/subscriptions?{httpx.QueryParams(params)}"


def test_a_proxy_from_the_environment_is_used_unless_no_proxy_names_the_host(
    monkeypatch, free_port
):
    with StandIn(ok(), ok()) as proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)
        api = StripeApi(KEY, "http://stripe.test", max_retries=0)
        assert list(api.iter_pages("charges")) == [[{"id": "ch_1", "created": 1}]]
        assert proxy.seen[0][0] == "http://stripe.test/v1/charges?limit=100"
        # Not through a proxy that is not there when NO_PROXY names the host.
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_port}")
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        assert list(StripeApi(KEY, proxy.url, max_retries=0).iter_pages("charges"))
    assert len(proxy.seen) == 2
