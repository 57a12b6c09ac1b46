"""`sslkit data inspect`: the issue's "done when" checks through the CLI."""

import json
import shutil
from pathlib import Path

from click.testing import CliRunner

from sslkit.cli import cli

def inspect(*args):
    return CliRunner().invoke(cli, ["data", "inspect", *map(str, args)])


def test_inspect_busi_raw_sample_table(shared_data):
    result = inspect(f"busi:{shared_data / 'busi/raw_sample'}")
    assert result.exit_code == 0, result.output
    for text in ("benign", "malignant", "normal", "24 images", "found: 16 with a lesion, 8 empty"):
        assert text in result.output
    assert "│ all       │    15 │   3 │    6 │    24 │" in result.output


def test_inspect_json_npz_and_medmnist(shared_data):
    out = json.loads(inspect(f"npz:{shared_data / 'busi/busi_128.npz'}", "--json").output)
    assert out["split_sizes"] == {"train": 546, "val": 78, "test": 156}
    assert out["image_sizes"] == {"128x128": 780} and out["lesion_masks"]["present"]
    out = json.loads(inspect(f"medmnist:{shared_data / 'busi/breastmnist_28.npz'}", "--json").output)
    assert out["split_sizes"] == {"train": 546, "val": 78, "test": 156} and len(out["classes"]) == 2


def test_inspect_names_bad_files_and_error_exits_2(shared_data, tmp_path):
    root = tmp_path / "busi"
    shutil.copytree(shared_data / "busi/raw_sample", root)
    cut = root / "normal" / "normal (1).png"
    cut.write_bytes(cut.read_bytes()[: len(cut.read_bytes()) // 2])
    (root / "benign" / "benign (999).png").write_text("I am text")
    result = inspect(f"busi:{root}", "--json")
    assert result.exit_code == 0
    bad = {Path(item["file"]).name: item["reason"] for item in json.loads(result.output)["unreadable"]}
    assert set(bad) == {"normal (1).png", "benign (999).png"}
    table = inspect(f"busi:{root}")
    assert "normal (1).png" in table.output and "(999).png" in table.output
    failed = inspect(f"busi:{root}", "--on-bad-image", "error")
    assert failed.exit_code == 2 and "cannot read image" in failed.output and ".png" in failed.output
    assert "Traceback" not in failed.output


def test_inspect_default_and_user_errors(tmp_path):
    result = inspect("--json")
    assert result.exit_code == 0 and json.loads(result.output)["total"] == 780
    unknown = inspect(f"foldr:{tmp_path}")
    assert unknown.exit_code == 2 and "did you mean 'folder'" in unknown.output
    missing = inspect(f"folder:{tmp_path / 'nope'}")
    assert missing.exit_code == 2 and "nope" in missing.output
