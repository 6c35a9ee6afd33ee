"""``epochal sync``: copy runs from one store to another (a local store onto the team's PostgreSQL, or back)."""

from __future__ import annotations

import argparse
import inspect

from epochal.cli.common import open_store, project
from epochal.store.store import Store


def add_sync(commands: argparse._SubParsersAction) -> None:
    parser = commands.add_parser(
        "sync", help="copy runs between stores (a local store, a spool, a team's PostgreSQL)",
        description=inspect.cleandoc(_sync.__doc__ or ""), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("source", metavar="SRC", help="the store to copy from: a directory or a postgresql:// URL")
    parser.add_argument("destination", metavar="DST", help="the store to copy to (created when missing)")
    parser.add_argument("--project", type=project, help="only the runs of this project")
    parser.add_argument("--run", action="append", default=[], metavar="RUN",
                        help="only this run (its id, id prefix or name); may be given several times")
    parser.add_argument("--artifacts", metavar="URL",
                        help="for a PostgreSQL DST: where the runs' files go (s3://bucket/prefix, any fsspec URL, "
                             "or a folder; default $EPOCHAL_ARTIFACTS, else they stay where they are)")
    parser.set_defaults(handler=_sync)


def _sync(args: argparse.Namespace) -> int:
    """Copy runs from SRC to DST: records, configs, every series, checkpoint records, and files.

    Only what DST lacks is sent, so sync can run again at any time: after it was cut short, to ship
    what a training process left in its spool when the team store was down or the process was killed,
    or to keep a laptop's copy of the team's runs current. Either store may be a directory or a
    PostgreSQL URL (postgresql://user:password@host/database). A store of directories (SRC or DST)
    copies files into DST's runs/ folder; a PostgreSQL DST keeps each run's files at --artifacts/<id>,
    or where they already are.

    examples:
      epochal sync ~/.cache/epochal/spool postgresql://ana@db/epochal   ship what a run left spooled
      epochal sync epochal-runs postgresql://ana@db/epochal --artifacts s3://team/epochal
      epochal sync postgresql://ana@db/epochal laptop-copy --project gpt
    """
    from epochal import settings
    from epochal.store import artifacts
    from epochal.store.sync import sync

    where = args.artifacts or settings.artifacts_location()
    if where is not None:
        artifacts.filesystem(where)  # a bad URL or a missing driver stops the command before it copies
    with open_store(args.source) as source, Store(args.destination) as destination:
        report = sync(source, destination, project=args.project, runs=args.run, artifacts_url=where)
    for line in report.skipped:
        print(f"epochal: {line}")
    print(f"synced {report.runs} runs to {destination.where}: {report.chunks} new chunks ({report.points:,} points), "
          f"{report.checkpoints} checkpoint records, {report.files} files")
    return 0
