"""A stand-in external trainer for tests: reports fixed, known metrics through Pipes."""

from entropy_assets.training.pipes import TrainingReporter

with TrainingReporter() as report:
    texts = report.train_texts()
    assert texts and report.eval_texts(), "the asset must hand over training and evaluation texts"
    for step, loss in enumerate([3.0, 2.5, 2.0, 1.75], start=1):
        report.step(step, loss)
    report.finish(
        first_epoch_loss=2.3125, eval_loss=2.1, tokens=len("".join(texts)), seconds=1.5, scores={"mmlu": 0.41}
    )
