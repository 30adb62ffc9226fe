"""The sentinelle command.

    sentinelle demo             the whole pipeline on a replay of real mail (embedded services)
    sentinelle worker           a Faust worker running every stage (SENTINELLE_KAFKA__BOOTSTRAP)
    sentinelle topics create    create every topic of the catalogue
    sentinelle replay           produce the bundled replay to the outbound topic
    sentinelle holds list|release|reject
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kafka.errors import KafkaError

from streams.settings import Settings, get_settings

if TYPE_CHECKING:
    from streams.replay.events import ReplayItem


def _cmd_worker(args: argparse.Namespace) -> int:
    from streams.app import create_pipeline

    settings = get_settings()
    pipeline = create_pipeline(settings)
    if settings.metrics_port:
        from prometheus_client import start_http_server

        start_http_server(settings.metrics_port, settings.metrics_host,
                          registry=pipeline.metrics.registry)
    # Faust parses its own argv; --without-web keeps its web server off 0.0.0.0:6066.
    sys.argv = ["sentinelle", "worker", "--loglevel", args.loglevel, "--without-web"]
    pipeline.app.main()
    return 0


def _cmd_topics(args: argparse.Namespace) -> int:
    from streams.topics import create_topics, topic_specs

    settings = get_settings()
    specs = topic_specs(settings)
    create_topics(settings.kafka.bootstrap, specs)
    for spec in specs:
        print(f"{spec.name}\tpartitions={spec.partitions}\treplication={spec.replication}\t"
              f"{spec.configs.get('cleanup.policy')}")
    return 0


def _load_items(args: argparse.Namespace) -> list[ReplayItem]:
    from streams.replay.events import load_replay

    path = Path(args.file) if getattr(args, "file", None) else None
    return load_replay(path) if args.max_messages is None else load_replay(
        path, max_messages=args.max_messages)


def _speedup(args: argparse.Namespace, items: list[ReplayItem]) -> float:
    from streams.replay.pacing import speedup_for

    if args.speedup is not None:
        return float(args.speedup)
    return speedup_for(items, args.duration)


def _cmd_replay(args: argparse.Namespace) -> int:
    from streams.demo import produce

    settings = get_settings()
    items = _load_items(args)
    produce(settings.kafka.bootstrap, settings.topics.outbound, items, _speedup(args, items),
            lambda m: print(m, file=sys.stderr, flush=True), settings.kafka.max_record_bytes)
    return 0


def _cmd_demo(args: argparse.Namespace) -> int:
    from streams.demo import run_pipeline
    from streams.report import render_summary

    items = _load_items(args)
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    run_dir = Path(args.run_dir) if args.run_dir else Path("run") / f"demo-{stamp}"
    result = run_pipeline(items, run_dir, speedup=_speedup(args, items), timeout_s=args.timeout)
    print(render_summary(result.ledger, result.scenarios, result.produced, result.seconds))
    print(f"\nDelivered mail is in {result.smtp_dir}/mail; worker logs in {run_dir}.")
    missed = [s for s in result.scenarios if not s.caught]
    complete = result.ledger.accounted() >= result.produced
    return 0 if complete and not missed and not result.ledger.delivered_twice() else 1


def _cmd_holds(args: argparse.Namespace) -> int:
    from streams.holdctl import HoldNotFound, lift_hold, read_holds

    settings: Settings = get_settings()
    if args.action == "list":
        holds = read_holds(settings)
        shown = [h for h in holds.values() if args.all or h["state"] == "active"]
        if args.json:
            print(json.dumps(shown, indent=2))
        for hold in sorted(shown, key=lambda h: h["at"]) if not args.json else []:
            print(f"{hold['account_id']}\t{hold['state']}\t{hold['reason']}\t{hold['at']}\t"
                  f"{hold['hold_id']}")
        if not shown and not args.json:
            print("no active holds", file=sys.stderr)
        return 0
    if not args.account:
        print("error: give the sender's account id", file=sys.stderr)
        return 2
    state = "released" if args.action == "release" else "rejected"
    try:
        record = lift_hold(settings, args.account, state, args.actor, args.note)
    except HoldNotFound as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{record['hold_id']} {state} by {record['actor']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sentinelle", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def replay_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--file", help="replay file (default: the bundled demo replay)")
        p.add_argument("--max-messages", type=int, default=None,
                       help="a smaller replay that keeps every scenario")
        p.add_argument("--speedup", type=float, default=None,
                       help="time acceleration factor (0 = as fast as possible)")
        p.add_argument("--duration", type=float, default=60.0,
                       help="without --speedup, accelerate so the replay lasts this many seconds")

    demo = sub.add_parser("demo", help="run the whole pipeline on a replay of real mail")
    replay_options(demo)
    demo.add_argument("--run-dir",
                      help="where logs and delivered mail go (default: run/demo-<time>)")
    demo.add_argument("--timeout", type=float, default=600.0,
                      help="seconds to wait for every outcome after the replay")
    demo.set_defaults(func=_cmd_demo)

    worker = sub.add_parser("worker", help="run a Faust worker with every stage")
    worker.add_argument("--loglevel", default="info",
                        help="Faust log level: debug, info, warning, error (default: info)")
    worker.set_defaults(func=_cmd_worker)

    topics = sub.add_parser("topics", help="manage the topic catalogue")
    topics.add_argument("action", choices=["create"])
    topics.set_defaults(func=_cmd_topics)

    replay = sub.add_parser("replay", help="produce the replay to the outbound topic")
    replay_options(replay)
    replay.set_defaults(func=_cmd_replay)

    holds = sub.add_parser("holds", help="list, release or reject holds")
    holds.add_argument("action", choices=["list", "release", "reject"])
    holds.add_argument("account", nargs="?", help="sender account id (release, reject)")
    holds.add_argument("--actor", default="operator", help="who decides (audit trail)")
    holds.add_argument("--note", default="", help="why (audit trail)")
    holds.add_argument("--all", action="store_true", help="list lifted holds too")
    holds.add_argument("--json", action="store_true", help="machine-readable output")
    holds.set_defaults(func=_cmd_holds)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")
    # kafka-python logs every reconnection attempt; failures reach the user as one error below.
    logging.getLogger("kafka").setLevel(logging.CRITICAL)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        return _interrupted()
    except Exception as exc:
        from streams.embedded.procs import was_interrupted

        if was_interrupted():
            # Whatever failed after Ctrl-C (a child starting, a client to a stopped broker)
            # failed because of the interrupt: report the interrupt, not a bug.
            return _interrupted()
        if not isinstance(exc, KafkaError):
            raise
        where = "the embedded broker" if args.command == "demo" else (
            f"{get_settings().kafka.bootstrap} (SENTINELLE_KAFKA__BOOTSTRAP)")
        print(f"error: Kafka at {where}: {exc!r}", file=sys.stderr)
        return 1


def _interrupted() -> int:
    print("interrupted; everything started has been stopped", file=sys.stderr)
    return 130

if __name__ == "__main__":
    sys.exit(main())
