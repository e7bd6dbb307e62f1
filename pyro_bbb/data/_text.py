"""Reading the text files of the data loaders with a clear error for binary or non-UTF-8 files."""

from __future__ import annotations

from pathlib import Path

_GZIP_MAGIC = b"\x1f\x8b"
_UTF16_BOMS = (b"\xff\xfe", b"\xfe\xff")


def read_text(path: Path) -> str:
    """Contents of ``path`` as UTF-8 (a leading BOM is dropped), or ValueError naming the file."""
    raw = Path(path).read_bytes()
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        if raw.startswith(_GZIP_MAGIC):
            reason = "it is gzipped? decompress it first (gunzip)"
        elif raw.startswith(_UTF16_BOMS):
            reason = "it is UTF-16 encoded; save it as UTF-8"
        else:
            reason = f"byte 0x{raw[err.start]:02x} at offset {err.start} is not UTF-8"
        raise ValueError(f"{path} is not a UTF-8 text file: {reason}") from None
