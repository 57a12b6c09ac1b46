"""Every default defined once: read from the source, so a second copy of one fails here.

The values the pretraining, fine-tuning and compare settings share used to live in up to four
places each (the two config dataclasses and the two commands) and drifted apart. Now a setting's
default is its config field's (or, where layers that may not import each other need it, a
constant in :mod:`sslkit.defaults`), and everything else reads it: these tests find each literal
wherever it stands as a default (a field, a constant, a parameter's or keyword's default, a
``.get`` fallback, a click option's ``default=``) and name the one place allowed to hold it.
"""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest

import sslkit
from sslkit.comparison.config import CompareConfig
from sslkit.finetuning.config import FinetuneConfig
from sslkit.pretraining.config import PretrainConfig

ROOT = Path(sslkit.__file__).resolve().parent


def _option_name(call: ast.Call) -> str | None:
    """``click.option("--batch-size", ...)`` -> ``batch_size`` (the long name, before any ``/--no-``)."""
    for arg in call.args:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str) and arg.value.startswith("--"):
            return arg.value.split("/")[0].lstrip("-").replace("-", "_")
    return None


def _is_option(call: ast.Call) -> bool:
    func = call.func
    return (isinstance(func, ast.Attribute) and func.attr == "option") or (isinstance(func, ast.Name)
                                                                           and func.id == "option")


def default_sites(tree: ast.AST) -> list[tuple[str, object, int]]:
    """(setting name, literal value, line) of every literal standing as a default in ``tree``."""
    sites: list[tuple[str, object, int]] = []

    def add(name: str | None, value: ast.expr | None) -> None:
        if name and isinstance(value, ast.Constant) and value.value is not None:
            sites.append((name, value.value, value.lineno))

    for node in ast.walk(tree):
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            add(node.target.id, node.value)  # dataclass fields, annotated constants
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    add(target.id, node.value)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            args = node.args
            positional = [*args.posonlyargs, *args.args]
            for arg, default in zip(positional[len(positional) - len(args.defaults):], args.defaults):
                add(arg.arg, default)
            for arg, kw_default in zip(args.kwonlyargs, args.kw_defaults):
                add(arg.arg, kw_default)
        elif isinstance(node, ast.Call):
            option = _option_name(node) if _is_option(node) else None
            for keyword in node.keywords:
                if keyword.arg == "default" and option:
                    add(option, keyword.value)
                elif keyword.arg not in (None, "default"):
                    add(keyword.arg, keyword.value)  # make_loader(image_size=64), field(default=...) has none
            func = node.func
            if isinstance(func, ast.Attribute) and func.attr == "get" and len(node.args) == 2:
                key = node.args[0]
                if isinstance(key, ast.Constant) and isinstance(key.value, str):
                    add(key.value, node.args[1])  # run_config.get("image_size", 64)
    return sites


def _all_sites() -> list[tuple[str, str, object, int]]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        relative = path.relative_to(ROOT).as_posix()
        for name, value, line in default_sites(ast.parse(path.read_text(encoding="utf-8"))):
            found.append((relative, name, value, line))
    return found


SITES = _all_sites()

#: (what, which setting names, the literal) -> the one definition of each setting holding it.
#: Pretraining's and fine-tuning's learning rate and batch size are two settings each (changing
#: one must not change the other), so each is defined once in its own dataclass.
NAMED_DEFAULTS = [
    ("fine-tuning and pretraining lr", ("lr", "finetune_lr"), 1e-3, {
        "pretraining/config.py:lr", "finetuning/config.py:lr",
        "optimizers.py:lr",  # build_optimizer's own (PyTorch's Adam default) for calls outside a run
    }),
    ("encoder lr scale", ("encoder_lr_scale",), 0.1, {"finetuning/config.py:encoder_lr_scale"}),
    ("batch size", ("batch_size", "finetune_batch_size", "pretrain_batch_size"), 32, {
        "pretraining/config.py:batch_size", "finetuning/config.py:batch_size",
        "data/loader.py:batch_size",  # make_loader's own, for library calls; every run passes its setting
    }),
    ("select", ("select",), "last", {"finetuning/config.py:select"}),
    ("class weights", ("class_weights",), "auto", {"finetuning/config.py:class_weights"}),
    ("standardisation", ("standardize_features",), True, {"finetuning/config.py:standardize_features"}),
    ("image size", ("image_size", "IMAGE_SIZE"), 64, {"defaults.py:IMAGE_SIZE"}),
    ("pretraining epochs", ("epochs", "pretrain_epochs"), 30, {"pretraining/config.py:epochs"}),
    ("backbone", ("backbone", "BACKBONE"), "resnet18", {"defaults.py:BACKBONE"}),
]


