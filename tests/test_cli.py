"""The command line, end to end on real files: drop-in selection, scores, ratios, and every bad-input path."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from entropy_assets import cli
from entropy_assets.selection import methods
from entropy_assets.selection.base import tiebreak_order
from entropy_assets.selection.reference import reference_zip_select


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any] | None, str]:
    status = cli.main(list(argv))
    captured = capsys.readouterr()
    return status, json.loads(captured.out) if status == 0 else None, captured.err


@pytest.fixture
def sharegpt_pool(raw_dir: Path, tmp_path: Path) -> Path:
    """500 real ShareGPT chats, as the published program reads them."""
    path = tmp_path / "pool.json"
    records = json.loads((raw_dir / "fastchat_dummy_conversation.json").read_text(encoding="utf-8"))
    path.write_text(json.dumps(records), encoding="utf-8")
    return path


def test_select_is_a_drop_in_for_the_published_program(capsys, sharegpt_pool: Path, tmp_path: Path) -> None:
    save = tmp_path / "selected.json"
    status, summary, _ = run(
        capsys,
        "select", "--data_path", str(sharegpt_pool), "--save_path", str(save),
        "--budget", "40", "--k1", "200", "--k2", "30", "--k3", "10", "--n_jobs", "2", "--mode", "paper",
    )  # fmt: skip
    assert status == 0
    selected = json.loads(save.read_text(encoding="utf-8"))
    records = json.loads(sharegpt_pool.read_text(encoding="utf-8"))
    expected = reference_zip_select(records, 40, 200, 30, 10, tiebreak=tiebreak_order(len(records), 0))
    assert selected == [records[p] for p in expected]
    assert summary is not None and summary["selected"] == 40 and summary["method"] == "zip_paper"


def test_select_writes_provenance_and_a_subset_in_the_input_format(capsys, raw_dir: Path, tmp_path: Path) -> None:
    source = raw_dir / "pretrain_c4_demo.jsonl"
    save = tmp_path / "out" / "subset.jsonl"
    status, summary, _ = run(
        capsys,
        "select", "--data_path", str(source), "--save_path", str(save), "--budget", "25",
        "--k1", "100", "--k2", "50", "--k3", "10", "--provenance", str(tmp_path / "prov.parquet"),
    )  # fmt: skip
    assert status == 0 and summary is not None
    originals = {line for line in source.read_text(encoding="utf-8").splitlines() if line.strip()}
    written = save.read_text(encoding="utf-8").splitlines()
    assert len(written) == 25
    assert all(json.loads(line)["text"] for line in written)
    assert {json.dumps(json.loads(line), ensure_ascii=False) for line in written} <= {
        json.dumps(json.loads(line), ensure_ascii=False) for line in originals
    }
    provenance = pl.read_parquet(tmp_path / "prov.parquet")
    assert provenance.height == 25 and provenance["marginal_bytes"].min() > 0
    assert summary["input"]["records_read"] == 300


@pytest.mark.parametrize("method", ["random", "ratio", "longest", "dedup"])
def test_select_runs_every_baseline(capsys, raw_dir: Path, tmp_path: Path, method: str) -> None:
    save = tmp_path / "subset.json"
    status, summary, _ = run(
        capsys,
        "select", "--data_path", str(raw_dir / "llamafactory_glaive_toolcall_en_demo.json"),
        "--save_path", str(save), "--budget", "50", "--method", method,
    )  # fmt: skip
    assert status == 0 and summary is not None and summary["method"] == method
    assert len(json.loads(save.read_text(encoding="utf-8"))) == 50


def test_score_writes_per_sample_ratios(capsys, raw_dir: Path, tmp_path: Path) -> None:
    output = tmp_path / "scores.parquet"
    status, summary, _ = run(
        capsys, "score", str(raw_dir / "self_instruct_user_oriented_instructions.jsonl"), "-o", str(output),
        "--compressor", "zlib",
    )  # fmt: skip
    assert status == 0 and summary is not None
    scores = pl.read_parquet(output)
    assert scores.height == 252
    first = scores.row(0, named=True)
    assert first["ratio"] == pytest.approx(first["n_bytes"] / first["compressed_bytes"])
    assert summary["mean_ratio"] == pytest.approx(scores["ratio"].mean(), abs=1e-4)


def test_ratio_of_a_dataset_matches_zlib_over_its_canonical_text(capsys, raw_dir: Path) -> None:
    status, summary, _ = run(
        capsys, "ratio", str(raw_dir / "fastchat_vicuna_bench_questions.jsonl"), "--compressor", "zlib"
    )
    assert status == 0 and summary is not None
    assert summary["samples"] == 80
    assert 1.5 < summary["ratio"] < 4
    # Vicuna questions have their ids and categories stripped: the text is smaller than the file.
    assert summary["bytes"] < (raw_dir / "fastchat_vicuna_bench_questions.jsonl").stat().st_size


def test_malformed_json_line_is_an_error_naming_file_and_line(capsys, tmp_path: Path, raw_dir: Path) -> None:
    lines = (raw_dir / "pretrain_c4_demo.jsonl").read_text(encoding="utf-8").splitlines()[:20]
    lines[6] = lines[6][:-10]  # truncated record on line 7
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n", encoding="utf-8")
    save = tmp_path / "out.json"
    status, _, err = run(capsys, "select", "--data_path", str(bad), "--save_path", str(save), "--budget", "5")
    assert status == 2
    assert "bad.jsonl" in err and "line 7" in err
    assert not save.exists()

    status, summary, _ = run(
        capsys, "select", "--data_path", str(bad), "--save_path", str(save), "--budget", "5", "--skip-malformed"
    )
    assert status == 0 and summary is not None
    assert summary["input"]["dropped"]["malformed"] == 1 and summary["input"]["records_kept"] == 19


def test_empty_samples_are_dropped_and_invalid_utf8_is_replaced(capsys, tmp_path: Path) -> None:
    pool = tmp_path / "pool.jsonl"
    rows = [json.dumps({"text": f"sample number {i} about compression"}).encode() for i in range(10)]
    rows += [json.dumps({"text": "   \n\t "}).encode(), json.dumps({"text": ""}).encode()]
    rows.append(b'{"text": "caf\xe9 au lait, broken bytes"}')
    pool.write_bytes(b"\n".join(rows) + b"\n")
    status, summary, _ = run(capsys, "ratio", str(pool))
    assert status == 0 and summary is not None
    assert summary["samples"] == 11
    assert summary["input"]["dropped"]["empty"] == 2
    assert summary["input"]["invalid_utf8"] == 1


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--budget", "501"], "larger than the pool"),
        (["--budget", "0"], "budget"),
        (["--budget", "-3"], "budget"),
        (["--budget", "10", "--k1", "50", "--k2", "100"], "k1 >= k2 >= k3"),
        (["--budget", "10", "--k2", "5", "--k3", "10"], "k1 >= k2 >= k3"),
        (["--budget", "10", "--k3", "0"], "k3"),
    ],
)
def test_bad_settings_fail_before_any_work(capsys, sharegpt_pool: Path, tmp_path: Path, flags, message) -> None:
    save = tmp_path / "selected.json"
    status, _, err = run(capsys, "select", "--data_path", str(sharegpt_pool), "--save_path", str(save), *flags)
    assert status == 2
    assert message in err
    assert not save.exists()


def test_interrupted_select_leaves_no_partial_output(capsys, monkeypatch, sharegpt_pool: Path, tmp_path: Path) -> None:
    save = tmp_path / "selected.json"
    save.write_text("[]", encoding="utf-8")  # an earlier result must survive

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(methods, "zip_select", interrupted)
    status, _, err = run(
        capsys, "select", "--data_path", str(sharegpt_pool), "--save_path", str(save), "--budget", "20"
    )
    assert status == 130 and "nothing was written" in err
    assert save.read_text(encoding="utf-8") == "[]"
    assert {p.name for p in tmp_path.iterdir()} == {"pool.json", "selected.json"}


def test_default_mode_beats_paper_mode_on_zlib9_ratio(capsys, raw_dir: Path, tmp_path: Path) -> None:
    """The improved mode reaches a lower (or equal) ratio of canonical text than the published semantics."""
    source = raw_dir / "code_alpaca_2k.json"
    ratios = {}
    for mode in ("default", "paper"):
        save = tmp_path / f"{mode}.json"
        status, summary, _ = run(
            capsys, "select", "--data_path", str(source), "--save_path", str(save), "--budget", "100",
            "--k1", "800", "--k2", "60", "--k3", "20", "--mode", mode,
        )  # fmt: skip
        assert status == 0 and summary is not None
        ratios[mode] = summary["set_ratio_zlib9"]
    assert ratios["default"] <= ratios["paper"]


def test_select_starts_warm_from_an_earlier_provenance_file_and_reports_the_churn(
    capsys, raw_dir: Path, tmp_path: Path
) -> None:
    chats = raw_dir / "fastchat_dummy_conversation.json"
    first = ["select", "--data_path", str(chats), "--budget", "60", "--k1", "200", "--k2", "40", "--k3", "20"]
    status, _, _ = run(
        capsys, *first, "--save_path", str(tmp_path / "a.jsonl"), "--provenance", str(tmp_path / "a.parquet")
    )
    assert status == 0
    earlier = pl.read_parquet(tmp_path / "a.parquet")
    assert {"id", "rank", "content_hash"} <= set(earlier.columns)

    grown = [str(chats), str(raw_dir / "pretrain_c4_demo.jsonl")]
    again = ["select", "--data_path", *grown, "--budget", "60", "--k1", "200", "--k2", "40", "--k3", "20"]
    status, summary, _ = run(
        capsys, *again, "--save_path", str(tmp_path / "b.jsonl"), "--warm-start", str(tmp_path / "a.parquet")
    )
    assert status == 0 and summary is not None and summary["selected"] == 60
    churn, warm = summary["churn"], summary["warm"]
    assert churn["kept"] + churn["added"] == 60 == churn["kept"] + churn["removed"]
    assert warm["new"] == 300 and warm["kept"] == churn["kept"] and warm["swapped"] == churn["added"]
    selected = [json.loads(line) for line in (tmp_path / "b.jsonl").read_text(encoding="utf-8").splitlines()]
    assert sum("text" in record for record in selected) == churn["added"] > 0  # the C4 documents that came in

    earlier.select("position", "id", "rank").write_parquet(tmp_path / "old.parquet")
    status, _, err = run(
        capsys, *again, "--save_path", str(tmp_path / "c.jsonl"), "--warm-start", str(tmp_path / "old.parquet")
    )
    assert status == 2 and "old.parquet: a provenance file without content hashes" in err
    assert not (tmp_path / "c.jsonl").exists()


@pytest.mark.parametrize("command", [None, "select", "score", "ratio", "law", "audit", "prune"])
def test_help_reads_as_plain_text(capsys, command: str | None) -> None:
    """No reStructuredText or Markdown markup (double backticks, roles) reaches a terminal."""
    with pytest.raises(SystemExit) as stopped:
        cli.main([command, "--help"] if command else ["--help"])
    shown = capsys.readouterr().out
    assert stopped.value.code == 0 and shown.startswith("usage: entropy-assets")
    assert "`" not in shown and not re.search(r":\w+:`|\*\*|::$", shown, re.MULTILINE), shown
    if command is None:
        assert "select takes the published ZIP program's flags (--data_path" in shown.replace("\n", " ")


def test_version_is_the_installed_distributions(capsys) -> None:
    from importlib.metadata import version

    with pytest.raises(SystemExit):
        cli.main(["--version"])
    assert capsys.readouterr().out.strip() == f"entropy-assets {version('entropy-assets')}"
