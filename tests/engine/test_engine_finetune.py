"""Fine-tuning: label subsetting, the frozen-encoder guarantee, class weights, reproducible
re-evaluation, from-scratch baselines and the CLI, on a tiny model and tiny synthetic data."""

from __future__ import annotations

import json
from collections import Counter

import pytest
import torch
from click.testing import CliRunner

from evaluation.eval_helpers import IMAGE_SIZE, TINY_PLUGIN, tiny_encoder_dir, tiny_npz, tiny_plugins
from sslkit.cli import cli
from sslkit.data import DatasetSplits, Record
from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.run import run_finetuning
from sslkit.errors import UserError
from sslkit.finetuning.classifier import new_classifier
from sslkit.finetuning.labels import parse_label_budget, select_records
from sslkit.finetuning.saved import evaluate_saved_classifier


@pytest.fixture(scope="module")
def plugins():
    return tiny_plugins()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return "npz:" + str(tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz"))


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory, plugins):
    return tiny_encoder_dir(tmp_path_factory.mktemp("enc") / "encoder", plugins)


def config(encoder_dir, data, out, **overrides) -> FinetuneConfig:
    values = dict(encoder=None if encoder_dir is None else str(encoder_dir), data=data, protocol="paper", labels=12, epochs=4, batch_size=8,
                  image_size=IMAGE_SIZE, device="cpu", out=str(out), quiet=True)
    values.update(overrides)
    return FinetuneConfig(**values)


