"""Coverage-guided fuzz target for the receive path (atheris).

Every input is tried twice: as a raw body with a correct signature (so it reaches
the parser) and as a body with a bogus signature. Only library errors may escape
``parse_event``; ``Webhooks.handle_sync`` must always answer 200, 400 or 403.

    .venv/bin/python fuzz/fuzz_parse.py -max_total_time=60
"""

from __future__ import annotations

import contextlib
import sys

import atheris

with atheris.instrument_imports():
    from commet_webhooks import PayloadError, Webhooks, parse_event, sign

SECRET = "whsec_fuzz"
ran: list[object] = []
webhooks = Webhooks(SECRET, on_payload=ran.append)


def test_one_input(data: bytes) -> None:
    with contextlib.suppress(PayloadError):
        parse_event(data)
    ran.clear()
    signed = webhooks.handle_sync(data, {"X-Commet-Signature": sign(data, SECRET)})
    if signed.status not in (200, 400):
        raise AssertionError(f"signed body answered {signed.status}")
    if signed.status == 400 and ran:
        raise AssertionError("a handler ran for an invalid payload")
    ran.clear()
    forged = webhooks.handle_sync(data, {"X-Commet-Signature": data[:64].hex()[:64]})
    if forged.status != 403 or ran:
        raise AssertionError("an unverified body was accepted")


if __name__ == "__main__":
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
