#!/usr/bin/env python3
"""Generate ``src/commet_webhooks/_event_types.py`` from Commet's published webhook contract.

The contract is the OpenAPI ``webhooks`` document shipped in the official SDK on PyPI
(``commet-sdk``, pinned in the ``dev`` extra). Run ``scripts/generate_events.py`` after
bumping the pin; ``--check`` exits non-zero when the checked-in module is stale (the
drift test in ``tests/core/test_contract.py`` runs exactly that comparison).

Rules (SPEC §1b and §2):
- class = CamelCase of the wire name split on ``.``/``_``; data class = class + ``Data``;
  nested objects become structs, shared component schemas keep one struct each;
- exactly the contract's strictness: a field is required only when the contract
  requires it and it cannot be null; ``number`` is ``int | float``; enums and consts are
  plain ``str`` (new values are non-breaking); ``oneOf`` alternatives merge into one
  struct whose fields are optional unless every alternative requires them;
- date-time strings (``format: date-time``, or described as ISO 8601) are ``datetime``;
- the eight seed-era classes keep their public fields and accept seed-era payloads:
  a field is required there only if the seed model required it too.
"""

from __future__ import annotations

import argparse
import importlib.resources
import json
import keyword
import re
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET = ROOT / "src" / "commet_webhooks" / "_event_types.py"
DOCS = ROOT / "docs" / "events.md"
DOCS_START, DOCS_END = "<!-- events:start -->", "<!-- events:end -->"
COMMAND = "scripts/generate_events.py"

# Our own one-line summaries (never the platform's prose), by wire name.
SUMMARIES: dict[str, str] = {
    "subscription.created": "A subscription was created, before payment. Do not grant access yet.",
    "subscription.activated": "The first payment succeeded and the subscription is active: grant access.",
    "subscription.reactivated": "A canceled subscription was paid for again and is active: grant access.",
    "subscription.pause_scheduled": "A pause was scheduled for a future date.",
    "subscription.pause_updated": "A scheduled or running pause changed its dates.",
    "subscription.pause_revoked": "A scheduled pause was called off.",
    "subscription.paused": "The subscription is paused: revoke access.",
    "subscription.resumed": "A paused subscription is active again: grant access.",
    "subscription.resume_failed": "The charge to resume a paused subscription failed; it stays paused.",
    "subscription.canceled": "The subscription ended: revoke access.",
    "subscription.updated": "Subscription details changed (status, scheduled cancellation, metadata).",
    "subscription.plan_changed": "An upgrade, downgrade or billing-interval change took effect.",
    "subscription.cancellation_scheduled": "A cancellation at period end was scheduled.",
    "subscription.cancellation_revoked": "A scheduled cancellation was called off.",
    "subscription.plan_change_scheduled": "A plan change was scheduled for a later date.",
    "subscription.plan_change_revoked": "A scheduled plan change was called off.",
    "subscription.past_due": "A renewal failed and dunning started; access is a grace decision.",
    "trial.started": "A trial began: grant trial access.",
    "trial.converted": "A trial turned into a paid subscription before it ran out.",
    "trial.expired": "A trial ran out and regular billing starts (trial to paid).",
    "trial.will_end": "A trial ends in a few days: remind the customer.",
    "trial.checkout_ready": "A checkout link that starts a trial is ready to share.",
    "checkout.ready": "A checkout link for a first invoice is ready to share.",
    "payment.received": "A payment settled (first payment and renewals alike).",
    "payment.failed": "A charge failed.",
    "payment.recovered": "A past-due payment was recovered.",
    "payment.retry_failed": "Dunning ran out of retries and the subscription is canceled: revoke.",
    "payment.refunded": "A payment was refunded.",
    "payment.disputed": "A payment was disputed.",
    "payment.dispute_resolved": "A payment dispute was resolved.",
    "payment_link.created": "A payment link was created.",
    "payment_link.completed": "A payment link was paid.",
    "payment_link.failed": "A payment link charge failed.",
    "payment_link.canceled": "A payment link was canceled.",
    "invoice.created": "A new invoice was issued.",
    "invoice.voided": "An invoice was voided.",
    "invoice.overdue": "An invoice is past its due date.",
    "invoice.upcoming": "A renewal is a few days away (no amount yet).",
    "payment_method.attached": "A payment method was attached to a customer.",
    "payment_method.updated": "A customer's payment method changed.",
    "customer.created": "A customer was created.",
    "customer.updated": "A customer's details changed.",
    "customer.state_changed": "A customer's access state changed: the one place to sync access.",
    "plan_grant.created": "A plan was granted to a customer without a subscription.",
    "plan_grant.updated": "A plan grant changed.",
    "plan_grant.expired": "A plan grant expired.",
    "plan_grant.revoked": "A plan grant was revoked.",
    "credits.granted": "Credits were granted to a customer.",
    "credits.purchased": "A customer bought credits.",
    "credits.low": "A customer's credits are running low.",
    "credits.depleted": "A customer's credits ran out.",
    "credits.expired": "Credits expired.",
    "balance.topped_up": "A customer's balance was topped up.",
    "balance.low": "A customer's balance is running low.",
    "balance.depleted": "A customer's balance ran out.",
    "quota.threshold_reached": "Usage crossed a quota threshold.",
    "quota.exceeded": "Usage exceeded a quota.",
    "seats.updated": "A customer's seat count changed.",
    "seats.limit_reached": "A customer reached a seat limit.",
    "addon.activated": "An add-on was activated.",
    "addon.deactivated": "An add-on was deactivated.",
    "usage.recorded": "Usage was recorded for a metered feature.",
    "payout.available": "Funds are available for a payout.",
    "payout.created": "A payout was created.",
    "payout.paid": "A payout was paid.",
    "payout.failed": "A payout failed.",
}

