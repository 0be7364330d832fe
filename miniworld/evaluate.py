"""Generate an image for every prompt of a CSV and score it with the miniworld evaluator.

    python -m miniworld.evaluate PROMPTS.csv [--encoder teacher|korean] [--refiner/--no-refiner] [--seeds N] [--json]
    python -m miniworld.evaluate --probe DIR [--json]

PROMPTS.csv has the columns prompt,color,shape,size,position,background (see `miniworld.prompts`). Prints
per-attribute accuracy, the all-attributes-correct rate and the mean CLIP image–text score; `--json` prints one
object with the keys all_correct, per_attribute, clip_score and n.

The documented entry point only: the images come from the product's own generation path (`demo.evaluation`
drives the app's `Generator`), so every quality number describes the code users run.
"""

import sys

from demo.evaluation import main

if __name__ == "__main__":
    sys.exit(main())
