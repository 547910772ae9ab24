"""The pure parts of the request core: retry delays, Retry-After, validation details."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import pytest

from commet_webhooks.client._core import (
    RETRY_STATUSES,
    ClientConfig,
    RequestCore,
    backoff_delay,
    field_errors,
    parse_retry_after,
)


def test_retry_statuses_match_the_wire() -> None:
    assert frozenset({408, 429, 500, 502, 503, 504}) == RETRY_STATUSES


@pytest.mark.parametrize(
    ("attempt", "ceiling"), [(0, 1.0), (1, 2.0), (2, 4.0), (3, 8.0), (4, 8.0), (60, 8.0)]
)
def test_backoff_doubles_from_one_second_with_an_eight_second_cap(
    attempt: int, ceiling: float
) -> None:
    assert backoff_delay(attempt, 1.0, 8.0, rand=lambda: 0.0) == ceiling / 2
    assert backoff_delay(attempt, 1.0, 8.0, rand=lambda: 0.999999) == pytest.approx(ceiling, 1e-5)
    for _ in range(200):
        assert ceiling / 2 <= backoff_delay(attempt, 1.0, 8.0) < ceiling


def test_jitter_spreads_delays() -> None:
    assert len({backoff_delay(2, 1.0, 8.0) for _ in range(50)}) > 10


def test_parse_retry_after() -> None:
    now = datetime(2026, 11, 27, 12, 0, 0, tzinfo=timezone.utc)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(" 2.5 ") == 2.5
    assert parse_retry_after(format_datetime(now + timedelta(seconds=30), usegmt=True), now) == 30
    # Zero, negative and past values give None: the caller backs off instead of
    # retrying at once.
    past = format_datetime(now - timedelta(hours=1), usegmt=True)
    for junk in (None, "", "  ", "soon", "nan", "inf", "Mon, 99 Foo 2026", "-3", "0", past):
        assert parse_retry_after(junk, now) is None


def test_retry_after_wins_over_backoff_but_is_capped() -> None:
    config = ClientConfig.build("ck_x", "production", None, 30.0, 3, 1.0, 8.0)
    core = RequestCore(config)
    assert core.retry_delay(0, "3") == 3.0
    assert core.retry_delay(0, "3600") == 30.0  # the platform's cap
    assert 0.5 <= core.retry_delay(0, "garbage") < 1.0
    assert 0.5 <= core.retry_delay(0, "-10") < 1.0
    assert 4.0 <= core.retry_delay(5) < 8.0 + 1e-9


def test_field_errors_shapes() -> None:
    assert field_errors([{"field": "a", "message": "x"}, {"field": "a", "message": "y"}]) == {
        "a": ["x", "y"]
    }
    assert field_errors([{"path": ["items", 2, "qty"], "message": "too big"}]) == {
        "items.2.qty": ["too big"]
    }
    assert field_errors({"a": "x", "b": ["y", "z"]}) == {"a": ["x"], "b": ["y", "z"]}
    assert field_errors(["plain message"]) == {"": ["plain message"]}
    assert field_errors([{"field": "a"}]) == {"a": ["invalid"]}
    assert field_errors(None) == {}
    assert field_errors("text") == {}


def test_config_repr_hides_the_key() -> None:
    config = ClientConfig.build("ck_hidden_value", "sandbox", None, None, 0, 0.0, 0.0, 0.0)
    assert "ck_hidden_value" not in repr(config)
    assert config.base_url == "https://commet.co"  # one host; the key picks sandbox or live
    assert config.timeout is None
