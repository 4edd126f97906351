"""Compare runs: a results table (seeds pooled as mean ± sd), as Markdown and CSV, and plots.

    python scripts/compare.py outputs/multirun/2026-11-23/12-00-00 [more run or sweep dirs] [--out DIR]
        [--metric val_ppl] [--descending] [--tag baseline] [--format md|csv] [--each]

Runs that differ only in `seed` are one row: every metric's mean ± sd and n. What scripts/eval.py
measured of a run's best checkpoint is a column too (`val_loss_windowed64`, `val_loss_stream_b1`,
...). Finished, failed and
still-running runs are all listed (a run without metrics.json shows what its TensorBoard events hold
so far); a run with a damaged file is listed as `unreadable: FILE: REASON` and left out. Writes
comparison.md, comparison.csv, the validation curves (<monitor>.png: a seed group as its mean line
with an sd band) and a bar chart of the final metric with sd error bars (<metric>_final.png) into
--out (default: the first directory given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.compare.comparison import find_runs, load_runs, monitor_of
from rnnlab.compare.group_plots import plot_curves, plot_final
from rnnlab.compare.seed_groups import (
    csv_text,
    group_rows,
    group_runs,
    markdown,
    metric_columns,
    sort_groups,
    with_tag,
    write_tables,
)
from rnnlab.readback import Unreadable


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python scripts/compare.py", description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories or sweep directories")
    parser.add_argument(
        "--metric", default=None, help="column to sort by (default: the runs' monitored metric, best first)"
    )
    parser.add_argument("--descending", action="store_true", help="sort highest first")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        help="only runs with this tag (tags=[...]); repeat for all of several",
    )
    parser.add_argument(
        "--format", choices=("md", "csv"), default="md", help="what to print (both are written)"
    )
    parser.add_argument("--each", action="store_true", help="one row per run: do not pool seeds")
    parser.add_argument(
        "--columns",
        default=None,
        help="the columns to print, comma-separated (e.g. run,n,val_ppl,test_ppl,tokens_per_s); "
        "the files written keep them all",
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="where to write the files (default: the first directory given)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    try:
        run_dirs = find_runs(args.dirs)
    except FileNotFoundError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    if not run_dirs:
        print(
            f"error: no run directories (with .hydra/) under {', '.join(map(str, args.dirs))}",
            file=sys.stderr,
        )
        return 2

    readable, unreadable = load_runs(run_dirs)
    for error in unreadable:  # a damaged run is listed and left out; the others are compared
        print(error, file=sys.stderr)
    if not readable:
        print(f"error: none of the {len(run_dirs)} runs can be read (see above)", file=sys.stderr)
        return 2
    runs = with_tag(readable, args.tag)
    if not runs:
        print(f"error: none of the {len(readable)} runs has the tags {', '.join(args.tag)}", file=sys.stderr)
        return 2
    try:
        monitor, mode = monitor_of(runs)
    except Unreadable as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    metric = args.metric or monitor.replace("/", "_")
    highest_first = args.descending or (args.metric is None and mode == "max")
    groups = sort_groups(group_runs(runs, by_seed=not args.each), metric, highest_first)
    rows = group_rows(groups, metric_columns(runs))
    out = args.out or args.dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    tables = write_tables(rows, out)
    curves = out / f"{monitor.replace('/', '_')}.png"
    plot_curves(groups, monitor, curves)
    bars = out / f"{metric}_final.png"
    plot_final(groups, metric, bars)
    shown = rows
    if args.columns:
        wanted = [name.strip() for name in args.columns.split(",") if name.strip()]
        unknown = [name for name in wanted if name not in rows[0]]
        if unknown:
            print(
                f"error: --columns {','.join(unknown)}: no such column; the columns are "
                f"{', '.join(n for n in rows[0] if not n.endswith('_sd'))}",
                file=sys.stderr,
            )
            return 2
        shown = [{k: row[k] for name in wanted for k in (name, f"{name}_sd") if k in row} for row in rows]
    print(markdown(shown) if args.format == "md" else csv_text(shown), end="")
    left_out = f" ({len(unreadable)} unreadable, left out)" if unreadable else ""
    wrote = ", ".join(map(str, (*tables, curves, bars)))
    print(f"{len(runs)} runs in {len(groups)} rows{left_out}; wrote {wrote}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