def test_the_checker_finds_defaults_in_every_position():
    """Guard against a checker that finds nothing: each kind of default position is seen."""
    source = (
        "X: int = 64\nY = 64\n"
        "def f(image_size=64, *, lr=1e-3): pass\n"
        "make_loader(ds, image_size=64)\nrun_config.get('image_size', 64)\n"
        "@click.option('--batch-size', type=int, default=32)\ndef g(): pass\n"
        "@click.option('--standardize-features/--no-standardize-features', default=True)\ndef h(): pass\n"
        "class C:\n    finetune_lr: float = FinetuneConfig.lr\n"
    )
    found = {(name, value) for name, value, _ in default_sites(ast.parse(source))}
    assert found >= {("X", 64), ("Y", 64), ("image_size", 64), ("lr", 1e-3), ("batch_size", 32),
                     ("standardize_features", True)}
    assert not any(name == "finetune_lr" for name, _ in found)  # reading another default is not defining one


@pytest.mark.parametrize("what, names, value, allowed", NAMED_DEFAULTS, ids=[d[0] for d in NAMED_DEFAULTS])
def test_each_default_is_defined_once(what, names, value, allowed):
    found = {f"{path}:{name}" for path, name, literal, _ in SITES
             if name in names and literal == value and type(literal) is type(value)}
    lines = sorted(f"{path}:{line} {name} = {literal!r}" for path, name, literal, line in SITES
                   if f"{path}:{name}" in found - allowed)
    assert found == allowed, f"{what} {value!r} is defined again (read it from its one definition): {lines}"


def test_the_backbone_name_is_written_once():
    """Not even a help text spells the default backbone out: it reads :data:`sslkit.defaults.BACKBONE`."""
    places = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                      if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef)) and node.body
                      and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and "resnet18" in node.value \
                    and id(node) not in docstrings:
                places.append(f"{path.relative_to(ROOT).as_posix()}:{node.lineno}")
    assert len(places) == 1 and places[0].startswith("defaults.py:"), places


#: CompareConfig setting -> (the config it hands the setting to, that config's field)
SHARED_WITH = {
    "data": ("PretrainConfig", "data"), "labels": ("FinetuneConfig", "labels"), "task": ("FinetuneConfig", "task"),
    "positive_class": ("FinetuneConfig", "positive_class"), "paper_splits": ("FinetuneConfig", "paper_splits"),
    "backbone": ("PretrainConfig", "backbone"), "image_size": ("PretrainConfig", "image_size"),
    "in_chans": ("PretrainConfig", "in_chans"), "split_seed": ("PretrainConfig", "split_seed"),
    "pretrain_epochs": ("PretrainConfig", "epochs"), "pretrain_batch_size": ("PretrainConfig", "batch_size"),
    "finetune_epochs": ("FinetuneConfig", "epochs"), "scratch_full_epochs": ("FinetuneConfig", "epochs"),
    "finetune_batch_size": ("FinetuneConfig", "batch_size"), "finetune_lr": ("FinetuneConfig", "lr"),
    "class_weights": ("FinetuneConfig", "class_weights"), "encoder_lr_scale": ("FinetuneConfig", "encoder_lr_scale"),
    "select": ("FinetuneConfig", "select"), "standardize_features": ("FinetuneConfig", "standardize_features"),
    "device": ("PretrainConfig", "device"), "workers": ("PretrainConfig", "workers"),
    "threads": ("PretrainConfig", "threads"),
}
#: CompareConfig settings whose default differs from the one its cells' configs have, on purpose
#: (each says why in its docstring), or that only compare has.
OWN_DEFAULTS = {"maskers", "masker_options", "masker_aliases", "scratch", "scratch_full", "data_options", "seeds",
                "decoders", "protocol", "folds", "pretrain_splits", "backbone_options", "pretrain_options", "jobs", "out",
                "runs_dir", "keep_checkpoints", "bootstrap_resamples"}


