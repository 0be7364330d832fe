"""`python -m ko_clip train` as tests/ko_clip/test_distributed.py runs it under torchrun, with two additions.

Each process logs every rename it makes to LOG_DIR/renames-RANK.txt: renaming a finished temporary folder or
file into place is how a corpus file, a teacher cache, `init`, `best` and `state` are published. With
SNAPSHOT_STEP, the main process copies the output directory to LOG_DIR/snapshot right after the checkpoint at
that step: the files a run stopped there would leave, to resume from.

    torchrun --standalone --nproc_per_node 2 tests/ko_clip/torchrun_entry.py CONFIG.yaml LOG_DIR [SNAPSHOT_STEP]
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import ko_clip.train
from ko_clip.__main__ import main


def log_renames(log: Path) -> None:
    for name in ("rename", "replace"):
        original = getattr(os, name)

        def logged(source, target, *args, _original=original, **kwargs):
            with log.open("a", encoding="utf-8") as file:
                file.write(f"{Path(target).name}\n")
            return _original(source, target, *args, **kwargs)

        setattr(os, name, logged)


def snapshot_after(step: int, copy_to: Path) -> None:
    save_state = ko_clip.train._save_state

    def saving(accelerator, out: Path, progress: dict) -> None:
        save_state(accelerator, out, progress)
        if progress["step"] == step and accelerator.is_main_process:
            shutil.copytree(out, copy_to)

    ko_clip.train._save_state = saving


if __name__ == "__main__":
    config, log_dir, *snapshot = sys.argv[1:]
    log_renames(Path(log_dir) / f"renames-{os.environ['RANK']}.txt")
    if snapshot:
        snapshot_after(int(snapshot[0]), Path(log_dir) / "snapshot")
    sys.exit(main(["train", "--config", config]))
