"""The Stripe reader retries what Stripe says to retry and raises everything else clearly."""

from __future__ import annotations

import gzip
import threading
import time
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
    so (as a server does to an idle one), or DROP. With `routes` (a target's answer), the
    answer is the target's, whatever the order the requests come in."""

    daemon_threads = True

    def __init__(self, *answers, routes: dict[str, tuple[int, dict, bytes]] | None = None):
        super().__init__(("127.0.0.1", 0), _StandInHandler)
        self.answers = list(answers)
        self.routes = routes or {}
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
        answer = self.server.routes.get(self.path) or self.server.answers.pop(0)
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


def _page(ids: list[str], has_more: bool) -> bytes:
    data = [{"id": i, "created": n} for n, i in enumerate(ids)]
    return orjson.dumps({"object": "list", "data": data, "has_more": has_more})


def test_the_next_page_is_asked_for_before_the_caller_is_done_with_this_one():
    with StandIn(ok(_page(["ch_3", "ch_2"], True)), ok(_page(["ch_1"], False))) as server:
        pages = lean_api(server.url).iter_pages("charges")
        assert [o["id"] for o in next(pages)] == ["ch_3", "ch_2"]
        # While the caller works on the first page, the server is already making the next.
        deadline = time.monotonic() + 5
        while len(server.seen) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert server.seen[1][0] == "/v1/charges?limit=100&starting_after=ch_2"
        assert [o["id"] for o in next(pages)] == ["ch_1"]
        assert next(pages, None) is None
    assert len(server.seen) == 2


def test_a_page_asked_for_ahead_is_retried_and_checked_like_any_other():
    answers = [ok(_page(["ch_2"], True)), failed(503), ok(_page(["ch_1"], False))]
    with StandIn(*answers) as server:
        sleeps: list[int] = []
        pages = list(lean_api(server.url, sleeps).iter_pages("charges"))
    assert [o["id"] for page in pages for o in page] == ["ch_2", "ch_1"]
    assert sleeps == [1] and len(server.seen) == 3
    for then, raised in [
        ([failed(400)], "error 400 on GET /v1/charges"),
        ([failed(401)], "Stripe rejected the API key"),
        ([ok(b'{"object": "list", "da')], "malformed JSON"),
        ([DROP] * 6, "Cannot reach the Stripe API .* after 4 attempts"),  # the server is gone
    ]:
        with (
            StandIn(ok(_page(["ch_2"], True)), *then) as server,
            pytest.raises(StripeApiError, match=raised) as error,
        ):
            list(lean_api(server.url).iter_pages("charges"))
        assert KEY.reveal() not in str(error.value)


def test_an_answer_asked_for_ahead_and_never_read_is_not_taken_for_another():
    after = "?limit=100&starting_after="
    routes = {
        "/v1/charges?limit=100": ok(_page(["ch_2"], True)),
        f"/v1/charges{after}ch_2": ok(_page(["ch_1"], False)),  # sent ahead, never read
        "/v1/customers": ok(_page(["cus_1"], False)),
        # Two lists read in turns on one connection: each GET drops the other's sent ahead.
        "/v1/refunds?limit=100": ok(_page(["re_2"], True)),
        f"/v1/refunds{after}re_2": ok(_page(["re_1"], False)),
        "/v1/payment_intents?limit=100": ok(_page(["pi_2"], True)),
        f"/v1/payment_intents{after}pi_2": ok(_page(["pi_1"], False)),
    }
    with StandIn(routes=routes) as server:
        api = lean_api(server.url)
        charges = api.iter_pages("charges")
        next(charges)
        charges.close()  # the caller stops after one page
        assert api.get_json("/v1/customers")["data"][0]["id"] == "cus_1"
        refunds, intents = api.iter_pages("refunds"), api.iter_pages("payment_intents")
        read = [next(refunds), next(intents), next(refunds), next(intents)]
        assert next(refunds, None) is None and next(intents, None) is None
    assert [page[0]["id"] for page in read] == ["re_2", "pi_2", "re_1", "pi_1"]
