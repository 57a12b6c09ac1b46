"""No run "succeeds" having trained nothing, and no input is silently ignored."""

from __future__ import annotations

import numpy as np
import pytest
from fault_helpers import one_sentence


def _corrupt_png(path, seed: int) -> None:
    """A PNG that passes the cheap open-time check (signature, IEND) but whose pixel data is bad."""
    import cv2

    image = (np.random.default_rng(seed).random((40, 40)) * 255).astype(np.uint8)
    data = bytearray(cv2.imencode(".png", image)[1].tobytes())
    start = data.find(b"IDAT") + 20
    for k in range(start, start + 30):
        data[k] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("chans", ["2", "4"])
def test_in_chans_other_than_1_or_3_is_refused(cli, tiny_args, tmp_path, chans):
    code, _, err = cli("pretrain", *tiny_args, "--in-chans", chans, "--out", str(tmp_path / "run"))
    assert code == 2
    assert one_sentence(err) == f"Error: --in-chans must be 1 (grey) or 3 (colour), got {chans}"
    assert not (tmp_path / "run").exists()


def test_a_run_with_no_usable_image_stops(cli, tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i in range(6):
        _corrupt_png(folder / f"{i}.png", i)
    code, _, err = cli("pretrain", "--data", f"folder:{folder}", "--backbone", "mobilenetv3_small_050",
                       "--image-size", "32", "--batch-size", "2", "--epochs", "1", "--device", "cpu", "-q",
                       "--out", str(tmp_path / "run"))
    assert code == 2
    line = one_sentence(err)
    assert line.startswith("Error: no usable image: all ") and "corrupt PNG" in line
    assert not (tmp_path / "run").exists()  # no stub folder, no exported untrained encoder


def test_corrupt_png_prints_no_stray_libpng_line(tmp_path, capfd):
    from sslkit.data.reading import BadImage
    from sslkit.data.reading import read_image_file

    _corrupt_png(tmp_path / "bad.png", 0)
    with pytest.raises(BadImage, match="corrupt PNG"):
        read_image_file(tmp_path / "bad.png")
    assert "libpng" not in capfd.readouterr().err


def test_unknown_option_of_the_embedded_data_is_an_error():
    from sslkit.data import open_dataset
    from sslkit.errors import UserError

    with pytest.raises(UserError, match="the embedded data has no option 'nonsense'; its options: label_key"):
        open_dataset(None, options={"nonsense": 1})
    assert open_dataset(None, options={"label_key": "labels"}).splits["train"]


def test_one_image_with_batchnorm_is_one_sentence(cli, tmp_path):
    data = tmp_path / "one.npz"
    np.savez(data, images=np.full((1, 32, 32), 128, np.uint8))
    code, _, err = cli("pretrain", "--data", f"npz:{data}", "--pretrain-splits", "all", "--backbone", "resnet10t",
                       "--image-size", "32", "--epochs", "1", "--device", "cpu", "-q", "--out", str(tmp_path / "run"))
    assert code == 2
    assert "has BatchNorm layers, which need at least 2 images per batch; this run would have 1" in one_sentence(err)


def test_hook_function_without_hookimpl_is_named_in_a_warning(cli, tmp_path):
    plugin = tmp_path / "unmarked.py"
    plugin.write_text("def register_maskers(register):\n    register('never', object)\n")
    code, out, err = cli("--plugin", str(plugin), "plugins", "--json")
    assert code == 0
    assert ("warning: plugin 'unmarked' defines register_maskers() without @hookimpl, so it is ignored" in err)
    import json

    rows = {row["name"]: row for row in json.loads(out)["plugins"]}
    assert rows["unmarked"]["warnings"] and rows["unmarked"]["registers"] == {}


def test_misspelt_hook_message_names_the_hook_plainly(cli):
    from pathlib import Path

    fixture = Path(__file__).resolve().parents[1] / "plugins" / "misspelt_hook.py"
    code, _, err = cli("--plugin", str(fixture), "list", "maskers")
    assert code == 2
    line = one_sentence(err)
    assert "'register_maskerz' (did you mean 'register_maskers'?)" in line
    assert "<module" not in line


def test_list_with_a_typo_suggests_the_name(cli):
    code, _, err = cli("list", "maskers", "rnadom")
    assert code == 2
    assert "did you mean 'random'?" in one_sentence(err)


def test_nonsense_gets_no_far_fetched_suggestion():
    from sslkit.registry import closest

    assert closest("nonsense", ["seed", "epochs", "lr"]) is None
    assert closest("rnadom", ["random", "dqn"]) == "random"


def test_text_file_named_npz_is_not_an_allow_pickle_message(tmp_path):
    from sslkit.data import open_dataset
    from sslkit.errors import UserError

    (tmp_path / "x.npz").write_text("hello, I am text")
    with pytest.raises(UserError) as info:
        open_dataset(f"npz:{tmp_path / 'x.npz'}")
    assert "allow_pickle" not in info.value.message
    assert "is not a readable .npz file" in info.value.message


@pytest.mark.parametrize(("precision", "advice"), [
    ("fp32", "start a new run with a lower --lr"),
    ("bf16", "start a new run with a lower --lr or with --precision fp32"),
])
def test_nan_advice_fits_the_run(precision, advice):
    from pathlib import Path

    from sslkit.pretraining.config import PretrainConfig
    from sslkit.pretraining.train_state import TrainState

    state = TrainState(PretrainConfig(precision=precision), last_good=(Path("r/checkpoints/last.pt"), 3))
    message = state.diverged("the loss became nan", 4)
    assert message == ("training stopped: the loss became nan at step 4 (epoch 1); the last good checkpoint "
                       f"r/checkpoints/last.pt (step 3) is kept; {advice}")
