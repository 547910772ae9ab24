"""The live contract: every event type of Commet's published webhook schema, typed.

The schema is read from the pinned official SDK (``commet-sdk`` in the ``dev`` extra),
exactly where ``scripts/generate_events.py`` reads it.
"""

from __future__ import annotations

import copy
import importlib.resources
import json
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pytest

import commet_webhooks
from commet_webhooks import EventType, UnknownEvent, WebhookEvent, Webhooks, parse_event
from commet_webhooks.events import CONTRACT_VERSION, EVENT_TYPES
from commet_webhooks.testing import sample_event, signed_request

SECRET = "whsec_contract_tests"
ROOT = Path(__file__).resolve().parents[2]
CONTRACT = json.loads(
    (importlib.resources.files("commet") / "docs" / "webhooks.openapi.json").read_text("utf-8")
)
COMPONENTS = CONTRACT["components"]
pytestmark = pytest.mark.anyio


def envelope_schema(name: str) -> dict[str, Any]:
    schema = CONTRACT["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]
    return {**schema["schema"], "components": COMPONENTS}


def published_example(name: str) -> dict[str, Any]:
    item = CONTRACT["webhooks"][name]["post"]["requestBody"]["content"]["application/json"]
    example = copy.deepcopy(item["example"])
    example.setdefault("id", f"whev_example_{name.replace('.', '_')}")
    return example


def validate(envelope: dict[str, Any]) -> None:
    jsonschema.validate(envelope, envelope_schema(envelope["event"]))


def resolve(schema: dict[str, Any]) -> dict[str, Any]:
    ref = schema.get("$ref")
    return COMPONENTS["schemas"][ref.rsplit("/", 1)[1]] if ref else schema


def same_value(attribute: Any, wire: Any) -> bool:
    """A decoded attribute carries the wire value (structs field by field, times parsed)."""
    if isinstance(attribute, msgspec.Struct):
        return isinstance(wire, dict) and all(
            same_value(getattr(attribute, f.name), wire[f.encode_name])
            for f in msgspec.structs.fields(attribute)
            if f.encode_name in wire
        )
    if isinstance(attribute, datetime):
        return attribute == datetime.fromisoformat(wire.replace("Z", "+00:00"))
    if isinstance(attribute, list):
        return len(attribute) == len(wire) and all(map(same_value, attribute, wire))
    return bool(attribute == wire and type(attribute) is type(wire))


ALL = list(EVENT_TYPES)


def test_the_registry_is_the_published_contract() -> None:
    assert list(EVENT_TYPES) == list(CONTRACT["webhooks"])
    assert len(EVENT_TYPES) == 66
    assert CONTRACT_VERSION == CONTRACT["info"]["version"] == "2026-08-27"


@pytest.mark.parametrize("name", ALL)
def test_names_follow_the_rule(name: str) -> None:
    camel = "".join(p.capitalize() for p in name.replace(".", "_").split("_"))
    cls = getattr(commet_webhooks, camel)
    assert EVENT_TYPES[name].event_class is cls and issubclass(cls, WebhookEvent)
    assert EventType[name.replace(".", "_").upper()] == name
    assert EVENT_TYPES[name].handler_keyword == "on_" + name.replace(".", "_")


@pytest.mark.parametrize("name", ALL)
async def test_each_published_example_reaches_its_typed_handler_once(name: str) -> None:
    example = published_example(name)
    validate(example)
    seen: list[WebhookEvent] = []
    keyword = EVENT_TYPES[name].handler_keyword
    webhooks = Webhooks(SECRET, idempotency_store=commet_webhooks.MemoryStore(), **{keyword: seen.append})
    body, headers = signed_request(example, SECRET)
    response = await webhooks.handle(body, headers)
    assert response.status == 200 and response.outcome == "ok"
    assert (await webhooks.handle(body, headers)).outcome == "duplicate"
    assert len(seen) == 1 and type(seen[0]) is EVENT_TYPES[name].event_class
    data = seen[0].data
    for field in msgspec.structs.fields(data):
        if field.encode_name in example["data"]:
            assert same_value(getattr(data, field.name), example["data"][field.encode_name]), (
                f"{name}: {field.name}"
            )
    missing = set(example["data"]) - {f.encode_name for f in msgspec.structs.fields(data)}
    assert not missing, f"{name}: example fields without an attribute: {missing}"


# ------------------------------------------------------------------ schema-valid variants


def vary(value: Any, schema: dict[str, Any], how: str) -> Any:
    """A schema-valid variant of ``value``: nullables null, optionals absent, fractions, extras."""
    schema = resolve(schema)
    options = schema.get("anyOf")
    if options is not None:
        if how == "nulls" and any(o.get("type") == "null" for o in options):
            return None
        if value is None:
            return None
        for option in options:
            if option.get("type") != "null":
                return vary(value, option, how)
        return value
    if "oneOf" in schema and isinstance(value, dict):
        for option in schema["oneOf"]:
            try:
                jsonschema.validate(value, {**resolve(option), "components": COMPONENTS})
            except jsonschema.ValidationError:
                continue
            return vary(value, option, how)
        return value
    kind = schema.get("type")
    if kind == "object" and isinstance(value, dict) and "properties" in schema:
        required = set(schema.get("required", []))
        out = {}
        for key, item in value.items():
            if how == "absent" and key not in required:
                continue
            out[key] = vary(item, schema["properties"].get(key, {}), how)
        if how == "extras":
            out["zzFieldFromTheFuture"] = {"nested": [1, 2]}
        return out
    if kind == "array" and isinstance(value, list):
        return [vary(v, schema.get("items", {}), how) for v in value]
    if kind == "number" and how == "fractions" and isinstance(value, int) and "const" not in schema:
        return value + 0.25
    return value


@pytest.mark.parametrize("how", ["nulls", "absent", "fractions", "extras"])
@pytest.mark.parametrize("name", ALL)
async def test_schema_valid_variants_reach_the_typed_handler(name: str, how: str) -> None:
    example = published_example(name)
    variant = dict(example, data=vary(example["data"], envelope_schema(name)["properties"]["data"], how))
    if how == "extras":
        variant["zzEnvelopeKeyFromTheFuture"] = True
        variant["data"]["zzFieldFromTheFuture"] = 1
    else:
        validate(variant)  # the variant is something Commet may really send
    seen: list[WebhookEvent] = []
    webhooks = Webhooks(SECRET, **{EVENT_TYPES[name].handler_keyword: seen.append})
    response = await webhooks.handle(*signed_request(variant, SECRET))
    assert response.status == 200 and response.outcome == "ok", response.body
    assert type(seen[0]) is EVENT_TYPES[name].event_class
    if how == "fractions":
        for key, value in variant["data"].items():
            if isinstance(value, float):
                attribute = next(
                    f.name for f in msgspec.structs.fields(seen[0].data) if f.encode_name == key
                )
                assert getattr(seen[0].data, attribute) == value


def test_payment_without_a_subscription_is_typed() -> None:
    """One-time payments and payment links: subscription and transaction ids are null."""
    payload = sample_event(
        "payment.received",
        subscription_id=None,
        payment_transaction_id=None,
        gross_amount=None,
        currency=None,
        org_net_amount=None,
    )
    validate(payload)
    event = parse_event(json.dumps(payload))
    assert isinstance(event, commet_webhooks.PaymentReceived)
    assert event.data.subscription_id is None and event.data.gross_amount is None


@pytest.mark.parametrize("name", ALL)
async def test_a_wrong_typed_field_is_never_400_and_never_lost(name: str) -> None:
    payload = sample_event(name)
    required = envelope_schema(name)["properties"]["data"].get("required", [])
    assert required, f"{name}: the contract requires no data field"
    payload["data"][required[0]] = {"unexpected": ["shape"]}
    typed: list[WebhookEvent] = []
    raw: list[WebhookEvent] = []
    errors: list[BaseException] = []
    webhooks = Webhooks(
        SECRET,
        on_payload=raw.append,
        on_error=lambda exc, subject: errors.append(exc),
        **{EVENT_TYPES[name].handler_keyword: typed.append},
    )
    response = await webhooks.handle(*signed_request(payload, SECRET))
    assert response.status == 200 and response.outcome == "accepted_raw"
    assert typed == [] and isinstance(raw[0], UnknownEvent) and raw[0].event == name
    assert isinstance(errors[0], commet_webhooks.EventSchemaError)
    # Retrying cannot make it fit before an upgrade: 200 even under retry_on_handler_error...
    retrying = Webhooks(SECRET, on_payload=raw.append, retry_on_handler_error=True)
    assert (await retrying.handle(*signed_request(payload, SECRET))).status == 200

    # ...unless the catch-all that received it failed: then the handler-error policy holds.
    def broken(event: WebhookEvent) -> None:
        raise RuntimeError("catch-all failed")

    failing = Webhooks(SECRET, on_payload=broken, retry_on_handler_error=True)
    response = await failing.handle(*signed_request(payload, SECRET))
    assert response.status == 500 and response.outcome == "handler_error"


@pytest.mark.parametrize("name", ALL)
def test_samples_are_valid_against_the_published_schema(name: str) -> None:
    envelope = sample_event(name)
    validate(envelope)
    assert envelope["apiVersion"] == "2026-08-27"
    overridden = sample_event(name, organization_id="org_x", mode="live")
    validate(overridden)
    assert overridden["organizationId"] == "org_x" and overridden["mode"] == "live"


def test_generated_module_matches_the_pinned_contract() -> None:
    """Fails with "Commet's contract changed: run scripts/generate_events.py" when stale."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "generate_events.py"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