def test_compare_reads_its_shared_defaults_from_the_pretraining_and_finetuning_configs():
    """Each CompareConfig field handed to a cell's config is written ``= PretrainConfig.epochs``
    (read, not copied), and holds the same value; a new field must say which kind it is."""
    fields = [f.name for f in dataclasses.fields(CompareConfig)]
    assert sorted(set(fields) - OWN_DEFAULTS) == sorted(SHARED_WITH), \
        "a new CompareConfig field: add it to SHARED_WITH (and read its default) or to OWN_DEFAULTS"
    tree = ast.parse((ROOT / "comparison" / "config.py").read_text(encoding="utf-8"))
    compare = next(n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "CompareConfig")
    written = {n.target.id: n.value for n in compare.body if isinstance(n, ast.AnnAssign)
               and isinstance(n.target, ast.Name)}
    classes = {"PretrainConfig": PretrainConfig, "FinetuneConfig": FinetuneConfig}
    for name, (owner, field_name) in SHARED_WITH.items():
        value = written[name]
        assert isinstance(value, ast.Attribute) and isinstance(value.value, ast.Name), \
            f"CompareConfig.{name} must read {owner}.{field_name}, not repeat its value"
        assert (value.value.id, value.attr) == (owner, field_name), name
        assert getattr(CompareConfig(), name) == getattr(classes[owner](), field_name), name


def test_compare_hands_every_shared_default_on_unchanged():
    """What the per-cell configs receive from a default CompareConfig is their own default, for
    every setting both sides have (so a cell is the run ``pretrain``/``finetune`` would make)."""
    from sslkit.comparison.cells import finetune_config, pretrain_config
    from sslkit.comparison.config import Cell

    config = CompareConfig()
    pretrain = pretrain_config(config, Cell("random-grid", 0), quiet=False).to_dict()
    finetune = dataclasses.asdict(finetune_config(config, Cell("random-grid", 0), quiet=False))
    for name, (owner, field_name) in SHARED_WITH.items():
        got = pretrain if owner == "PretrainConfig" else finetune
        if name in ("scratch_full_epochs", "threads") or field_name not in got:
            continue  # scratch-full's cells only; threads is set for the whole process
        want = getattr(PretrainConfig() if owner == "PretrainConfig" else FinetuneConfig(), field_name)
        if owner == "FinetuneConfig" and want is None:
            continue
        assert got[field_name] == want, f"compare gives its cells {field_name}={got[field_name]!r}, not {want!r}"


def test_the_pretraining_keys_compare_owns_are_the_keys_it_sets(monkeypatch):
    """``--pretrain-opt`` refuses exactly the keys the cells' pretraining config is given by compare."""
    from sslkit.comparison import cells
    from sslkit.comparison.config import _OWNED_PRETRAIN_KEYS, Cell

    given: list[dict] = []
    real = PretrainConfig.from_mapping

    def spy(values, source="config"):
        given.append(dict(values))
        return real(values, source)

    monkeypatch.setattr(PretrainConfig, "from_mapping", staticmethod(spy))
    for config in (CompareConfig(), CompareConfig(folds=1), CompareConfig(pretrain_splits="train")):
        cells.pretrain_config(config, Cell("dqn", 1), quiet=True)
    assert all(set(values) == set(_OWNED_PRETRAIN_KEYS) for values in given)
    assert set(_OWNED_PRETRAIN_KEYS) <= {f.name for f in dataclasses.fields(PretrainConfig)}
    # a key compare does not own reaches the pretraining as given
    monkeypatch.undo()
    config = CompareConfig(pretrain_options={"lr": 3e-4, "loss": "full"})
    built = cells.pretrain_config(config, Cell("dqn", 1), quiet=True)
    assert (built.lr, built.loss) == (3e-4, "full")
