"""A stand-in external trainer for tests that, like a real one fetching a model, reads the Hub token from HF_TOKEN.

It reports whether the token reached it (score ``token_seen``) and nothing of the token itself.
"""

import os

from entropy_assets.training.pipes import TrainingReporter

with TrainingReporter() as report:
    texts = report.train_texts()
    token = os.environ.get("HF_TOKEN", "")
    for step, loss in enumerate([3.0, 2.5, 2.0], start=1):
        report.step(step, loss)
    report.finish(
        first_epoch_loss=2.5,
        eval_loss=2.2,
        tokens=len("".join(texts)),
        seconds=1.0,
        scores={"token_seen": float(token.startswith("hf_"))},
    )
