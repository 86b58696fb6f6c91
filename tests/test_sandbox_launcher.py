"""Sandbox mode starts the project's own sandbox; a key set means no fallback to it."""

from __future__ import annotations

import pytest

from ingestion.connect import open_stripe
from ingestion.settings import ConfigurationError, StripeSettings
from sandbox import launcher
from sandbox.settings import SandboxSettings


def test_without_a_key_the_run_starts_and_stops_the_sandbox(tmp_path, free_port):
    settings = SandboxSettings(seed=5, charges=60, port=free_port, data_dir=tmp_path)
    stop = launcher.start_for_run(settings)
    try:
        assert launcher.ensure_running(settings) == f"http://127.0.0.1:{free_port}"
    finally:
        stop()
    assert launcher._health(f"http://127.0.0.1:{free_port}") is None


def test_sandbox_mode_is_chosen_only_when_no_key_is_set(monkeypatch, free_port):
    monkeypatch.delenv("STRIPE_API_KEY", raising=False)
    monkeypatch.delenv("STRIPE_API_BASE", raising=False)
    monkeypatch.setenv("SANDBOX_PORT", str(free_port))
    settings = StripeSettings.from_env()
    assert settings.sandbox and settings.autostart_sandbox
    assert settings.api_base == f"http://127.0.0.1:{free_port}"

    monkeypatch.setenv("STRIPE_API_KEY", "rk_live_abc")
    settings = StripeSettings.from_env()
    assert not settings.sandbox and settings.api_base == "https://api.stripe.com"
    assert "rk_live_abc" not in repr(settings)


def test_a_malformed_key_is_a_configuration_error(monkeypatch):
    monkeypatch.setenv("STRIPE_API_KEY", "not-a-stripe-key")
    with pytest.raises(ConfigurationError, match="STRIPE_API_KEY"):
        StripeSettings.from_env()


def test_a_key_set_never_falls_back_to_the_sandbox(monkeypatch, free_port):
    monkeypatch.setenv("STRIPE_API_KEY", "sk_test_real_looking_key")
    monkeypatch.setenv("STRIPE_API_BASE", f"http://127.0.0.1:{free_port}")
    monkeypatch.setenv("STRIPE_MAX_RETRIES", "0")
    with pytest.raises(Exception, match="Cannot reach the Stripe API"):
        open_stripe(StripeSettings.from_env())
