"""An external trainer launched by the ``training_run`` asset through Dagster Pipes.

It stands in for an Axolotl, LLaMA-Factory or plain training script: it reads the subset the asset hands it,
trains (here: the built-in byte-level transformer, so that the example runs anywhere), and reports each step's
loss and its final metrics back. Configure a pipeline with ``trainer: pipes`` and
``trainer_command: [python, examples/pipes_trainer.py]``.
"""

import os
import sys

from entropy_assets.training.builtin import BuiltinTrainerConfig, train_builtin
from entropy_assets.training.pipes import TrainingReporter


def main() -> int:
    with TrainingReporter() as report:
        if os.environ.get("ENTROPY_EXAMPLE_CRASH"):
            raise RuntimeError("the example trainer was asked to crash (ENTROPY_EXAMPLE_CRASH is set)")
        steps = int(report.extras.get("steps", 50))
        config = BuiltinTrainerConfig(seed=int(report.extras.get("seed", 0)), max_steps=steps)
        metrics = train_builtin(report.train_texts(), report.eval_texts(), config, on_step=report.step)
        report.finish(
            first_epoch_loss=metrics.first_epoch_loss,
            eval_loss=metrics.eval_loss,
            tokens=metrics.tokens,
            seconds=metrics.seconds,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
