"""The receiver conformance suite: the rules, how each is checked, and the report.

Each rule sends real, signed deliveries to the user's receiver and reads what comes
back; rules about effects (did a handler run, and how often) also read the user's
effect probe. A rule that needs something the user did not give (a probe, a second
instance, the crash hook) is reported as *not checked*, with what to give, never as
passed.
"""

from __future__ import annotations

import concurrent.futures
import enum
import json
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from ..dispatch import DEFAULT_MAX_BODY_BYTES
from ..events import EVENT_TYPES
from ..testing import sample_event, signed_request
from ._deps import httpx
from ._hooks import CRASH_MARKER
from ._target import (
    DEFAULT_PATH,
    Receiver,
    TargetError,
    factory_for,
    load_app,
    load_object,
    open_receiver,
)

__all__ = [
    "RULES",
    "Outcome",
    "Probe",
    "Report",
    "Rule",
    "RuleResult",
    "run_suite",
]

Probe = Callable[[], int]
"""Returns how many times the probed effect has happened so far (a count that only grows)."""

DEFAULT_PROBE_EVENT = "subscription.activated"
_UNKNOWN_EVENT_TYPE = "conformance.unmodelled_event"
_POSITIVE_WAIT = 5.0  # seconds an expected effect may take to show, at least
_BUSY_RETRIES = 50  # a 409 (busy elsewhere) is retried, as Commet would, this many times


class Outcome(str, enum.Enum):
    PASSED = "passed"
    FAILED = "failed"
    NOT_CHECKED = "not checked"


@dataclass(frozen=True)
class RuleResult:
    """What one rule found: its outcome and an explanation a user can act on."""

    rule: str
    title: str
    outcome: Outcome
    detail: str

    @property
    def passed(self) -> bool:
        return self.outcome is Outcome.PASSED