def state_of(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Parameters AND buffers (BatchNorm running mean/var, batches tracked), copied."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


# --------------------------------------------------------------------------- label subsetting

def test_parse_label_budget():
    assert parse_label_budget("100") == 100 and isinstance(parse_label_budget("100"), int)
    assert parse_label_budget("0.1") == pytest.approx(0.1)
    assert parse_label_budget("1.0") == 1.0 and isinstance(parse_label_budget("1.0"), float)
    assert parse_label_budget("all") is None and parse_label_budget(None) is None
    for bad in ("0", "1.5", "-3", "lots"):
        with pytest.raises(UserError):
            parse_label_budget(bad)


def fake_dataset() -> DatasetSplits:
    def records(prefix, counts, unlabelled=0):
        out = [Record(f"{prefix}{c}-{i}", image=None, label=c) for c, n in enumerate(counts) for i in range(n)]
        return out + [Record(f"{prefix}u{i}", image=None, label=None) for i in range(unlabelled)]

    return DatasetSplits("fake", {"train": records("tr", (30, 20, 10), unlabelled=5),
                                  "val": records("va", (6, 4, 2)), "test": records("te", (9, 6, 3))},
                         class_names=["a", "b", "c"])


def test_labelled_subset_is_stratified_seeded_and_from_train_only():
    ds = fake_dataset()
    chosen = select_records(ds, 12, seed=0)
    # 12 of 30/20/10: one per class first, the other 9 in proportion to 29/19/9 -> 6/4/2
    assert chosen.counts("labelled") == [6, 4, 2]
    assert set(chosen.labelled) <= set(ds.splits["train"])
    assert all(r.label is not None for r in chosen.labelled)  # unlabelled train images never drawn
    # validation and test are passed through untouched
    assert chosen.val == ds.splits["val"] and chosen.test == ds.splits["test"]
    # seeded: same seed same images, another seed other images
    assert select_records(ds, 12, seed=0).labelled == chosen.labelled
    assert select_records(ds, 12, seed=1).labelled != chosen.labelled
    # a fraction of the labelled train images
    assert len(select_records(ds, 0.1, seed=0).labelled) == 6
    assert len(select_records(ds, None, seed=0).labelled) == 60


def test_paper_caps_draw_test_by_split_seed_not_run_seed():
    ds = fake_dataset()
    a = select_records(ds, 12, seed=0, split_seed=5, cap_val=6, cap_test=6)
    b = select_records(ds, 12, seed=3, split_seed=5, cap_val=6, cap_test=6)
    assert a.test == b.test and a.val == b.val  # one test set whatever the run seed
    assert len(a.test) == 6 and set(a.test) <= set(ds.splits["test"])
    assert Counter(r.label for r in a.test) == Counter({0: 3, 1: 2, 2: 1})
    assert not set(a.labelled) & set(a.test)


def test_no_test_images_is_a_user_error():
    ds = fake_dataset()
    ds.splits["test"] = []
    with pytest.raises(UserError, match="no labelled test images"):
        select_records(ds, 12, seed=0)


# --------------------------------------------------------------------------- frozen encoder

@pytest.mark.parametrize("protocol", ["linear", "paper"])
def test_frozen_protocols_leave_encoder_weights_and_bn_statistics_unchanged(protocol, plugins, data, encoder_dir, tmp_path):
    from sslkit.models import load_encoder

    before = state_of(load_encoder(encoder_dir, plugins=plugins))
    result = run_finetuning(config(encoder_dir, data, tmp_path / protocol, protocol=protocol), plugins)
    after = state_of(load_encoder(tmp_path / protocol / "classifier" / "encoder", plugins=plugins))
    assert_same_state(before, after)
    assert result.metrics["test"].n_samples == 10


@pytest.mark.parametrize("protocol", ["linear", "paper"])
def test_frozen_classifier_keeps_bn_in_eval_mode_through_training_steps(protocol, plugins, encoder_dir):
    from sslkit.models import load_encoder

    encoder = load_encoder(encoder_dir, plugins=plugins)
    before = state_of(encoder)
    classifier = new_classifier(encoder, protocol, 3)
    classifier.train()
    assert classifier.head.training and not classifier.encoder.training
    assert not any(p.requires_grad for p in classifier.encoder.parameters())
    optimizer = torch.optim.Adam(classifier.parameters(), lr=0.1)
    for _ in range(3):
        loss = torch.nn.functional.cross_entropy(classifier(torch.randn(6, 1, 32, 32) * 3), torch.tensor([0, 1, 2] * 2))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert_same_state(before, state_of(classifier.encoder))


def test_full_protocol_does_train_the_encoder(plugins, data, encoder_dir, tmp_path):
    """The control for the two tests above: the same check fails when the encoder trains."""
    from sslkit.models import load_encoder

    before = state_of(load_encoder(encoder_dir, plugins=plugins))
    run_finetuning(config(encoder_dir, data, tmp_path, protocol="full", epochs=1), plugins)
    after = state_of(load_encoder(tmp_path / "classifier" / "encoder", plugins=plugins))
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert any("running_mean" in k for k in changed) and any(k.endswith("weight") for k in changed)


# --------------------------------------------------------------------------- run outputs

def test_class_weights_and_run_files(plugins, data, encoder_dir, tmp_path):
    result = run_finetuning(config(encoder_dir, data, tmp_path), plugins)
    saved = json.loads((tmp_path / "metrics.json").read_text())
    counts = list(saved["labelled_counts"].values())
    assert counts == result.labelled_counts == [6, 4, 2]  # 12 of 15/9/6
    assert saved["class_weights"] == pytest.approx([10 * (1 - n / 12) for n in counts])
    assert set(saved["splits"]) == {"val", "test"} and saved["complete"] is True
    assert (tmp_path / "history.csv").read_text().count("\n") == 1 + 4  # header + one row per epoch
    assert any((tmp_path / "tensorboard").iterdir())
    none = run_finetuning(config(encoder_dir, data, tmp_path / "none", class_weights="none"), plugins)
    assert json.loads((tmp_path / "none" / "metrics.json").read_text())["class_weights"] is None
    assert none.labelled_counts == result.labelled_counts


@pytest.mark.parametrize("protocol", ["paper", "full"])
def test_evaluate_reproduces_the_finetune_figures(protocol, plugins, data, encoder_dir, tmp_path):
    result = run_finetuning(config(encoder_dir, data, tmp_path, protocol=protocol, epochs=2), plugins)
    for split in ("test", "val"):
        again = evaluate_saved_classifier(tmp_path, split=split, device="cpu", plugins=plugins)
        assert again.metrics.scalars == result.metrics[split].scalars
        assert again.metrics.confusion == result.metrics[split].confusion


def test_from_scratch_rebuilds_the_same_network_with_seeded_random_weights(plugins, data, encoder_dir, tmp_path):
    from sslkit.models import load_encoder, read_encoder_spec

    a = run_finetuning(config(encoder_dir, data, tmp_path / "a", from_scratch=True, seed=3), plugins)
    b = run_finetuning(config(encoder_dir, data, tmp_path / "b", from_scratch=True, seed=3), plugins)
    assert a.metrics["test"].scalars == b.metrics["test"].scalars  # deterministic given the seed
    pretrained = state_of(load_encoder(encoder_dir, plugins=plugins))
    scratch = state_of(load_encoder(tmp_path / "a" / "classifier" / "encoder", plugins=plugins))
    assert pretrained.keys() == scratch.keys()
    assert not torch.equal(pretrained["body.stage1.0.weight"], scratch["body.stage1.0.weight"])
    assert read_encoder_spec(tmp_path / "a" / "classifier" / "encoder")["backbone"] == "eval-tiny-cnn"
    # without an encoder: the backbone by name
    c = run_finetuning(config(None, data, tmp_path / "c", from_scratch=True, backbone="eval-tiny-cnn",
                              backbone_options={"width": 2}), plugins)
    assert c.metrics["test"].n_samples == 10


def test_best_val_selection_reports_the_chosen_epoch(plugins, data, encoder_dir, tmp_path):
    result = run_finetuning(config(encoder_dir, data, tmp_path, select="best-val", epochs=5), plugins)
    history = (tmp_path / "history.csv").read_text().splitlines()[1:]
    f1 = [float(line.split(",")[4]) for line in history]  # epoch,loss,val_accuracy,val_balanced,val_macro_f1
    assert f1[result.selected_epoch - 1] == max(f1)
    assert result.metrics["val"].scalars["macro_f1"] == pytest.approx(max(f1))


def test_bad_settings_are_user_errors(plugins, data, encoder_dir, tmp_path):
    with pytest.raises(UserError, match="--from-scratch"):
        run_finetuning(config(None, data, tmp_path), plugins)
    with pytest.raises(UserError, match="does not exist"):
        run_finetuning(config(tmp_path / "missing", data, tmp_path), plugins)
    with pytest.raises(UserError, match="protocol"):
        run_finetuning(config(encoder_dir, data, tmp_path, protocol="lora"), plugins)


# --------------------------------------------------------------------------- command line

def test_cli_finetune_then_evaluate_and_knn(data, encoder_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLKIT_PLUGINS", str(TINY_PLUGIN))
    runner = CliRunner()
    out = tmp_path / "run"
    args = ["finetune", "--encoder", str(encoder_dir), "--data", data, "--protocol", "linear", "--labels", "0.5",
            "--epochs", "3", "--image-size", "32", "--device", "cpu", "--out", str(out), "--quiet"]
    result = runner.invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "macro F1" in result.output and "confusion" in result.output
    result = runner.invoke(cli, ["evaluate", "--classifier", str(out), "--device", "cpu"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "identical to the fine-tuning run's test figures" in result.output
    assert (out / "evaluate_test.json").is_file()
    result = runner.invoke(cli, ["evaluate", "--knn", "--encoder", str(encoder_dir), "--data", data, "-k", "5",
                                 "--image-size", "32", "--device", "cpu", "--json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.output)
    assert payload["k"] == 5 and payload["bank_size"] == 30 and payload["metrics"]["n_samples"] == 10
    bad = runner.invoke(cli, args[:-3] + ["--labels", "0", "--out", str(tmp_path / "x")])
    assert bad.exit_code == 2 and "at least 1" in bad.output


def test_threads_option_of_finetune_and_evaluate_applies_during_the_run_only(data, encoder_dir, tmp_path,
                                                                            monkeypatch):
    """``--threads`` sets torch's CPU threads while the command works, is recorded in config.yaml,
    and torch's setting is back as it was afterwards (the test process runs with 1)."""
    import yaml

    import sslkit.cpu_cores as cpu_cores
    import sslkit.finetuning.run as finetune
    import sslkit.finetuning.saved as saved

    monkeypatch.setattr(cpu_cores, "usable_cores", lambda: 4)  # --threads 3 is capped on a 2-core machine

    monkeypatch.setenv("SSLKIT_PLUGINS", str(TINY_PLUGIN))
    seen: dict[str, int] = {}

    def recording(name, function):
        def wrapper(*args, **kwargs):
            seen[name] = torch.get_num_threads()
            return function(*args, **kwargs)
        return wrapper

    monkeypatch.setattr(finetune, "build_encoder_for", recording("finetune", finetune.build_encoder_for))
    monkeypatch.setattr(saved, "evaluate_saved_classifier", recording("evaluate", saved.evaluate_saved_classifier))
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(cli, ["finetune", "--encoder", str(encoder_dir), "--data", data, "--protocol", "linear",
                                 "--labels", "0.5", "--epochs", "1", "--image-size", "32", "--device", "cpu",
                                 "--threads", "2", "--out", str(out), "--quiet"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert yaml.safe_load((out / "config.yaml").read_text())["threads"] == 2
    result = runner.invoke(cli, ["evaluate", "--classifier", str(out), "--device", "cpu", "--threads", "3"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert seen == {"finetune": 2, "evaluate": 3}
    assert torch.get_num_threads() == 1
    bad = runner.invoke(cli, ["evaluate", "--classifier", str(out), "--threads", "-1"])
    assert bad.exit_code == 2 and "--threads must be zero" in bad.output


def test_several_seeds_run_into_their_own_folders_and_are_summarised(data, encoder_dir, tmp_path, monkeypatch):
    from sslkit.finetuning.run import run_seeds

    monkeypatch.setenv("SSLKIT_PLUGINS", str(TINY_PLUGIN))
    out = tmp_path / "seeds"
    result = CliRunner().invoke(cli, ["finetune", "--encoder", str(encoder_dir), "--data", data, "--protocol", "linear",
                                      "--labels", "0.5", "--epochs", "1", "--image-size", "32", "--device", "cpu",
                                      "--seed", "3", "--seeds", "2", "--out", str(out), "--quiet"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "mean ± std over 2 seeds" in result.output
    assert sorted(p.name for p in out.iterdir()) == ["seed3", "seed4"]
    assert [yaml_seed(out / name) for name in ("seed3", "seed4")] == [3, 4]
    with pytest.raises(UserError, match="--seeds must be at least 1"):
        next(run_seeds(FinetuneConfig(encoder=str(encoder_dir)), 0))


def yaml_seed(run_dir) -> int:
    import yaml

    return yaml.safe_load((run_dir / "config.yaml").read_text())["seed"]


def test_adapter_options_of_the_pretraining_run_are_inherited(plugins, tmp_path):
    """A run pretrained with --data-opt label_key=grade fine-tunes on the same labels without repeating it."""
    import numpy as np
    import yaml

    source = dict(np.load(tiny_npz(tmp_path / "plain.npz")))
    renamed = {k.replace("_labels", "_grade"): v for k, v in source.items()}
    np.savez(tmp_path / "graded.npz", **renamed)
    spec = f"npz:{tmp_path / 'graded.npz'}"
    run = tmp_path / "run"
    tiny_encoder_dir(run / "encoder", plugins)
    (run / "config.yaml").write_text(yaml.safe_dump({"data": spec, "data_options": {"label_key": "grade"},
                                                     "split_seed": 0, "image_size": IMAGE_SIZE}))

    result = run_finetuning(config(run, None, tmp_path / "ft", labels=6, epochs=2), plugins=plugins)
    assert sum(result.labelled_counts) == 6 and len(result.class_names) == 3  # labels read through label_key
    saved = yaml.safe_load((tmp_path / "ft" / "config.yaml").read_text())
    assert saved["data"] == spec and saved["data_options"] == {"label_key": "grade"}

    # another --data does not inherit the run's adapter options
    other = config(run, "npz:" + str(tmp_path / "plain.npz"), tmp_path / "ft2", labels=6, epochs=2)
    run_finetuning(other, plugins=plugins)
    assert yaml.safe_load((tmp_path / "ft2" / "config.yaml").read_text())["data_options"] == {}
