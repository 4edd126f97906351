"""Compare runs: a table sorted by validation perplexity, as Markdown and CSV, and a plot of the curves.

    python scripts/compare.py outputs/multirun/2026-11-23/12-00-00 [more run or sweep dirs] [--out DIR]

Finished, failed and still-running runs are all listed (a run without metrics.json shows what its
TensorBoard events hold so far); a run with a damaged file is listed as `unreadable: FILE: REASON`
and left out. Writes comparison.md, comparison.csv and val_ppl.png into --out
(default: the first directory given).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rnnlab.sweeps.comparison import (
    find_runs,
    load_runs,
    markdown,
    monitor_of,
    plot_curves,
    sort_key,
    table_rows,
    write_csv,
)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories or sweep directories")
    parser.add_argument(
        "--metric", default=None, help="column to sort by (default: the runs' monitored metric, best first)"
    )
    parser.add_argument("--out", type=Path, default=None, help="where to write the files")
    args = parser.parse_args()
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

    runs, unreadable = load_runs(run_dirs)
    for error in unreadable:  # a damaged run is listed and left out; the others are compared
        print(error, file=sys.stderr)
    if not runs:
        print(f"error: none of the {len(run_dirs)} runs can be read (see above)", file=sys.stderr)
        return 2
    monitor, mode = monitor_of(runs)
    metric = args.metric or monitor.replace("/", "_")
    runs.sort(key=sort_key(metric, highest_first=args.metric is None and mode == "max"))
    rows = table_rows(runs)
    out = args.out or args.dirs[0]
    out.mkdir(parents=True, exist_ok=True)
    table = markdown(rows)
    (out / "comparison.md").write_text(table)
    write_csv(rows, out / "comparison.csv")
    figure = out / f"{monitor.replace('/', '_')}.png"
    plot_curves(runs, figure)
    print(table)
    left_out = f" ({len(unreadable)} unreadable, left out)" if unreadable else ""
    print(f"{len(runs)} runs{left_out}; wrote {out / 'comparison.md'}, {out / 'comparison.csv'}, {figure}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
