"""``python -m aptrinsic_sandbox``: serve the sandbox until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
import threading

from .data import DataConfig
from .faults import Faults
from .server import Sandbox, SandboxConfig


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m aptrinsic_sandbox",
        description="Serve a local Aptrinsic REST API on 127.0.0.1 and print its base URL. "
        "Control paths (no key needed): GET /_sandbox/stats, /_sandbox/requests, /_sandbox/faults, "
        "/_sandbox/count?endpoint=/v1/events/custom&start=MS&end=MS; POST /_sandbox/faults (JSON), "
        "/_sandbox/reset.",
    )
    p.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: a free one)")
    p.add_argument(
        "--api-key",
        action="append",
        dest="api_keys",
        metavar="KEY",
        help="accepted X-APTRINSIC-API-KEY (repeatable; default: sandbox-key)",
    )
    p.add_argument(
        "--forbidden-key",
        action="append",
        default=[],
        metavar="KEY",
        help="a key that is known but lacks Read permission: answered 403 (repeatable)",
    )
    p.add_argument("--seed", type=int, default=1, help="data seed; the same seed gives the same bytes")
    d = p.add_argument_group("data scale")
    d.add_argument("--users", type=int, default=DataConfig.users)
    d.add_argument("--accounts", type=int, default=DataConfig.accounts)
    d.add_argument(
        "--events-per-day",
        type=int,
        default=DataConfig.events_per_day,
        help="events per day per event type (each day varies 75%%..125%% of it)",
    )
    d.add_argument(
        "--event-weight",
        action="append",
        default=[],
        metavar="TYPE=W",
        help="events per day of TYPE (custom, pageView, session, ...) times W: a skewed mix (repeatable)",
    )
    d.add_argument("--days", type=int, default=DataConfig.days, help="days of events, ending at --end-date")
    d.add_argument(
        "--end-date",
        type=dt.date.fromisoformat,
        default=None,
        help="first day after the data (YYYY-MM-DD, UTC); default: today",
    )
    d.add_argument(
        "--now",
        type=int,
        default=None,
        metavar="EPOCH_MS",
        help="the server's 'now' for event requests without a window (default: the clock)",
    )
    d.add_argument(
        "--extra-custom-attribute",
        default=None,
        metavar="KEY",
        help="add a customAttributes key to every user and account (schema drift)",
    )
    d.add_argument(
        "--seats-as-string",
        action="store_true",
        help="customAttributes.seats becomes a string instead of a number (type drift)",
    )
    f = p.add_argument_group("faults")
    f.add_argument("--rate-429", type=float, default=0.0, help="probability of an injected 429 per request")
    f.add_argument("--burst-429-every", type=int, default=0, help="after every N requests, a burst of 429s")
    f.add_argument("--burst-429-length", type=int, default=0, help="how many 429s in a burst")
    f.add_argument("--retry-after", type=float, default=None, help="Retry-After seconds on injected 429s")
    f.add_argument("--rate-5xx", type=float, default=0.0, help="probability of a 503 per request")
    f.add_argument("--rate-reset", type=float, default=0.0, help="probability of a connection reset mid-body")
    f.add_argument("--rate-malformed", type=float, default=0.0, help="probability of a truncated JSON body")
    f.add_argument("--rate-400", type=float, default=0.0, help="probability of a 400 Bad request per request")
    f.add_argument(
        "--drop-rate",
        type=float,
        default=0.0,
        help="fraction of records left out of pages while totalHits still counts them",
    )
    f.add_argument("--latency-ms", type=float, default=0.0, help="fixed latency per request")
    f.add_argument("--latency-jitter-ms", type=float, default=0.0, help="extra random latency in [0, N)")
    f.add_argument(
        "--rate-cap",
        type=int,
        default=200,
        help="requests per second above which the API answers 429 (0: no cap; real API: ~200)",
    )
    c = p.add_argument_group("changes at the source (valid answers; /_sandbox/count follows them)")
    c.add_argument(
        "--deleted-user",
        action="append",
        default=[],
        metavar="IDENTIFY_ID",
        help="a user erased at the source: none of their events is served (repeatable)",
    )
    c.add_argument(
        "--late-day",
        action="append",
        default=[],
        metavar="YYYY-MM-DD",
        help="a UTC day part of whose events arrive late: not served yet (repeatable)",
    )
    c.add_argument("--late-fraction", type=float, default=0.1, help="the share of a late day's events that is late")
    c.add_argument(
        "--late-after-s",
        type=float,
        default=None,
        help="late events appear this many seconds after start (default: when late_days is cleared over HTTP)",
    )
    h = p.add_argument_group("hostile answers (a misbehaving API or proxy)")
    h.add_argument(
        "--repeat-scroll",
        action="store_true",
        help="answer every scrollId with the first page again and the same scrollId (a scroll that never ends)",
    )
    h.add_argument(
        "--endless-scroll",
        action="store_true",
        help="keep scroll pages full, each with a fresh scrollId, past totalHits (records repeat)",
    )
    h.add_argument(
        "--repeat-records",
        type=int,
        default=0,
        metavar="N",
        help="open each scroll page after the first with the previous page's last N records again",
    )
    h.add_argument(
        "--serve-page-size",
        type=int,
        default=0,
        metavar="N",
        help="list pages hold N records whatever pageSize asks; isLastPage and totalHits stay true to the data",
    )
    h.add_argument(
        "--trickle-bytes-per-s",
        type=float,
        default=0.0,
        metavar="RATE",
        help="send API bodies at RATE bytes/s (headers at once)",
    )
    h.add_argument(
        "--huge-integer",
        default=None,
        metavar="DIGITS",
        help="add the integer field hugeNumber=DIGITS to every listed record (e.g. 123456789012345678901234567890)",
    )
    h.add_argument(
        "--null-field", default=None, metavar="FIELD", help="FIELD is null in the first record of every list page"
    )
    h.add_argument("--string-total-hits", action="store_true", help='send totalHits as a string ("1500")')
    h.add_argument(
        "--lone-surrogate",
        action="store_true",
        help='the first record of every list page gets "note": "\\ud800x" (valid JSON, not valid Unicode)',
    )
    h.add_argument(
        "--echo-key-in-errors", action="store_true", help="401 messages quote the API key the request carried"
    )
    h.add_argument(
        "--event-id-alias",
        action="append",
        default=[],
        metavar="OLD=NEW",
        help="serve eventId NEW in place of OLD (one event id on two days; repeatable)",
    )
    return p


def config_from_args(args: argparse.Namespace) -> SandboxConfig:
    data = DataConfig(
        seed=args.seed,
        users=args.users,
        accounts=args.accounts,
        events_per_day=args.events_per_day,
        event_weights={k: float(w) for k, w in (a.split("=", 1) for a in args.event_weight)},
        days=args.days,
        end_date=args.end_date,
        extra_custom_attribute=args.extra_custom_attribute,
        seats_as_string=args.seats_as_string,
    )
    faults = Faults(
        rate_429=args.rate_429,
        burst_429_every=args.burst_429_every,
        burst_429_length=args.burst_429_length,
        retry_after=args.retry_after,
        rate_5xx=args.rate_5xx,
        rate_reset=args.rate_reset,
        rate_malformed=args.rate_malformed,
        rate_400=args.rate_400,
        drop_rate=args.drop_rate,
        latency_ms=args.latency_ms,
        latency_jitter_ms=args.latency_jitter_ms,
        rate_cap=args.rate_cap,
        deleted_users=tuple(args.deleted_user),
        late_days=tuple(args.late_day),
        late_fraction=args.late_fraction,
        late_after_s=args.late_after_s,
        repeat_scroll=args.repeat_scroll,
        endless_scroll=args.endless_scroll,
        repeat_records=args.repeat_records,
        serve_page_size=args.serve_page_size,
        trickle_bytes_per_s=args.trickle_bytes_per_s,
        huge_integer=args.huge_integer,
        null_field=args.null_field,
        string_total_hits=args.string_total_hits,
        lone_surrogate=args.lone_surrogate,
        echo_key_in_errors=args.echo_key_in_errors,
        event_id_alias=dict(a.split("=", 1) for a in args.event_id_alias) or None,
    )
    return SandboxConfig(
        data=data,
        faults=faults,
        api_keys=tuple(args.api_keys or ["sandbox-key"]),
        forbidden_keys=tuple(args.forbidden_key),
        port=args.port,
        now_ms=args.now,
    )


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    with Sandbox(config_from_args(args)) as sandbox:
        print(sandbox.base_url, flush=True)
        stop.wait()
    print("sandbox stopped", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