# What the seed-era model required, per event (wire names), and its extra fields.
SEED_REQUIRED: dict[str, set[str]] = {
    "subscription.created": {"subscriptionId", "customerId", "planId", "planName", "status"},
    "subscription.activated": {
        "subscriptionId", "customerId", "status", "invoiceId", "invoiceNumber",
        "invoiceTotal", "invoiceCurrency",
    },
    "subscription.canceled": {"subscriptionId", "customerId", "status"},
    "subscription.updated": {"subscriptionId", "customerId", "status"},
    "subscription.plan_changed": {"subscriptionId", "customerId", "previousPlan", "currentPlan"},
    "payment.received": {"invoiceId", "invoiceNumber", "invoiceTotal", "customerId"},
    "payment.failed": {"customerId"},
    "invoice.created": {
        "invoiceId", "invoiceNumber", "invoiceStatus", "currency", "subtotal", "total",
        "customerId",
    },
}
SEED_EXTRA: dict[str, list[str]] = {
    "subscription.created": ["publicId", "externalId"],
    "subscription.activated": ["publicId", "externalId"],
    "subscription.canceled": ["externalId"],
    "subscription.updated": ["externalId"],
    "subscription.plan_changed": ["externalId"],
}

_ISO = re.compile(r"ISO[ -]?8601", re.IGNORECASE)


