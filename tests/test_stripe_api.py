"""The Stripe reader retries what Stripe says to retry and raises everything else clearly."""

from __future__ import annotations

import httpx
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
