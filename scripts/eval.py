"""Score a trained checkpoint without training: its run's test (or val) split, or another text file.

    python scripts/eval.py run=RUN_DIR                      # the run's best checkpoint, its test split
    python scripts/eval.py ckpt=PATH split=val              # any checkpoint of a run, its val split
    python scripts/eval.py run=RUN_DIR mode=stream batch_size=1        # one stream: the longest context
    python scripts/eval.py run=RUN_DIR split=val mode=windowed window=256   # nanoGPT's protocol
    python scripts/eval.py run=RUN_DIR path=other.txt       # another text, the checkpoint's vocabulary

Prints a `eval:` summary line and adds the result to eval.json beside the checkpoint.
"""

from __future__ import annotations

import logging
import sys

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

USAGE = "python scripts/eval.py (run=RUN_DIR | ckpt=PATH) [key=value ...]"


def help_text() -> str:
    from rnnlab.run.evaluate import EvalConfig
    from rnnlab.settings_help import settings_help

    description = (
        "Score a trained checkpoint without training: its run's test (or val) split, or another text "
        "file. Prints an `eval:` line and adds the result to eval.json beside the checkpoint, one entry "
        "per setting."
    )
    examples = [line.strip() for line in __doc__.splitlines() if line.strip().startswith("python ")]
    return settings_help(EvalConfig, USAGE, description, examples)


def main(argv: list[str] | None = None) -> int:
    from rnnlab.run.evaluate import EvalConfig
    from rnnlab.settings_help import asks_for_help, unknown_setting

    argv = sys.argv[1:] if argv is None else list(argv)
    if asks_for_help(argv):
        print(help_text(), end="")
        return 0
    try:
        cfg = OmegaConf.to_object(
            OmegaConf.merge(OmegaConf.structured(EvalConfig), OmegaConf.from_dotlist(argv))
        )
    except OmegaConfBaseException as error:
        print(unknown_setting(EvalConfig, str(error).splitlines()[0]), file=sys.stderr)
        return 2

    import lightning  # noqa: F401  (its loggers exist before they are quietened)

    from rnnlab.errors import UserError
    from rnnlab.run.console import quiet_libraries
    from rnnlab.run.evaluate import evaluate

    # force: the handlers of whatever ran before in this process (a test calling main) do not hide the lines
    logging.basicConfig(
        level=logging.INFO, format="[%(asctime)s] %(message)s", datefmt="%H:%M:%S", force=True
    )
    quiet_libraries()
    try:
        evaluate(cfg)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