def camel_words(name: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", name) if part)


def snake(name: str) -> str:
    out = re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()
    return out + "_" if keyword.iskeyword(out) else out


def to_camel(snake_name: str) -> str:
    """What msgspec's ``rename="camel"`` makes of an attribute name."""
    parts = snake_name.rstrip("_").split("_")
    head, rest = parts[0], parts[1:]
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def strip_docs(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {
            k: strip_docs(v)
            for k, v in sorted(schema.items())
            if k not in ("description", "example", "examples", "title", "x-mint")
        }
    if isinstance(schema, list):
        return [strip_docs(v) for v in schema]
    return schema


class Generator:
    def __init__(self, contract: dict[str, Any]) -> None:
        self.contract = contract
        self.components: dict[str, Any] = contract.get("components", {}).get("schemas", {})
        self.structs: dict[str, list[str]] = {}  # name -> source lines
        self.order: list[str] = []
        self.shapes: dict[str, str] = {}  # canonical shape -> struct name

    # ------------------------------------------------------------------ types

    def resolve(self, schema: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
        ref = schema.get("$ref")
        if ref:
            name = ref.rsplit("/", 1)[1]
            return self.components[name], name
        return schema, None

    def py_type(self, schema: dict[str, Any], hint: str, owner: str) -> tuple[str, bool]:
        """(annotation, nullable) for a property schema."""
        if "anyOf" in schema:
            options = [o for o in schema["anyOf"] if o.get("type") != "null"]
            nullable = len(options) != len(schema["anyOf"])
            if len(options) == 1:
                inner, inner_null = self.py_type(
                    {**options[0], "description": schema.get("description", "")}, hint, owner
                )
                return inner, nullable or inner_null
            return "Any", nullable
        schema, ref_name = self.resolve(schema)
        if "oneOf" in schema:
            objects = [self.resolve(o)[0] for o in schema["oneOf"]]
            if all(o.get("type") == "object" for o in objects):
                return self.struct(merge_objects(objects), ref_name or hint, owner), False
            return "Any", False
        kind = schema.get("type")
        if kind == "string":
            is_time = schema.get("format") == "date-time" or bool(
                _ISO.search(schema.get("description", ""))
            )
            return ("datetime" if is_time else "str"), False
        if kind == "number":
            return "int | float", False
        if kind == "integer":
            return "int", False
        if kind == "boolean":
            return "bool", False
        if kind == "array":
            item_hint = hint[:-1] if hint.endswith("s") and len(hint) > 1 else hint + "Item"
            inner, inner_null = self.py_type(schema.get("items", {}), item_hint, owner)
            return f"list[{inner}{' | None' if inner_null else ''}]", False
        if kind == "object":
            if "properties" in schema:
                return self.struct(schema, ref_name or hint, owner), False
            return "dict[str, Any]", False
        return "Any", False

    def struct(self, schema: dict[str, Any], hint: str, owner: str) -> str:
        hint = hint.removeprefix("Webhook")
        shape = json.dumps(strip_docs(schema), sort_keys=True)
        if shape in self.shapes:
            return self.shapes[shape]
        name = camel_words(hint)
        if name in self.structs or name in RESERVED:
            name = owner + name
        while name in self.structs:
            name += "_"
        self.shapes[shape] = name
        self.structs[name] = []  # reserve the name before recursing
        self.structs[name] = self.body(name, schema, required_override=None, extra=[])
        self.order.append(name)
        return name

    # ------------------------------------------------------------------ bodies

    def body(
        self,
        name: str,
        schema: dict[str, Any],
        required_override: set[str] | None,
        extra: list[str],
        doc: str | None = None,
    ) -> list[str]:
        required_by_contract = set(schema.get("required", []))
        fields: list[tuple[str, str, bool, str]] = []  # attr, annotation, required, wire
        times: list[str] = []
        for wire, prop in schema.get("properties", {}).items():
            attr = snake(wire)
            annotation, nullable = self.py_type(prop, wire, name)
            required = wire in required_by_contract and not nullable
            if required_override is not None:
                required = required and wire in required_override
            if annotation == "datetime":
                times.append(attr)
            fields.append((attr, annotation, required, wire))
        for wire in extra:
            fields.append((snake(wire), "str", False, wire))
        base = "TimedWireStruct" if times else "WireStruct"
        lines = [f"class {name}({base}):"]
        if doc:
            lines.append(f'    """{doc}"""')
            lines.append("")
        if times:
            quoted = "".join(f"{json.dumps(t)}, " for t in times).rstrip()
            lines.append(f"    _time_fields = ({quoted})")
        if not fields:
            lines.append("    pass")
        # required first, then optional: reads well, and msgspec keeps kw_only either way
        for attr, annotation, required, wire in sorted(fields, key=lambda f: not f[2]):
            rename = "" if to_camel(attr) == wire else f"msgspec.field(name={json.dumps(wire)}"
            if required:
                value = f" = {rename})" if rename else ""
                lines.append(f"    {attr}: {annotation}{value}")
            else:
                default = f"{rename}, default=None)" if rename else "None"
                lines.append(f"    {attr}: {annotation} | None = {default}")
        return lines

    # ------------------------------------------------------------------ events

    def generate(self) -> str:
        events = []
        bodies: dict[str, str] = {}  # data fields -> the first data class that has them
        for wire_name, item in self.contract["webhooks"].items():
            post = item["post"]
            content = post["requestBody"]["content"]["application/json"]
            envelope = content["schema"]
            data_schema = envelope["properties"]["data"]
            cls = camel_words(wire_name)
            data_name = cls + "Data"
            self.structs[data_name] = []
            self.structs[data_name] = self.body(
                data_name,
                data_schema,
                required_override=SEED_REQUIRED.get(wire_name),
                extra=[
                    w
                    for w in SEED_EXTRA.get(wire_name, [])
                    if w not in data_schema.get("properties", {})
                ],
                doc=f"The ``data`` of ``{wire_name}``.",
            )
            self._share_fields(data_name, bodies)
            self.order.append(data_name)
            events.append((wire_name, cls, data_name, content.get("example", {})))
        return self.render(events)

    def _share_fields(self, data_name: str, bodies: dict[str, str]) -> None:
        """Event types with the same data fields: the later class extends the earlier one."""
        lines = self.structs[data_name]
        fields = "\n".join(lines[3:])  # after the class line, docstring and blank line
        earlier = bodies.get(fields)
        if earlier is None:
            bodies[fields] = data_name
            return
        self.structs[data_name] = [f"class {data_name}({earlier}):", *lines[1:3]]

    def render(self, events: list[tuple[str, str, str, dict[str, Any]]]) -> str:
        version = self.contract.get("info", {}).get("version", "")
        out = [
            f'"""Generated by {COMMAND} from Commet\'s webhook contract {version}: do not edit.',
            "",
            "One data struct and one event class per event type, the handler keywords and the",
            "published example payload of each type. Hand-written code reads these through",
            ":mod:`commet_webhooks.events`.",
            '"""',
            "",
            "# ruff: noqa: E501",
            "from __future__ import annotations",
            "",
            "import enum",
            "from collections.abc import Awaitable, Callable",
            "from datetime import datetime",
            "from typing import Any, TypedDict",
            "",
            "import msgspec",
            "",
            "from ._envelope import WebhookEvent",
            "from ._wire import TimedWireStruct, WireStruct",
            "",
            f"CONTRACT_VERSION = {version!r}",
            '"""The ``apiVersion`` of the contract these classes were generated from."""',
            "",
        ]
        for name in self.order:
            out.extend(["", *self.structs[name], ""])
        out.append("")
        for wire_name, cls, data_name, _ in events:
            out.extend(
                [
                    "",
                    f"class {cls}(WebhookEvent, tag={json.dumps(wire_name)}):",
                    f'    """{SUMMARIES[wire_name]}"""',
                    "",
                    f"    data: {data_name}",
                    "",
                ]
            )
        out.append("")
        out.append("class EventType(str, enum.Enum):")
        out.append('    """Every event type of the contract: ``EventType.TRIAL_STARTED == "trial.started"``."""')
        out.append("")
        for wire_name, _, _, _ in events:
            member = re.sub(r"[._]", "_", wire_name).upper()
            out.append(f"    {member} = {json.dumps(wire_name)}")
        out.extend(
            [
                "",
                "    def __str__(self) -> str:",
                "        return self.value",
                "",
                "    @property",
                "    def handler_keyword(self) -> str:",
                '        """The ``Webhooks`` keyword for this event: ``on_payment_failed``."""',
                '        return "on_" + self.value.replace(".", "_")',
                "",
                "",
            ]
        )
        out.append("EVENT_CLASSES: tuple[type[WebhookEvent], ...] = (")
        out.extend(f"    {cls}," for _, cls, _, _ in events)
        out.append(")")
        out.append('"""Every event class, in the order of the contract."""')
        out.append("")
        out.append("")
        out.append("class HandlerKeywords(TypedDict, total=False):")
        out.append('    """The ``on_<event>`` keywords of ``Webhooks`` and ``Router``."""')
        out.append("")
        for wire_name, cls, _, _ in events:
            keyword_name = "on_" + wire_name.replace(".", "_")
            out.append(f"    {keyword_name}: Callable[[{cls}], Awaitable[None] | None]")
        out.append("")
        out.append("")
        out.append("EXAMPLES: dict[str, dict[str, Any]] = {")
        for wire_name, _, _, example in events:
            data = example.get("data", {})
            out.append(f"    {json.dumps(wire_name)}: {data!r},")
        out.append("}")
        out.append('"""The published example ``data`` of every event type."""')
        out.append("")
        out.append("")
        public = sorted(
            [
                *self.order,
                *(cls for _, cls, _, _ in events),
                "CONTRACT_VERSION",
                "EventType",
                "HandlerKeywords",
            ],
            key=lambda n: (not n.isupper(), n),
        )
        out.append("__all__ = [")
        out.extend(f"    {json.dumps(name)}," for name in public)
        out.append("]")
        out.append("")
        text = "\n".join(out) + "\n"
        if "msgspec.field(" not in text:
            text = text.replace("import msgspec\n\n", "")
        return text


RESERVED = {"WebhookEvent", "UnknownEvent", "EventType", "EventSpec"} | {
    camel_words(n) for n in SUMMARIES
}


def merge_objects(objects: list[dict[str, Any]]) -> dict[str, Any]:
    """One object schema accepting every alternative of a ``oneOf``."""
    properties: dict[str, Any] = {}
    for obj in objects:
        for key, prop in obj.get("properties", {}).items():
            if key not in properties:
                properties[key] = prop
            elif "const" in prop or "const" in properties[key]:
                properties[key] = {"type": "string"}
            elif strip_docs(prop) != strip_docs(properties[key]):
                a, b = properties[key], prop
                if "oneOf" in a or "oneOf" in b or a.get("type") == b.get("type") == "object":
                    alts = [x for p in (a, b) for x in p.get("oneOf", [p])]
                    properties[key] = {"oneOf": alts}
                else:
                    properties[key] = {"anyOf": [a, b]}
    required = set.intersection(*(set(o.get("required", [])) for o in objects))
    return {"type": "object", "properties": properties, "required": sorted(required)}


def load_contract() -> dict[str, Any]:
    source = importlib.resources.files("commet") / "docs" / "webhooks.openapi.json"
    loaded: dict[str, Any] = json.loads(source.read_text(encoding="utf-8"))
    return loaded


def render() -> str:
    return Generator(load_contract()).generate()


def render_docs(current: str) -> str:
    """``docs/events.md`` with its family table rewritten from the contract."""
    families: dict[str, list[str]] = {}
    for name in load_contract()["webhooks"]:
        families.setdefault(name.split(".", 1)[0], []).append(name)
    rows = ["| family | event type | class | what it means |", "|---|---|---|---|"]
    for family, names in families.items():
        for name in names:
            rows.append(f"| `{family}` | `{name}` | `{camel_words(name)}` | {SUMMARIES[name]} |")
    head, rest = current.split(DOCS_START, 1)
    tail = rest.split(DOCS_END, 1)[1]
    return f"{head}{DOCS_START}\n" + "\n".join(rows) + f"\n{DOCS_END}{tail}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if the module is stale")
    args = parser.parse_args()
    docs = DOCS.read_text(encoding="utf-8")
    outputs = {TARGET: render(), DOCS: render_docs(docs)}
    if args.check:
        for path, text in outputs.items():
            current = path.read_text(encoding="utf-8") if path.exists() else ""
            if current != text:
                print(f"Commet's contract changed: run {COMMAND}", file=sys.stderr)
                return 1
        return 0
    for path, text in outputs.items():
        path.write_text(text, encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
