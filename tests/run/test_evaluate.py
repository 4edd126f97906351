"""`best_checkpoint`: which checkpoint `eval.py run=RUN_DIR` scores (tests/scripts/test_eval.py scores)."""

from __future__ import annotations

import json
import shutil

from rnnlab.run.evaluate import best_checkpoint


def test_a_copied_run_folder_scores_its_own_best_checkpoint_not_the_one_its_metrics_json_names(tmp_path):
    original = tmp_path / "run"
    (original / "checkpoints").mkdir(parents=True)
    best, newer = (
        original / "checkpoints" / "best-epoch001.ckpt",
        original / "checkpoints" / "best-epoch002.ckpt",
    )
    best.write_bytes(b"best")
    newer.write_bytes(b"newer, not the best")
    (original / "metrics.json").write_text(json.dumps({"best_checkpoint": str(best)}))
    assert best_checkpoint(original) == best

    copy = shutil.copytree(original, tmp_path / "copy")
    assert best_checkpoint(copy) == copy / "checkpoints" / best.name  # metrics.json names the original's

    moved = tmp_path / "moved"
    original.rename(moved)
    (moved / "checkpoints" / best.name).unlink()  # the named one is gone everywhere: the newest best-*
    assert best_checkpoint(moved) == moved / "checkpoints" / newer.name
