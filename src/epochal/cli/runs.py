"""``epochal ls``, ``epochal show`` and ``epochal rm``: list runs, show one, delete some."""

from __future__ import annotations

import argparse

import yaml

from epochal import display
from epochal.cli.common import BUSY_TIMEOUT_S, command, error, location, open_store, positive_int, run_ref, seconds
from epochal.errors import RunStateError
from epochal.keys import MAIN_METRICS
from epochal.store.records import RUN_STATUSES


def add_ls(commands: argparse._SubParsersAction) -> None:
    parser = command(
        commands, "ls", _ls, "list runs with their last metric values",
        "List runs, newest first: id, name, project, status, start (local time), duration and the last\n"
        f"value of up to {MAIN_METRICS} main metrics. Without --keys the metrics are chosen among the listed\n"
        "runs' keys, valid/, val/ and test/ keys first, then train/ keys, losses and accuracies first.",
    )
    parser.add_argument("--project", metavar="P", help="only runs of project P")
    parser.add_argument(
        "--status", metavar="S", choices=RUN_STATUSES, help=f"only runs in status S: {', '.join(RUN_STATUSES)}"
    )
    parser.add_argument("--tag", metavar="T", help="only runs tagged T")
    parser.add_argument("--keys", metavar="KEY", nargs="+", help="show the last values of these keys instead")
    parser.add_argument("--limit", metavar="N", type=positive_int, help="show at most the N newest runs")


def _ls(args: argparse.Namespace) -> int:
    where = location(args)
    filters = ", ".join(f"{name}={value}" for name in ("project", "status", "tag") if (value := getattr(args, name)))
    with open_store(where) as store:
        runs = store.runs(project=args.project, status=args.status, tag=args.tag)[: args.limit]
        summaries = [store.summary(run) for run in runs]
    if not runs:
        print(f"no runs in {where}" + (f" with {filters}" if filters else ""))
        return 0
    print(display.runs_table(runs, summaries, args.keys))
    return 0


def add_show(commands: argparse._SubParsersAction) -> None:
    command(commands, "show", _show, "show a run's record, config, summary and checkpoints", run=True)


def _show(args: argparse.Namespace) -> int:
    """Show everything the store knows about one run: its record (status, times, host, command,
    git commit, versions, tags), its config as YAML, per key the count, last, min, max and best
    value, and its checkpoints.
    """
    with open_store(location(args)) as store:
        record = store.run(args.run)
        summary = store.summary(record)
        checkpoints = store.checkpoints(record)
    print(display.record_fields(record))
    config = record.config.to_dict()
    print("\nconfig:" + (" (none)" if not config else ""))
    if config:
        text = yaml.safe_dump(config, sort_keys=False, default_flow_style=False, allow_unicode=True)
        print(display.indent(text))
    print("\nsummary:" + (" (no values logged)" if not summary else ""))
    if summary:
        print(display.indent(display.summary_table(summary.values())))
    print("\ncheckpoints:" + (" (none)" if not checkpoints else ""))
    if checkpoints:
        print(display.indent(display.checkpoint_table(checkpoints)))
    return 0


def add_rm(commands: argparse._SubParsersAction) -> None:
    parser = command(commands, "rm", _rm, "delete runs and their files")
    parser.add_argument("runs", metavar="RUN", nargs="+", type=run_ref, help="run id, id prefix or name")
    parser.add_argument("--yes", action="store_true", help="really delete them")
    parser.add_argument(
        "--wait", metavar="S", type=seconds, default=BUSY_TIMEOUT_S,
        help=f"seconds to wait while another process writes to the store (default: {BUSY_TIMEOUT_S:g})",
    )


def _rm(args: argparse.Namespace) -> int:
    """Delete runs: their records, series and checkpoints, and each run's folder of files.
    Nothing is deleted without --yes, nor when one of the runs is still running.
    """
    with open_store(location(args), wait=args.wait) as store:
        records = list({record.id: record for record in map(store.run, args.runs)}.values())
        for record in records:
            if record.status == "running":
                raise RunStateError(
                    f"run {record.name!r} ({record.id}) is still running as pid {record.pid} on {record.host}; "
                    "nothing was deleted"
                )
        named = ", ".join(f"{record.name} ({record.id})" for record in records)
        if not args.yes:
            return error(f"would delete {len(records)} run{'s' * (len(records) != 1)}: {named}; add --yes to delete")
        for record in records:
            store.delete(record)
            print(f"deleted {record.name} ({record.id})")
    return 0
