"""Images that appear twice: in the training images and the scored ones, or twice in one split.

A table listing the same file under train and test scores the classifier on images it learnt
from, and a table with every row three times weighs each image three times; both trained
"without a word". The run stays meaningful enough to finish, so these are warnings (notes the
commands print), naming how many images and one example. Images are matched by their
``source`` (the file path, or ``file.npz:split_images[i]``), so identical pixels under two names
are not found: that would need hashing every image.
"""

from __future__ import annotations

from collections import Counter


def repeated_image_notes(labelled: list, val: list, test: list) -> list[str]:
    """Warnings (one sentence each) about sources shared by the splits or repeated in one."""
    notes = []
    trained = {r.source for r in labelled}
    for name, scored in (("test", test), ("validation", val)):
        shared = sorted({r.source for r in scored} & trained)
        if shared:
            notes.append(f"{len(shared)} {name} image(s) are also labelled training images (e.g. "
                         f"'{shared[0]}'), so the {name} scores are optimistic; each image belongs in one split")
    for name, records in (("labelled training", labelled), ("validation", val), ("test", test)):
        repeats = [source for source, n in Counter(r.source for r in records).items() if n > 1]
        if repeats:
            notes.append(f"{len(repeats)} {name} image(s) are listed more than once (e.g. '{repeats[0]}'), "
                         "so they weigh more than the others; list each image once")
    return notes
