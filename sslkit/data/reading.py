"""Decoding image files robustly, and bringing any image to the model's dtype and channels.

Reading: OpenCV decodes from bytes (so odd file names work), ``IMREAD_UNCHANGED`` keeps 16-bit
depth and alpha; PIL is the fallback for what OpenCV cannot read. Failures raise
:class:`BadImage` with a short reason.

Checking: :func:`quick_check` finds the common broken files without decoding (empty file, a
text file named ``.png``, a PNG without its end chunk, a JPEG without its end marker, a BMP
shorter than its header says), reading a few bytes from each end, so adapters can check every
file when a dataset is opened at almost no cost.
"""

from __future__ import annotations

import os

import numpy as np



class BadImage(Exception):
    """An image or mask that cannot be decoded; ``str(error)`` is the reason (not a UserError:
    whether it is fatal is decided by the ``on_bad_image`` policy, not by the reader)."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")

#: the largest image sslkit decodes (16384 x 16384): a 40000 x 40000 PNG is a few kilobytes on
#: disk and 1.6 GB decoded; OpenCV refused it with an error that escaped as "unexpected"
MAX_PIXELS = 1 << 28

_SIGNATURES = {
    b"\x89PNG\r\n\x1a\n": "png",
    b"\xff\xd8\xff": "jpeg",
    b"II*\x00": "tiff",
    b"MM\x00*": "tiff",
    b"II+\x00": "tiff",  # BigTIFF
    b"MM\x00+": "tiff",
    b"BM": "bmp",
}


def sniff_format(head: bytes) -> str | None:
    """The image format whose signature ``head`` starts with, or None."""
    for signature, name in _SIGNATURES.items():
        if head.startswith(signature):
            return name
    return None


def quick_check(path: str | os.PathLike) -> str | None:
    """None when ``path`` looks like an intact image, else the reason it is not.

    Cheap (reads at most 40 bytes): it catches empty, non-image and truncated PNG/JPEG/BMP
    files, and PNGs too large to decode (their size is in the header). A file that passes can still fail to decode; the loader handles that case.
    """
    try:
        size = os.path.getsize(path)
        if size == 0:
            return "empty file"
        with open(path, "rb") as handle:
            head = handle.read(24)
            handle.seek(max(0, size - 16))
            tail = handle.read(16)
    except OSError as error:
        return f"cannot open: {error.strerror or error}"
    kind = sniff_format(head)
    if kind is None:
        return "not an image file (unknown format signature)"
    if kind == "png" and b"IEND" not in tail:
        return "truncated PNG (no IEND chunk at the end)"
    if kind == "png" and len(head) >= 24:
        try:
            _check_pixels(int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big"))
        except BadImage as error:
            return str(error)
    if kind == "jpeg" and b"\xff\xd9" not in tail:
        return "truncated JPEG (no end-of-image marker)"
    if kind == "bmp" and len(head) >= 6:
        declared = int.from_bytes(head[2:6], "little")
        if declared > size:
            return f"truncated BMP ({size} of {declared} bytes)"
    return None


def png_chunk_problem(data: bytes) -> str | None:
    """None when every chunk of the PNG ``data`` has its stored CRC-32, else what is wrong.

    Checked before decoding because libpng reports corrupt data by printing to the terminal (a
    stray ``libpng error:`` line) before OpenCV gives up; a CRC pass costs far less than a decode."""
    import zlib

    position = 8
    while position + 12 <= len(data):
        length = int.from_bytes(data[position:position + 4], "big")
        kind = data[position + 4:position + 8]
        end = position + 8 + length
        if end + 4 > len(data):
            return f"truncated PNG (its {kind.decode('latin-1')} chunk runs past the end of the file)"
        stored = int.from_bytes(data[end:end + 4], "big")
        if zlib.crc32(data[position + 4:end]) != stored:
            return f"corrupt PNG (its {kind.decode('latin-1')} chunk fails its checksum)"
        if kind == b"IEND":
            return None
        position = end + 4
    return "truncated PNG (no IEND chunk)"


def read_image_file(path: str | os.PathLike) -> np.ndarray:
    """Decode ``path`` to (H, W) or (H, W, C) in RGB(A) order, keeping its bit depth."""
    import cv2

    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as error:
        raise BadImage(f"cannot open: {error.strerror or error}") from None
    if data.size == 0:
        raise BadImage("empty file")
    kind = sniff_format(data[:16].tobytes())
    if kind == "png":
        problem = png_chunk_problem(data.tobytes())
        if problem:  # libpng would print "libpng error: ..." to the terminal before failing
            raise BadImage(problem)
        if data.size >= 24:  # IHDR, the first chunk: width and height, before anything is decoded
            width, height = (int.from_bytes(data[k:k + 4].tobytes(), "big") for k in (16, 20))
            _check_pixels(width, height)
    if kind is None:
        image = None  # never hand text to a decoder that prints warnings
    else:
        try:
            image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
        except cv2.error as error:  # e.g. OpenCV's own size limit for other formats
            raise BadImage(f"cannot decode: {str(error).strip().splitlines()[-1][:200]}") from None
    if image is None:
        image = _read_with_pil(path)
    elif image.ndim == 3 and image.shape[2] == 3:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    elif image.ndim == 3 and image.shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGRA2RGBA)
    return image


def _check_pixels(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise BadImage(f"it is {width} x {height} pixels, more than sslkit decodes ({MAX_PIXELS // 1_000_000} million "
                       "pixels); downscale it first")


def _read_with_pil(path: str | os.PathLike) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as opened:
            _check_pixels(*opened.size)
            opened.load()
            image: Image.Image = opened
            if image.mode == "P":
                image = image.convert("RGBA" if "transparency" in image.info else "RGB")
            elif image.mode == "1":
                image = image.convert("L")
            return np.asarray(image)
    except UnidentifiedImageError:
        raise BadImage("not a readable image") from None
    except Image.DecompressionBombError as error:
        raise BadImage(f"cannot decode: {error}") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise BadImage(f"cannot decode: {error}") from None


def to_unit_range(image: np.ndarray) -> np.ndarray:
    """uint8 stays uint8; bool becomes 0/255; anything else (16-bit, signed, float) becomes
    float32 in [0, 1] by per-image min-max, because medical 16-bit data rarely spans the full
    range (12-bit CT/MR stored in 16 bits would look black if divided by 65535)."""
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * 255
    data = image.astype(np.float32, copy=False)
    finite = np.isfinite(data)
    if not finite.all():
        data = np.where(finite, data, 0.0).astype(np.float32)
    low, high = float(data.min()), float(data.max())
    if high <= low:
        return np.zeros(data.shape, np.float32)
    return (data - low) * np.float32(1.0 / (high - low))


def to_channels(image: np.ndarray, in_chans: int) -> np.ndarray:
    """(H, W, in_chans): grey repeated to 3, RGB(A) to grey by luminance, alpha dropped."""
    import cv2

    if image.ndim == 2:
        image = image[:, :, None]
    elif image.ndim != 3:
        raise BadImage(f"expected a 2-D image, got an array of shape {image.shape}")
    channels = image.shape[2]
    if channels == 4:  # RGBA -> RGB
        image, channels = image[:, :, :3], 3
    elif channels == 2:  # grey + alpha
        image, channels = image[:, :, :1], 1
    if channels == in_chans:
        return image
    if channels == 1 and in_chans == 3:
        return np.repeat(image, 3, axis=2)
    if channels == 3 and in_chans == 1:
        return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY)[:, :, None]
    raise BadImage(f"cannot turn a {channels}-channel image into {in_chans} channels")


def mask_of(array: np.ndarray) -> np.ndarray:
    """A lesion mask file's pixels as bool (H, W): any channel above zero."""
    array = np.asarray(array)
    if array.ndim == 3:
        # Element-wise over channel planes: numpy's max(axis=2) over 3 interleaved values is
        # ~50x slower than this for a 500 x 600 mask.
        merged = array[:, :, 0] > 0
        for channel in range(1, array.shape[2]):
            merged |= array[:, :, channel] > 0
        return merged
    return array > 0
