"""dlt's secret-hint question answered once per hint (`ingestion.dlt_config`)."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from dlt.common.configuration import resolve
from dlt.common.configuration.exceptions import ValueNotSecretException
from dlt.common.configuration.providers import DictionaryProvider, environ
from dlt.common.configuration.specs import BaseConfiguration, base_configuration
from dlt.common.destination.configuration import ParquetFormatConfiguration
from dlt.common.typing import SecretSentinel, TSecretStrValue
from dlt.destinations.impl.duckdb.configuration import (
    DuckDbClientConfiguration,
    DuckDbCredentials,
)

import ingestion.pipelines  # noqa: F401 (installs the remembered answers, as every load does)
from ingestion import dlt_config

original = base_configuration.is_secret_hint.__wrapped__


def field_hints(*specs: type[BaseConfiguration]) -> list[Any]:
    return [hint for spec in specs for hint in spec.get_resolvable_fields().values()]


def test_every_module_that_asks_gets_the_remembered_answers():
    for module in (base_configuration, resolve, environ):
        assert module.is_secret_hint.__wrapped__ is original
    assert dlt_config.remember_secret_hints() is True  # a second call changes nothing
    assert resolve.is_secret_hint.__wrapped__ is original


def test_answers_are_dlts_own_for_the_fields_a_load_resolves():
    hints = field_hints(DuckDbClientConfiguration, DuckDbCredentials, ParquetFormatConfiguration)
    hints += [TSecretStrValue, TSecretStrValue | None, Annotated[list[str], SecretSentinel]]
    answers = [original(hint) for hint in hints]
    assert True in answers and False in answers
    fast = dlt_config.remembered(original)
    assert [fast(hint) for hint in hints] == answers
    assert [fast(hint) for hint in hints] == answers  # remembered, and the same
    assert [base_configuration.is_secret_hint(hint) for hint in hints] == answers


def test_a_hint_that_cannot_be_a_key_is_asked_every_time():
    asked: list[Any] = []

    def is_secret_hint(hint: Any) -> bool:
        asked.append(hint)
        return original(hint)

    fast = dlt_config.remembered(is_secret_hint)
    unhashable = Annotated[str, []]
    with pytest.raises(TypeError):
        hash(unhashable)
    assert fast(unhashable) is False and fast(unhashable) is False
    assert fast(str) is False and fast(str) is False
    assert asked == [unhashable, unhashable, str]


def test_the_cache_stops_growing_at_its_bound(monkeypatch):
    monkeypatch.setattr(dlt_config, "MAX_HINTS", 2)
    asked: list[Any] = []
    fast = dlt_config.remembered(lambda hint: asked.append(hint) or False)
    for hint in (int, str, bytes, int, str, bytes):
        fast(hint)
    assert asked == [int, str, bytes, bytes]


def test_a_secret_in_a_provider_that_cannot_hold_secrets_is_still_refused():
    class ConfigOnly(DictionaryProvider):
        @property
        def supports_secrets(self) -> bool:
            return False

    provider = ConfigOnly()
    provider.set_value("password", "hunter2", None, "destination", "duckdb", "credentials")
    with pytest.raises(ValueNotSecretException):
        resolve.resolve_single_provider_value(
            provider, "password", TSecretStrValue, None, None, ("destination", "duckdb"),
            ("credentials",),
        )  # fmt: skip
    value, _ = resolve.resolve_single_provider_value(
        provider, "read_only", bool, None, None, ("destination", "duckdb"), ("credentials",)
    )
    assert value is None
