"""csv adapter: columns, relative paths, own splits, groups, masks and bad input."""

import numpy as np
import pytest

from sslkit.data import make_loader, open_dataset
from sslkit.errors import UserError


@pytest.fixture()
def images(tmp_path):
    import cv2

    (tmp_path / "img").mkdir()
    for i in range(12):
        cv2.imwrite(str(tmp_path / "img" / f"{i}.png"), np.full((10, 10), i * 10, np.uint8))
    mask = np.zeros((10, 10), np.uint8)
    mask[2:4, 2:4] = 255
    cv2.imwrite(str(tmp_path / "img" / "m.png"), mask)
    return tmp_path


def test_csv_with_labels_groups_and_masks(images):
    rows = ["image_path,label,group,mask_path"]
    rows += [f"img/{i}.png,{'tumour' if i % 3 == 0 else 'healthy'},p{i // 2},{'img/m.png' if i % 3 == 0 else ''}" for i in range(12)]
    (images / "table.csv").write_text("\n".join(rows) + "\n")
    ds = open_dataset(f"csv:{images / 'table.csv'}", val_fraction=0.2, test_fraction=0.2)
    assert ds.class_names == ["healthy", "tumour"] and ds.has_lesion_masks
    records = ds.records()
    assert len(records) == 12 and sum(r.label for r in records) == 4
    where = {}
    for split, rs in ds.splits.items():
        for r in rs:
            assert where.setdefault(r.group, split) == split
    batch = next(iter(make_loader(ds, ("train", "val", "test"), purpose="eval", image_size=10, batch_size=12, shuffle=False)))
    assert batch["has_lesion"].sum() == 4


def test_csv_own_splits_numeric_labels_and_missing_files(images):
    text = "image_path;label;split\n" + "\n".join(
        f"img/{i}.png;{i % 3};{['train', 'valid', 'test'][i % 3]}" for i in range(12)) + "\nimg/gone.png;1;train\n"
    (images / "s.csv").write_text(text)
    ds = open_dataset(f"csv:{images / 's.csv'}")
    assert ds.class_names == ["0", "1", "2"]
    assert [len(ds.splits[s]) for s in ("train", "val", "test")] == [4, 4, 4]
    assert ds.unreadable == [(str(images / "img" / "gone.png"), "file not found")]


def test_csv_bad_input(images):
    (images / "nolabel.csv").write_text("image_path\nimg/0.png\n")
    with pytest.raises(UserError, match="no column 'label'"):
        open_dataset(f"csv:{images / 'nolabel.csv'}")
    ds = open_dataset(f"csv:{images / 'nolabel.csv'}", options={"label_column": ""}, test_fraction=0, val_fraction=0)
    assert ds.class_names is None and ds.records()[0].label is None
    (images / "badsplit.csv").write_text("image_path,label,split\nimg/0.png,a,holdout\n")
    with pytest.raises(UserError, match="line 2.*holdout"):
        open_dataset(f"csv:{images / 'badsplit.csv'}")
    (images / "header_only.csv").write_text("image_path,label\n")
    with pytest.raises(UserError, match="no rows"):
        open_dataset(f"csv:{images / 'header_only.csv'}")
