"""`sslkit compare`: cells, resumability (finished cells reused, interrupted pretraining
continued), refusal to mix settings, and the results files. Pretraining is replaced by a stub
that exports a tiny encoder, except in one end-to-end test through the real engine."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from evaluation.eval_helpers import IMAGE_SIZE, TINY_PLUGIN, tiny_npz, tiny_plugins
from sslkit.comparison.config import CELL_FILE, CompareConfig, PRETRAIN_FILE
from sslkit.comparison.stats import recompute_statistics
from sslkit.comparison.run import run_compare
from sslkit.errors import UserError


@pytest.fixture(scope="module")
def plugins():
    return tiny_plugins()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return "npz:" + str(tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz"))


class Calls:
    def __init__(self):
        self.pretrain: list[tuple[str, int, bool]] = []
        self.finetune: list[tuple[bool, int]] = []


@pytest.fixture
def calls(monkeypatch, plugins):
    """Stub pretraining (exports a seeded tiny encoder + config.yaml + a checkpoint) and count
    pretraining and fine-tuning calls."""
    import torch

    import sslkit.finetuning.run as finetune_module
    import sslkit.pretraining.run as pretrain_module
    from sslkit.pretraining.config import save_config
    from sslkit.models import build_encoder, save_encoder

    record = Calls()

    def fake_pretraining(config, plugins_=None, *, resume=None):
        record.pretrain.append((config.masker, config.seed, resume is not None))
        run_dir = Path(config.out)
        torch.manual_seed(config.seed)
        encoder = build_encoder(config.backbone, in_chans=config.in_chans, plugins=plugins_, **config.backbone_options)
        save_encoder(encoder, run_dir / "encoder")
        save_config(config, run_dir / "config.yaml")
        (run_dir / "checkpoints").mkdir(exist_ok=True)
        (run_dir / "checkpoints" / "last.pt").write_bytes(b"stub")
        return {"loss": 0.25 + config.seed, "epochs": config.epochs}

    real_finetuning = finetune_module.run_finetuning

    def counted_finetuning(config, plugins_=None, **kwargs):
        record.finetune.append((config.from_scratch, config.seed))
        return real_finetuning(config, plugins_, **kwargs)

    monkeypatch.setattr(pretrain_module, "run_pretraining", fake_pretraining)
    monkeypatch.setattr(finetune_module, "run_finetuning", counted_finetuning)
    return record


def compare_config(data, out: Path, **overrides) -> CompareConfig:
    values = dict(maskers=["random", "center"], data=data, seeds=[0, 1], labels=12, protocol="linear",
                  backbone="eval-tiny-cnn", image_size=IMAGE_SIZE, pretrain_epochs=1, finetune_epochs=3,
                  finetune_batch_size=8, device="cpu", out=str(out / "results"), runs_dir=str(out / "runs"), folds=1)
    values.update(overrides)
    return CompareConfig(**values)


def test_compare_runs_every_cell_then_reuses_them(calls, plugins, data, tmp_path):
    first = run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    assert sorted(calls.pretrain) == [("center", 0, False), ("center", 1, False), ("random", 0, False), ("random", 1, False)]
    assert len(calls.finetune) == 6 and sum(scratch for scratch, _ in calls.finetune) == 2
    assert (first.ran, first.reused) == (6, 0)
    assert [(r["method"], r["seed"]) for r in first.rows] == [
        ("random", 0), ("random", 1), ("center", 0), ("center", 1), ("scratch", 0), ("scratch", 1)]
    assert [s["method"] for s in first.summary] == ["random", "center", "scratch"]
    # tiny_npz's test images have twins in train (one class looks alike at 16 px): compare says so once
    assert sum("near-duplicate in train/val" in n for n in first.notes) == 1

    second = run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    assert len(calls.pretrain) == 4 and len(calls.finetune) == 6  # nothing ran again
    assert (second.ran, second.reused) == (0, 6)
    assert json.dumps(second.rows) == json.dumps(first.rows)  # NaN-aware: an undefined figure equals itself


def test_interrupted_cell_continues_and_only_it_runs(calls, plugins, data, tmp_path):
    run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    method_dir = tmp_path / "runs" / "center" / "seed1"
    (method_dir / "labels12" / CELL_FILE).unlink()  # as if killed during its fine-tuning
    result = run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    assert (result.ran, result.reused) == (1, 5)
    assert len(calls.pretrain) == 4  # its pretraining had finished (pretrain.json): not run again
    assert calls.finetune[-1] == (False, 1) and len(calls.finetune) == 7

    (method_dir / "labels12" / CELL_FILE).unlink()
    (method_dir / PRETRAIN_FILE).unlink()  # as if killed during its pretraining
    run_compare(compare_config(data, tmp_path), plugins, quiet=True)
    # the pretraining with a checkpoint is resumed (the engine's exact resume), not restarted
    assert calls.pretrain[-1] == ("center", 1, True) and len(calls.pretrain) == 5


def test_cells_made_with_other_settings_are_refused(calls, plugins, data, tmp_path):
    run_compare(compare_config(data, tmp_path, maskers=["random"], seeds=[0], scratch=False), plugins, quiet=True)
    with pytest.raises(UserError, match=r"other settings \(.*epochs 1 -> 2"):
        run_compare(compare_config(data, tmp_path, maskers=["random"], seeds=[0], scratch=False, pretrain_epochs=2),
                    plugins, quiet=True)


def test_results_files(calls, plugins, data, tmp_path):
    result = run_compare(compare_config(data, tmp_path, maskers=["random"], seeds=[0, 1]), plugins,
                         command="sslkit compare --maskers random", quiet=True)
    out = tmp_path / "results"
    assert result.files == {"markdown": out / "results.md", "csv": out / "results.csv", "png": out / "results.png",
                            "differences": out / "differences.csv", "predictions": out / "predictions.csv"}
    with (out / "results.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["method"], r["seed"]) for r in rows] == [("random", "0"), ("random", "1"), ("scratch", "0"), ("scratch", "1")]
    assert {r["labels"] for r in rows} == {"12"}
    assert rows[0]["pretrain_loss"] == "0.250000" and rows[2]["pretrain_loss"] == ""
    assert float(rows[0]["accuracy"]) == pytest.approx(result.rows[0]["accuracy"])
    text = (out / "results.md").read_text()
    assert "| method | runs | accuracy" in text and "`sslkit compare --maskers random`" in text
    assert "| random | 2 |" in text and "machine:" in text
    assert (out / "results.png").read_bytes()[:4] == b"\x89PNG"
    cell = json.loads((tmp_path / "runs" / "random" / "seed0" / "labels12" / CELL_FILE).read_text())
    assert cell["labelled_counts"] == {"left": 6, "right": 4, "centre": 2}
    # paired statistics: each method against each reference, in the markdown, the CSV and the result
    assert "## Paired differences" in text and "| random | scratch |" in text
    with (out / "differences.csv").open() as handle:
        diffs = list(csv.DictReader(handle))
    assert {(d["method"], d["reference"]) for d in diffs} == {("random", "scratch")}  # each pair once
    assert len(diffs) == 4 and all(d["verdict"] in ("better", "worse", "not distinguishable", "n/a") for d in diffs)
    assert all(float(d["ci_low"]) <= float(d["difference"]) + 1e-9 for d in diffs if d["ci_low"])
    # predictions saved per cell and in OUT, enough to recompute the statistics without the runs
    with (out / "predictions.csv").open() as handle:
        predictions = list(csv.DictReader(handle))
    assert len(predictions) == 4 * 10 and set(predictions[0]) >= {"image", "label", "prob_left", "prob_centre"}
    assert (tmp_path / "runs" / "random" / "seed0" / "labels12" / "finetune" / "predictions.csv").is_file()
    again = recompute_statistics(out, n_resamples=2000)
    assert [d.to_row() for d in again["differences"]["12"]] == [d.to_row() for d in result.differences["12"]]


def test_bad_compare_settings(plugins, data, tmp_path):
    for overrides, message in (({"maskers": ["rnadom"]}, "did you mean 'random'"),
                               ({"maskers": ["random", "scratch"]}, "baseline"),
                               ({"seeds": [0, 0]}, "no seed twice"),
                               ({"pretrain_options": {"epochs": 3}}, "set by compare itself"),
                               ({"masker_options": {"dqn": {"k": 1}}}, "not in --maskers"),
                               ({"maskers": ["random", "scratch-full"]}, "baseline"),
                               ({"maskers": ["center"], "masker_aliases": {"center": "random"}}, "already the name"),
                               ({"maskers": ["fast"], "masker_aliases": {"fast": "rnadom"}}, "did you mean 'random'"),
                               ({"labels": [12, 12]}, "budget twice"),
                               ({"bootstrap_resamples": 10}, "at least 100")):
        with pytest.raises(UserError, match=message):
            run_compare(compare_config(data, tmp_path, **overrides), plugins, quiet=True)


def test_compare_end_to_end_with_the_real_engine(data, tmp_path, monkeypatch):
    """One real (1-epoch, tiny) pretraining through the CLI: the pieces fit together."""
    monkeypatch.setenv("SSLKIT_PLUGINS", str(TINY_PLUGIN))
    args = ["compare", "--maskers", "random", "--seeds", "1", "--folds", "1", "--data", data, "--labels", "12",
            "--protocol", "linear", "--backbone", "eval-tiny-cnn", "--image-size", str(IMAGE_SIZE),
            "--pretrain-epochs", "1", "--pretrain-batch-size", "16", "--finetune-epochs", "2", "--device", "cpu",
            "--out", str(tmp_path / "results"), "--runs-dir", str(tmp_path / "runs"), "--quiet"]
    from sslkit.cli import cli

    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "2 cell(s) run, 0 reused" in result.output
    assert "paired difference, 12 labels" in result.output
    assert (tmp_path / "runs" / "random" / "seed0" / "pretrain" / "encoder" / "encoder.json").is_file()
    # --keep-checkpoints weights (default): the finished pretraining keeps a weights-only checkpoint
    assert [p.name for p in (tmp_path / "runs" / "random" / "seed0" / "pretrain" / "checkpoints").iterdir()] == ["weights.pt"]
    again = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "0 cell(s) run, 2 reused" in again.output
    stats = CliRunner().invoke(cli, ["compare", "--stats-only", str(tmp_path / "results"),
                                     "--bootstrap-resamples", "500"], catch_exceptions=False)
    assert stats.exit_code == 0, stats.output
    assert "paired difference, 12 labels" in stats.output and (tmp_path / "results" / "statistics.md").is_file()


def test_aliases_run_one_masker_twice_with_other_options(calls, plugins, data, tmp_path):
    config = compare_config(data, tmp_path, maskers=["random", "big"], masker_aliases={"big": "random"},
                            masker_options={"big": {"area": 0.3}}, seeds=[0], scratch=False)
    result = run_compare(config, plugins, quiet=True)
    assert sorted(calls.pretrain) == [("random", 0, False), ("random", 0, False)]
    assert [r["method"] for r in result.rows] == ["random", "big"]
    saved = json.loads((tmp_path / "runs" / "big" / "seed0" / "labels12" / CELL_FILE).read_text())
    assert saved["fingerprint"]["pretrain"]["masker"] == "random"
    assert saved["fingerprint"]["pretrain"]["masker_options"] == {"area": 0.3}
    assert {(d.method, d.reference) for d in result.differences["12"]} == {("big", "random")}


def test_label_budgets_share_pretraining_and_draw_a_curve(calls, plugins, data, tmp_path):
    config = compare_config(data, tmp_path, maskers=["random"], seeds=[0, 1], labels=[6, 12, None])
    result = run_compare(config, plugins, quiet=True)
    assert len(calls.pretrain) == 2  # one pretraining per seed, reused by all three budgets
    assert result.ran == 12 and list(result.summaries) == ["6", "12", "all"]
    labelled = {(r["labels"], r["method"], r["seed"]): r["labelled_images"] for r in result.rows}
    assert labelled[("6", "random", 0)] == 6 and labelled[("all", "scratch", 1)] == 30
    out = tmp_path / "results"
    assert (out / "label_efficiency.png").read_bytes()[:4] == b"\x89PNG"
    text = (out / "results.md").read_text()
    assert "### 6 labels" in text and "### all labels" in text and "all labels, 10 test images" in text


def test_scratch_full_is_scored_on_the_same_test_images(calls, plugins, data, tmp_path):
    config = compare_config(data, tmp_path, maskers=["random"], seeds=[0], scratch_full=True, scratch_full_epochs=2,
                            protocol="paper", finetune_epochs=2)
    result = run_compare(config, plugins, quiet=True)
    assert [r["method"] for r in result.rows] == ["random", "scratch", "scratch-full"]
    cell = json.loads((tmp_path / "runs" / "scratch-full" / "seed0" / "labels12" / CELL_FILE).read_text())
    assert cell["fingerprint"]["finetune"]["protocol"] == "full" and cell["fingerprint"]["finetune"]["epochs"] == 2
    pairs = [(d.method, d.reference) for d in result.differences["12"][::4]]
    assert pairs == [("random", "scratch"), ("scratch-full", "scratch"), ("random", "scratch-full")]
    assert "`scratch-full` the same, fine-tuned end to end" in (tmp_path / "results" / "results.md").read_text()


@pytest.mark.parametrize("text, names, aliases, options", [
    ("random,dqn", ["random", "dqn"], {}, {}),
    ("random,dqn,dqn-masked=dqn:reward=masked", ["random", "dqn", "dqn-masked"], {"dqn-masked": "dqn"},
     {"dqn-masked": {"reward": "masked"}}),
    ("a=random:area=0.3,count=5,random, b=dqn:", ["a", "random", "b"], {"a": "random", "b": "dqn"},
     {"a": {"area": 0.3, "count": 5}}),
    ("plain=random,x=dqn:explore=0.1", ["plain", "x"], {"plain": "random", "x": "dqn"}, {"x": {"explore": 0.1}}),
])
def test_parse_maskers_with_aliases(text, names, aliases, options):
    from sslkit.commands.compare_cmd import parse_maskers

    assert parse_maskers(text) == (names, aliases, options)


@pytest.mark.parametrize("text, message", [
    ("dqn:reward=masked", "without an alias name"),
    ("=dqn:reward=masked", "both an alias and a masker"),
    ("a=random,a=dqn", "alias 'a' twice"),
    ("a=dqn:reward", "key=value"),
])
def test_parse_maskers_bad_input_is_one_sentence(text, message):
    from sslkit.commands.compare_cmd import parse_maskers

    with pytest.raises(UserError, match=message):
        parse_maskers(text)


def test_parse_label_lists():
    from sslkit.commands.compare_cmd import parse_label_list

    assert parse_label_list("100") == 100
    assert parse_label_list("20,50,100,all") == [20, 50, 100, None]
    assert parse_label_list("0.1, all") == [0.1, None]
    for bad, message in (("20,,50", "single commas"), ("20,lots", "must be a count"), ("0,50", "at least 1")):
        with pytest.raises(UserError, match=message):
            parse_label_list(bad)


def test_stats_only_without_predictions_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="no predictions.csv"):
        recompute_statistics(tmp_path)


def test_fingerprint_leaves_out_exactly_the_settings_that_never_change_figures():
    """One list (config.NOT_RESULT_SETTINGS) says what --resume may change and what a cell's
    fingerprint ignores; a cell written when threads/knn_every were still fingerprinted matches."""
    import dataclasses

    from sslkit.comparison.config import Cell
    from sslkit.comparison.cells import fingerprint
    from sslkit.comparison.cells import _comparable
    from sslkit.pretraining.config import NOT_RESULT_SETTINGS, RESUMABLE_OVERRIDES

    assert RESUMABLE_OVERRIDES <= NOT_RESULT_SETTINGS
    config = CompareConfig(maskers=["random"], seeds=[0], pretrain_epochs=1, out="/tmp/unused")
    cell = Cell("random", 0, 100)
    base = fingerprint(config, cell)
    assert not set(base["pretrain"]) & NOT_RESULT_SETTINGS and not set(base["finetune"]) & NOT_RESULT_SETTINGS
    neutral = dataclasses.replace(config, device="cpu", workers=2, threads=1,
                                  pretrain_options={"knn_every": 1, "log_every": 5, "checkpoint_every": 3})
    assert fingerprint(neutral, cell) == base
    assert fingerprint(dataclasses.replace(config, pretrain_options={"lr": 0.01}), cell) != base
    older = {**base, "pretrain": {**base["pretrain"], "threads": 0, "knn_every": 0}}
    assert _comparable(older) == base


def test_compare_folds_pretrain_once_and_predict_every_image_once_per_method(calls, plugins, tmp_path):
    from evaluation.test_eval_folds import distinct_npz

    data = "npz:" + str(distinct_npz(tmp_path / "distinct.npz"))
    result = run_compare(compare_config(data, tmp_path, folds=3, seeds=[0], maskers=["random"]), plugins, quiet=True)
    assert calls.pretrain == [("random", 0, False)]  # once per method and seed, not per fold
    assert len(calls.finetune) == 6 and result.ran == 6  # (random, scratch) x 3 folds
    with open(tmp_path / "results" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    for method in ("random", "scratch"):
        images = [r["image"] for r in rows if r["method"] == method]
        assert len(images) == len(set(images)) == 48
    assert {r["fold"] for r in rows} == {"0", "1", "2"} and all(r["group"] for r in rows)
    assert [r["fold"] for r in result.rows] == ["all", "all"]
    assert (tmp_path / "results" / "folds.csv").is_file()
    text = (tmp_path / "results" / "results.md").read_text()
    assert "3-fold cross-validation" in text and "Pretraining saw the `all` images" in text
    assert "48 test images" in text  # the paired statistics run over every out-of-fold prediction


def test_compare_jobs_gives_the_same_figures_as_one_process(tmp_path, monkeypatch):
    """Two worker processes run the cells (pretraining, then the folds) to identical predictions."""
    from evaluation.test_eval_folds import distinct_npz

    from sslkit.cli import cli

    monkeypatch.setenv("SSLKIT_PLUGINS", str(TINY_PLUGIN))
    data = "npz:" + str(distinct_npz(tmp_path / "distinct.npz"))
    outputs = {}
    for jobs in ("1", "2"):
        args = ["compare", "--maskers", "random", "--seeds", "1", "--folds", "3", "--data", data, "--labels", "12",
                "--protocol", "linear", "--backbone", "eval-tiny-cnn", "--image-size", str(IMAGE_SIZE),
                "--pretrain-epochs", "1", "--pretrain-batch-size", "16", "--finetune-epochs", "2", "--device", "cpu",
                "--threads", "1", "--jobs", jobs, "--out", str(tmp_path / f"out{jobs}"), "--quiet"]
        result = CliRunner().invoke(cli, args, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert "6 cell(s) run" in result.output
        outputs[jobs] = (tmp_path / f"out{jobs}" / "predictions.csv").read_text()
    assert outputs["1"] == outputs["2"]


def test_cells_written_before_a_setting_existed_are_reused_at_its_default(calls, plugins, data, tmp_path):
    """An upgrade that adds a setting (defaulting to the old behaviour) keeps finished cells."""
    run_compare(compare_config(data, tmp_path, seeds=[0]), plugins, quiet=True)
    for path in (tmp_path / "runs").rglob(CELL_FILE):
        record = json.loads(path.read_text())
        record["fingerprint"].get("pretrain", {}).pop("encoding", None)
        record["fingerprint"]["finetune"].pop("positive_class", None)
        path.write_text(json.dumps(record))
    for path in (tmp_path / "runs").rglob(PRETRAIN_FILE):
        record = json.loads(path.read_text())
        record["fingerprint"].pop("encoding", None)
        path.write_text(json.dumps(record))
    again = run_compare(compare_config(data, tmp_path, seeds=[0]), plugins, quiet=True)
    assert (again.ran, again.reused) == (0, 3)
    other = compare_config(data, tmp_path, seeds=[0], pretrain_options={"encoding": "sparse"})
    with pytest.raises(UserError, match="encoding"):  # a real difference is still refused
        run_compare(other, plugins, quiet=True)


def test_data_that_cannot_take_the_folds_is_refused_before_any_pretraining(calls, plugins, data, tmp_path):
    # tiny_npz's classes are each one near-duplicate family: too coarse for 3 grouped folds
    with pytest.raises(UserError, match="too coarse"):
        run_compare(compare_config(data, tmp_path, folds=3), plugins, quiet=True)
    assert calls.pretrain == [] and calls.finetune == []


def test_a_fresh_decoder_twin_shares_its_bases_pretraining_options_included():
    """``dqn+fresh-decoder`` fine-tunes from dqn's pretraining: it must ask for that very run (its
    masker options and its alias's too), or it would be refused as a run made with other settings."""
    from sslkit.comparison.cells import fingerprint, pretrain_config
    from sslkit.comparison.config import Cell

    config = CompareConfig(task="segmentation", maskers=["dqn", "dqn-2"], masker_aliases={"dqn-2": "dqn"},
                           masker_options={"dqn": {"block": 2}, "dqn-2": {"block": 4}})
    assert config.methods() == ["dqn", "dqn+fresh-decoder", "dqn-2", "dqn-2+fresh-decoder", "scratch"]
    for base in ("dqn", "dqn-2"):
        twin = base + "+fresh-decoder"
        assert pretrain_config(config, Cell(twin, 1), quiet=True) == pretrain_config(config, Cell(base, 1), quiet=True)
        assert fingerprint(config, Cell(twin, 1))["pretrain"] == fingerprint(config, Cell(base, 1))["pretrain"]
    assert pretrain_config(config, Cell("dqn-2+fresh-decoder", 0), quiet=True).masker_options == {"block": 4}
