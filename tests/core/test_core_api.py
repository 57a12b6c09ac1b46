"""The Python API: ``import sslkit`` stays cheap, ``sslkit.pretrain/finetune/load_encoder`` work
on tiny data with short reprs, the notebook example runs, and the commands' defaults are the
config dataclasses' (one place)."""

from __future__ import annotations

import dataclasses
import json
import os
import runpy
import subprocess
import sys

import click
import pytest

import sslkit
from sslkit.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY_BACKBONE = "mobilenetv3_small_050"


def test_import_sslkit_imports_no_torch():
    code = ("import sys, sslkit; sslkit.PretrainConfig, sslkit.FinetuneConfig, sslkit.CompareConfig; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "False", out.stderr


def test_unknown_settings_are_one_sentence():
    with pytest.raises(UserError, match="no setting 'protocl'; did you mean 'protocol'"):
        sslkit.finetune(protocl="linear")
    with pytest.raises(UserError, match="did you mean 'epochs'"):
        sslkit.pretrain(epohcs=1)
    with pytest.raises(UserError, match="either a FinetuneConfig or keyword settings"):
        sslkit.finetune(sslkit.FinetuneConfig(), protocol="linear")


def _tiny_pretrain(tiny_npz) -> dict:
    return {"data": f"npz:{tiny_npz}", "backbone": TINY_BACKBONE, "image_size": 32, "batch_size": 4,
            "epochs": 1, "device": "cpu", "threads": 1}


def test_pretrain_finetune_and_load_encoder_from_python(tiny_npz, tmp_path):
    run = sslkit.pretrain(out=str(tmp_path / "run"), quiet=True, **_tiny_pretrain(tiny_npz))
    assert run.epochs == 1 and run.loss is not None and run.loss > 0
    assert repr(run).startswith("PretrainResult(run_dir=") and "metrics" not in repr(run)
    encoder = sslkit.load_encoder(run.run_dir)  # the run directory, as every command accepts
    assert sum(p.numel() for p in encoder.parameters()) > 0
    result = sslkit.finetune(encoder=run.run_dir, protocol="linear", labels=4, epochs=2, batch_size=4,
                             threads=1, quiet=True)
    text = repr(result)
    assert text.startswith("FinetuneResult(") and "accuracy" in text
    assert len(text) < 300, text  # never every test prediction
    assert len(result.test_predictions["ids"]) == result.metrics["test"].n_samples  # kept, just not printed


def test_the_notebook_example_runs(tiny_npz, tmp_path, monkeypatch):
    monkeypatch.setenv("SSLKIT_EXAMPLE_PRETRAIN", json.dumps(_tiny_pretrain(tiny_npz)))
    monkeypatch.setenv("SSLKIT_EXAMPLE_FINETUNE", json.dumps({"labels": 4, "epochs": 2, "batch_size": 4}))
    monkeypatch.setenv("SSLKIT_EXAMPLE_OUT", str(tmp_path))
    namespace = runpy.run_path(os.path.join(REPO, "examples", "python_api.py"), run_name="__main__")
    assert namespace["run"].epochs == 1
    assert 0.0 <= namespace["result"].metrics["test"].scalars["accuracy"] <= 1.0
    assert len(namespace["features"]) == len(namespace["encoder"].feature_channels)


def _defaults(command: click.Command) -> dict:
    """Each option's default as the command applies it (a plain flag's unset default is False)."""
    unset = getattr(click.core, "UNSET", object())
    defaults = {}
    for p in command.params:
        if isinstance(p, click.Option) and p.name and not p.multiple:  # repeatable options start empty
            defaults[p.name] = False if p.default is unset and p.is_flag else p.default
    return defaults


def _as_config(name: str, value, config_class):
    if name in ("labels",) and isinstance(value, str) and value.isdigit():
        return int(value)
    if name in ("maskers", "decoders") and isinstance(value, str):
        return value.split(",")
    if name == "seeds" and isinstance(value, str) and value.isdigit():
        return list(range(int(value)))
    if name == "milestones" and isinstance(value, str):
        return tuple(float(v) for v in value.split(","))
    return value


@pytest.mark.parametrize("command_path, config_path, renames, python_only", [
    ("sslkit.commands.pretrain_cmd:pretrain_command", "sslkit.pretraining.config:PretrainConfig",
     {"masker_opt": "masker_options", "backbone_opt": "backbone_options", "data_opt": "data_options"}, set()),
    ("sslkit.commands.finetune_cmd:finetune_command", "sslkit.finetuning.config:FinetuneConfig",
     {"backbone_opts": "backbone_options", "data_opts": "data_options"}, {"fold", "eval_batch_size"}),
    ("sslkit.commands.compare_cmd:compare_command", "sslkit.comparison.config:CompareConfig",
     {"masker_opts": "masker_options", "backbone_opts": "backbone_options", "data_opts": "data_options",
      "pretrain_opts": "pretrain_options"}, {"masker_aliases"}),
])
def test_the_commands_defaults_are_the_config_defaults(command_path, config_path, renames, python_only):
    """Every option named like a config field defaults to the field's default (None included: an
    option left unset must mean what the field's None means), and every field is an option except
    the few only Python sets (``masker_aliases`` come from ``--maskers``)."""
    from sslkit.references import resolve

    command, config_class = resolve(command_path), resolve(config_path)
    config = config_class()
    fields = {f.name for f in dataclasses.fields(config_class)}
    options = {renames.get(p.name, p.name) for p in command.params if isinstance(p, click.Option)}
    assert fields - options == python_only, f"{config_class.__name__} fields without a {command.name} option"
    compared = 0
    for name, default in _defaults(command).items():
        key = renames.get(name, name)
        if key not in fields:
            continue  # not a config setting (--seeds of finetune, --nproc, --stats-only, ...)
        want = getattr(config, key)
        got = _as_config(key, default, config_class)
        if key == "milestones":  # shown rounded to 4 digits in the help; only typed values are used
            assert [round(v, 4) for v in want] == [round(v, 4) for v in got], key
        else:
            assert got == want, f"{command.name} --{name.replace('_', '-')} defaults to {default!r}, " \
                                f"{config_class.__name__}.{key} to {want!r}"
        compared += 1
    assert compared >= len(fields) - len(python_only) - 4  # all but the repeatable KEY=VALUE options