@dataclass
class Report:
    """The results of every rule, in order."""

    target: str
    results: list[RuleResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no rule failed (rules not checked do not count as failures)."""
        return not self.failed

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome is Outcome.FAILED]

    @property
    def not_checked(self) -> list[RuleResult]:
        return [r for r in self.results if r.outcome is Outcome.NOT_CHECKED]

    def __getitem__(self, rule: str) -> RuleResult:
        for result in self.results:
            if result.rule == rule:
                return result
        raise KeyError(rule)

    def outcomes(self) -> dict[str, Outcome]:
        return {r.rule: r.outcome for r in self.results}

    def format(self) -> str:
        """A plain-text report, one paragraph per rule."""
        lines = [f"Commet receiver conformance: {self.target}"]
        for r in self.results:
            lines.append(f"  [{r.outcome.value.upper()}] {r.rule}: {r.title}")
            lines.extend(f"      {line}" for line in r.detail.splitlines())
        counts = {o: sum(r.outcome is o for r in self.results) for o in Outcome}
        lines.append(
            f"{counts[Outcome.PASSED]} passed, {counts[Outcome.FAILED]} failed, "
            f"{counts[Outcome.NOT_CHECKED]} not checked"
        )
        return "\n".join(lines)

    def assert_ok(self, *, strict: bool = False) -> None:
        """Raise ``AssertionError`` with the report when a rule failed (or, strict, was
        not checked)."""
        if self.failed or (strict and self.not_checked):
            raise AssertionError(self.format())


class _NotChecked(Exception):
    """Raised by a rule that lacks what it needs."""


class _Failed(Exception):
    """Raised by a rule that found a problem."""


@dataclass
class _Context:
    receiver: Receiver
    second: Receiver | None
    second_missing: str
    secret: str
    probe: Probe | None
    probe_event: str
    max_body_bytes: int
    settle: float
    probe_works: bool = False  # the probe was seen to count an authentic delivery
    probe_dead: bool = False  # ... or seen not to, so later rules need not wait for it

    # -------------------------------------------------------------- deliveries

    def envelope(self, event_type: str | None = None, **overrides: Any) -> dict[str, Any]:
        return sample_event(event_type or self.probe_event, **overrides)

    def signed(self, envelope: Mapping[str, Any] | bytes) -> tuple[bytes, dict[str, str]]:
        return signed_request(envelope, self.secret)

    def post(
        self, body: bytes, headers: Mapping[str, str], receiver: Receiver | None = None
    ) -> httpx.Response:
        try:
            return (receiver or self.receiver).post(body, headers)
        except TargetError as exc:
            raise _Failed(str(exc)) from None

    def post_until_settled(
        self, body: bytes, headers: Mapping[str, str], receiver: Receiver | None = None
    ) -> list[int]:
        """POST; while the answer is 409 (busy elsewhere) retry shortly, as Commet would."""
        statuses = [self.post(body, headers, receiver).status_code]
        while statuses[-1] == 409 and len(statuses) <= _BUSY_RETRIES:
            time.sleep(0.1)
            statuses.append(self.post(body, headers, receiver).status_code)
        return statuses

    # -------------------------------------------------------------- the probe

    def need_probe(self) -> Probe:
        if self.probe_dead:
            raise self.unmoved_probe()
        if self.probe is None:
            raise _NotChecked(
                "needs an effect probe: a callable returning how many times your "
                f"{self.probe_event} handler's effect happened (--probe module:function), "
                "or a URL answering that count (--probe-url)."
            )
        return self.probe

    def count(self) -> int:
        probe = self.need_probe()
        try:
            return int(probe())
        except Exception as exc:
            raise _NotChecked(f"the effect probe raised {type(exc).__name__}: {exc}") from None

    def wait_for(self, expected: int) -> int:
        """Poll the probe until it reaches ``expected`` (or a few seconds pass)."""
        deadline = time.monotonic() + max(_POSITIVE_WAIT, self.settle)
        current = self.count()
        while current < expected and time.monotonic() < deadline:
            time.sleep(0.05)
            current = self.count()
        return current

    def settled_count(self) -> int:
        """The count once effects that should *not* happen have had time to show."""
        if self.settle:
            time.sleep(self.settle)
        return self.count()

    def unmoved_probe(self) -> _NotChecked:
        self.probe_dead = not self.probe_works
        return _NotChecked(
            f"the effect probe did not move for an authentic {self.probe_event} delivery "
            f"(answered 2xx), so it cannot show whether a handler ran: make the probe count "
            f"what your {self.probe_event} handler does, or name the event type it counts "
            "(--probe-event). If the effect shows up later (a queue), raise --settle."
        )


@dataclass(frozen=True)
class Rule:
    """One rule of the suite."""

    id: str
    title: str
    check: Callable[[_Context], str]


def _status_list(statuses: Sequence[int]) -> str:
    return " then ".join(str(s) for s in statuses)


def _is_2xx(status: int) -> bool:
    return 200 <= status < 300


def _wrong_route(status: int) -> str | None:
    if status in (404, 405):
        return (
            f"answered {status}: nothing accepts POST there. Check the URL, or the --path "
            "the receiver is mounted at."
        )
    return None


# ------------------------------------------------------------------ the rules


def _forged_signature_rejected(ctx: _Context) -> str:
    envelope = ctx.envelope()
    forged_body, forged_headers = signed_request(envelope, "whsec_" + secrets.token_hex(16))
    _, unsigned_headers = ctx.signed(envelope)
    del unsigned_headers["X-Commet-Signature"]
    tries = {
        "signed with another secret": ctx.post(forged_body, forged_headers).status_code,
        "without a signature": ctx.post(forged_body, unsigned_headers).status_code,
    }
    wrong = {label: status for label, status in tries.items() if status != 403}
    if not wrong:
        return "deliveries signed with another secret or not signed at all were answered 403."
    label, status = next(iter(wrong.items()))
    route = _wrong_route(status)
    if route:
        raise _Failed(route)
    if _is_2xx(status):
        advice = (
            "the endpoint accepts forged events: verify the signature (Webhooks, or "
            "construct_event) on the raw body before anything else."
        )
    elif status >= 500:
        advice = "the receiver crashed on it: reject a bad signature with 403 instead of raising."
    else:
        advice = "answer 403 for a missing or wrong signature: it tells a forgery from garbage."
    raise _Failed(f"a delivery {label} was answered {status}; {advice}")


def _forged_signature_runs_nothing(ctx: _Context) -> str:
    before = ctx.count()
    envelope = ctx.envelope()
    forged_body, forged_headers = signed_request(envelope, "whsec_" + secrets.token_hex(16))
    ctx.post(forged_body, forged_headers)
    after = ctx.settled_count()
    if after != before:
        raise _Failed(
            f"a forged {ctx.probe_event} delivery ran your handler (the probe went from "
            f"{before} to {after}): nothing may run before the signature is verified."
        )
    body, headers = ctx.signed(envelope)
    status = ctx.post(body, headers).status_code
    if not _is_2xx(status):
        raise _NotChecked(
            f"the authentic {ctx.probe_event} delivery that shows the probe works was "
            f"answered {status}, so 'no handler ran' cannot be told from 'no handler runs'."
        )
    if ctx.wait_for(before + 1) < before + 1:
        raise ctx.unmoved_probe()
    ctx.probe_works = True
    return (
        f"a forged {ctx.probe_event} left the probe at {before}; the same event, "
        "correctly signed, moved it by one."
    )


def _unusual_json(value: Any) -> Any:
    """``value`` with every object's keys in reverse order."""
    if isinstance(value, dict):
        return {k: _unusual_json(v) for k, v in reversed(list(value.items()))}
    if isinstance(value, list):
        return [_unusual_json(v) for v in value]
    return value


def _raw_body_verified(ctx: _Context) -> str:
    envelope = ctx.envelope(organization_id="org_d\u00e9mo")
    text = json.dumps(
        _unusual_json(envelope), indent="\t", separators=(" ,", " :  "), ensure_ascii=True
    )
    body = (" " + text + "\n").encode("ascii")
    status = ctx.post(*ctx.signed(body)).status_code
    if _is_2xx(status):
        return (
            "a correctly signed body with unusual but valid JSON (tabs, spaces around ':' "
            "and ',', keys in reverse order, \\u escapes) was accepted."
        )
    route = _wrong_route(status)
    if route:
        raise _Failed(route)
    shape = (
        "A correctly signed body with unusual but valid JSON formatting (tab indentation, "
        "spaces around ':' and ',', keys in reverse order, \\u escapes) "
        f"was answered {status}"
    )
    if status == 403:
        raise _Failed(
            f"{shape}: the bytes verified were not the bytes sent. Something parsed and "
            "re-encoded the JSON before verification (a body-parsing middleware, or "
            "request.json() / get_json() turned back into bytes). Hand the raw request "
            "body, untouched, to the verification (the adapters of commet_webhooks do)."
        )
    if status == 400:
        raise _Failed(
            f"{shape}: it was taken for an invalid payload. The body reached the parser "
            "changed (a middleware rewrote it), or the parser rejects valid JSON."
        )
    raise _Failed(f"{shape}; any valid JSON Commet signs must be answered 2xx.")


def _every_event_type_accepted(ctx: _Context) -> str:
    refused: dict[str, int] = {}
    for name in EVENT_TYPES:
        status = ctx.post(*ctx.signed(sample_event(name))).status_code
        if not _is_2xx(status):
            refused[name] = status
    total = len(EVENT_TYPES)
    if not refused:
        return f"an authentic sample of each of the {total} event types was answered 2xx."
    listed = ", ".join(f"{name} -> {status}" for name, status in refused.items())
    route = _wrong_route(next(iter(refused.values())))
    if route and len(refused) == total:
        raise _Failed(route)
    raise _Failed(
        f"{len(refused)} of {total} authentic events were not answered 2xx: {listed}. "
        "Commet retries each one, and three failing events in a row disable the endpoint. "
        "Look for a handler that raises on that event's sample data (with "
        "retry_on_handler_error=True it answers 500), or code that rejects event types it "
        "does not expect."
    )


def _unknown_event_type_accepted(ctx: _Context) -> str:
    envelope = sample_event(_UNKNOWN_EVENT_TYPE, data={"note": "an event type added later"})
    status = ctx.post(*ctx.signed(envelope)).status_code
    if _is_2xx(status):
        return f"an authentic event of a type nobody handles ({_UNKNOWN_EVENT_TYPE}) got 2xx."
    raise _Failed(
        f"an authentic event of an unknown type ({_UNKNOWN_EVENT_TYPE}) was answered "
        f"{status}. Commet adds event types over time; answer 2xx to the ones you do not "
        "handle, or each is retried and can get the endpoint disabled."
    )


def _oversized_body_rejected(ctx: _Context) -> str:
    limit = ctx.max_body_bytes
    envelope = ctx.envelope()
    base = len(json.dumps(envelope, separators=(",", ":")).encode())
    padding = "x" * max(0, limit + 1 - base - len(',"conformancePadding":""'))
    envelope["data"]["conformancePadding"] = padding
    body = json.dumps(envelope, separators=(",", ":")).encode()
    try:
        status = ctx.receiver.post_alone(body, ctx.signed(body)[1]).status_code
    except TargetError as exc:
        raise _Failed(
            f"a {len(body)}-byte body got no answer ({exc}); answer 413 instead of dropping "
            "the connection, so the sender knows why."
        ) from None
    if status == 413:
        return f"a signed {len(body)}-byte body (limit {limit} + 1) was answered 413."
    if _is_2xx(status):
        raise _Failed(
            f"a signed {len(body)}-byte body was accepted ({status}). Set a body size limit "
            "(Webhooks(max_body_bytes=...)) so a huge body cannot tie up a worker; if yours is "
            f"deliberately above {limit} bytes, give the suite your limit (--max-body-bytes)."
        )
    raise _Failed(
        f"a signed {len(body)}-byte body, over the {limit}-byte limit, was answered {status}; "
        "answer 413 (checked before verifying, so no time goes into hashing it)."
    )


def _duplicate_acknowledged(ctx: _Context) -> str:
    body, headers = ctx.signed(ctx.envelope())
    first = ctx.post(body, headers).status_code
    second = ctx.post_until_settled(body, headers)
    if _is_2xx(first) and _is_2xx(second[-1]):
        return f"the same delivery sent twice was answered {first}, then {_status_list(second)}."
    route = _wrong_route(first)
    if route:
        raise _Failed(route)
    if not _is_2xx(first):
        raise _Failed(
            f"the first delivery of an authentic {ctx.probe_event} was answered {first}; it "
            "must be 2xx (see every-event-type-accepted)."
        )
    raise _Failed(
        f"a second delivery of an event already handled was answered {_status_list(second)}. "
        "Commet resends events (retries, redelivery); answer 2xx to a duplicate without "
        "running the handlers again, or Commet keeps retrying it."
    )


def _duplicate_runs_once(ctx: _Context) -> str:
    before = ctx.count()
    body, headers = ctx.signed(ctx.envelope())
    first = ctx.post(body, headers).status_code
    if not _is_2xx(first):
        raise _NotChecked(f"the first delivery was answered {first}: nothing to repeat.")
    if ctx.wait_for(before + 1) < before + 1:
        raise ctx.unmoved_probe()
    ctx.probe_works = True
    statuses = ctx.post_until_settled(body, headers)
    after = ctx.settled_count()
    if after == before + 1:
        return f"the same {ctx.probe_event} delivered twice had its effect once."
    raise _Failed(
        f"the same {ctx.probe_event} (same id, same bytes) delivered twice had its effect "
        f"{after - before} times (second answer {_status_list(statuses)}). Pass an "
        "idempotency_store to Webhooks (SQLiteStore, RedisStore or PostgresStore, shared by "
        "every worker), or make the handler idempotent on event.id."
    )


def _concurrent_duplicates_run_once(ctx: _Context) -> str:
    if ctx.second is None:
        raise _NotChecked(ctx.second_missing)
    before = ctx.count()
    body, headers = ctx.signed(ctx.envelope())
    receivers = (ctx.receiver, ctx.second)
    try:
        futures = [r.submit(body, headers) for r in receivers for _ in range(2)]
        first = [f.result(ctx.receiver.timeout + 1).status_code for f in futures]
    except TargetError as exc:
        raise _Failed(str(exc)) from None
    final = list(first)
    for i, status in enumerate(first):
        if status == 409:  # busy in the other instance: Commet retries later
            final[i] = ctx.post_until_settled(body, headers, receivers[i // 2])[-1]
    refused = [s for s in final if not _is_2xx(s)]
    if not ctx.probe_works:
        ctx.wait_for(before + 1)
    after = ctx.settled_count()
    answers = f"answers {first}" + (f", after retrying 409s {final}" if final != first else "")
    if refused:
        raise _Failed(
            f"four simultaneous deliveries of one event, two to each instance, did not all "
            f"end in 2xx ({answers}). A duplicate must be answered 2xx, and an event busy in "
            "another worker 409 (retry later)."
        )
    if after == before + 1:
        return f"four simultaneous deliveries to two instances: one effect ({answers})."
    if after == before and not ctx.probe_works:
        raise ctx.unmoved_probe()
    if after == before:
        raise _Failed(
            f"four simultaneous deliveries of one event were acknowledged ({answers}) but the "
            "effect never happened: the event is lost. A claim must only be answered "
            "'duplicate' once its handlers completed."
        )
    raise _Failed(
        f"four simultaneous deliveries of one event, two to each of two app instances, had "
        f"its effect {after - before} times ({answers}). The deduplication lives in one "
        "process (MemoryStore, a dict, a local cache), or checks then acts without a lock. "
        "Use a store every worker shares and that claims atomically: SQLiteStore on a "
        "shared file, RedisStore or PostgresStore."
    )


def _crash_is_retried(ctx: _Context) -> str:
    before = ctx.count()
    envelope = ctx.envelope()
    envelope[CRASH_MARKER] = True
    body, headers = ctx.signed(envelope)
    first = ctx.post(body, headers).status_code
    if _is_2xx(first):
        after = ctx.wait_for(before + 1)
        if after == before and not ctx.probe_works:
            raise ctx.unmoved_probe()
        if after > before:
            raise _NotChecked(
                f"your {ctx.probe_event} handler ran to the end, so it does not call the crash "
                "hook. Add `simulate_crash(event)` (from commet_webhooks.conformance) as its "
                "first line: it does nothing for real Commet events and raises once for the "
                "delivery this rule marks."
            )
        raise _Failed(
            f"the {ctx.probe_event} handler crashed and the answer was {first}: Commet "
            "takes a 2xx as delivered and never retries, so this event's effect is lost. Build "
            "Webhooks with retry_on_handler_error=True so a failing handler answers 500."
        )
    if ctx.settled_count() != before:
        raise _NotChecked(
            "the effect happened although the handler crashed: call simulate_crash(event) "
            "before the effect, not after it."
        )
    retry = ctx.post_until_settled(body, headers)
    after = ctx.wait_for(before + 1)
    if _is_2xx(retry[-1]) and after == before and not ctx.probe_works:
        raise ctx.unmoved_probe()
    if _is_2xx(retry[-1]) and after == before + 1:
        return (
            f"the crashed delivery was answered {first}; its retry ({_status_list(retry)}) "
            "ran the handler to the end, once."
        )
    if _is_2xx(retry[-1]):
        raise _Failed(
            f"the crashed delivery was answered {first}, but its retry was answered "
            f"{_status_list(retry)} without running the handler: the failed run left the "
            "event marked as processed. Release the claim when a handler fails (the "
            "library's stores do) and mark it done only after success."
        )
    raise _Failed(
        f"the crashed delivery was answered {first} and its retry {_status_list(retry)}: "
        "the retry must run the handler again and answer 2xx."
    )


RULES: tuple[Rule, ...] = (
    Rule(
        "forged-signature-rejected",
        "a forged or missing signature is answered 403",
        _forged_signature_rejected,
    ),
    Rule(
        "forged-signature-runs-no-handler",
        "a forged delivery runs no handler",
        _forged_signature_runs_nothing,
    ),
    Rule("raw-body-verified", "the raw body is verified exactly as sent", _raw_body_verified),
    Rule(
        "every-event-type-accepted",
        "an authentic event of every registered type is answered 2xx",
        _every_event_type_accepted,
    ),
    Rule(
        "unknown-event-type-accepted",
        "an authentic event of an unknown type is answered 2xx",
        _unknown_event_type_accepted,
    ),
    Rule(
        "oversized-body-rejected",
        "a body over the size limit is answered 413",
        _oversized_body_rejected,
    ),
    Rule(
        "duplicate-acknowledged",
        "a duplicate delivery is answered 2xx",
        _duplicate_acknowledged,
    ),
    Rule(
        "duplicate-runs-once",
        "a duplicate delivery has no second effect",
        _duplicate_runs_once,
    ),
    Rule(
        "concurrent-duplicates-run-once",
        "simultaneous duplicates across two app instances have one effect",
        _concurrent_duplicates_run_once,
    ),
    Rule(
        "crash-is-retried",
        "a handler crash is answered so that the retry runs it again",
        _crash_is_retried,
    ),
)


# ------------------------------------------------------------------ running


def url_probe(url: str, timeout: float = 10.0) -> Probe:
    """A probe that GETs ``url``: a JSON number, ``{"count": n}`` or a plain integer."""

    def probe() -> int:
        answer = httpx.get(url, timeout=timeout)
        answer.raise_for_status()
        try:
            value = answer.json()
        except ValueError:
            return int(answer.text.strip())
        if isinstance(value, dict):
            value = value.get("count")
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected a count from {url}, got {answer.text[:100]!r}")
        return value

    return probe


def _resolve_probe(probe: Probe | str | None) -> Probe | None:
    if probe is None or callable(probe):
        return probe
    if probe.startswith(("http://", "https://")):
        return url_probe(probe)
    loaded = load_object(probe)
    if not callable(loaded):
        raise TargetError(f"the probe {probe} is not callable")
    return loaded  # type: ignore[no-any-return]


def run_suite(
    *targets: Any,
    secret: str,
    path: str = DEFAULT_PATH,
    probe: Probe | str | None = None,
    probe_event: str = DEFAULT_PROBE_EVENT,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    settle: float = 0.0,
    timeout: float = 30.0,
    rules: Sequence[str] | None = None,
    on_result: Callable[[RuleResult], None] | None = None,
) -> Report:
    """Check a receiver against every rule and return the :class:`Report`.

    ``targets``: one or two instances of the receiver, each a URL, an import string
    (``myapp.main:app``) or an app object. With one import string or factory the suite
    builds the second instance itself. ``probe`` counts the effect of your
    ``probe_event`` handler: a callable, ``module:function`` or a URL.
    """
    if not targets:
        raise TypeError("run_suite() needs the receiver: a URL, an import string or an app")
    if len(targets) > 2:
        raise TypeError("run_suite() takes one receiver, or two instances of it")
    if not secret:
        raise ValueError("secret is required: the signing secret your receiver verifies with")
    selected = _select(rules)
    with ExitStack() as stack:
        receivers = []
        for index, target in enumerate(targets):
            if index and isinstance(target, str) and "://" not in target:
                target = load_app(target, fresh=True)  # never the first instance again
            receiver = open_receiver(target, secret=secret, path=path, timeout=timeout)
            receivers.append(stack.enter_context(receiver))
        second, missing = _second_instance(targets, receivers, secret, path, timeout, stack)
        ctx = _Context(
            receiver=receivers[0],
            second=second,
            second_missing=missing,
            secret=secret,
            probe=_resolve_probe(probe),
            probe_event=probe_event,
            max_body_bytes=max_body_bytes,
            settle=settle,
        )
        report = Report(receivers[0].description)
        for rule in selected:
            result = _run_rule(rule, ctx)
            report.results.append(result)
            if on_result is not None:
                on_result(result)
    return report


def _select(rules: Sequence[str] | None) -> list[Rule]:
    if rules is None:
        return list(RULES)
    known = {rule.id: rule for rule in RULES}
    unknown = [r for r in rules if r not in known]
    if unknown:
        raise ValueError(f"unknown rule(s) {unknown}; rules are {list(known)}")
    return [known[r] for r in rules]


def _second_instance(
    targets: Sequence[Any],
    receivers: list[Receiver],
    secret: str,
    path: str,
    timeout: float,
    stack: ExitStack,
) -> tuple[Receiver | None, str]:
    if len(receivers) == 2:
        return receivers[1], ""
    build = factory_for(targets[0])
    if build is None:
        return None, (
            "needs a second instance of the receiver, as a second worker or machine would run "
            "it: pass a second URL (--url twice), an import string (--app module:app) or "
            "a factory, from which the suite builds one."
        )
    try:
        app = build()
    except TargetError as exc:
        return None, f"could not build a second instance of the app: {exc}"
    receiver = open_receiver(app, secret=secret, path=path, timeout=timeout)
    return stack.enter_context(receiver), ""


def _run_rule(rule: Rule, ctx: _Context) -> RuleResult:
    try:
        detail = rule.check(ctx)
        outcome = Outcome.PASSED
    except _Failed as exc:
        detail, outcome = str(exc), Outcome.FAILED
    except _NotChecked as exc:
        detail, outcome = str(exc), Outcome.NOT_CHECKED
    except (TimeoutError, concurrent.futures.TimeoutError):
        detail = (
            f"a delivery got no answer within {ctx.receiver.timeout:g} s; Commet gives up "
            "after 10 s and retries. Answer fast and move slow work to a queue."
        )
        outcome = Outcome.FAILED
    except Exception as exc:  # a surprise must not hide the other rules' results
        detail = f"the check could not run: {type(exc).__name__}: {exc}"
        outcome = Outcome.NOT_CHECKED
    return RuleResult(rule.id, rule.title, outcome, detail)
