"""Retrain every embedded model, in order: `python -m miniworld.training all` (or name some stages).

Each stage checkpoints as it goes; rerunning after a kill resumes the diffusion stages where they stopped.
Expect about two hours on two CPU cores.
"""

from __future__ import annotations

import argparse

from miniworld.training import assemble, clip, diffusion, evaluator, vae

STAGES = {
    "evaluator": evaluator.main,
    "clip": clip.main,
    "clip-small": lambda: clip.main(small=True),
    "vae": vae.main,
    "base": lambda: diffusion.main("base"),
    "refiner": lambda: diffusion.main("refiner"),
    "sdxl-base": lambda: diffusion.main("sdxl-base"),
    "assemble": assemble.main,
}

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("stages", nargs="+", choices=["all", *STAGES], help="stages to run, in the order given")
    names = parser.parse_args().stages
    for name in list(STAGES) if "all" in names else names:
        print(f"== {name}")
        STAGES[name]()
