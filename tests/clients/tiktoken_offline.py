"""Python `tiktoken` without network: its cache folder is filled with the `.tiktoken` files that
ship inside the `tiktoken-rs` crate source, each named by the SHA-1 of the URL tiktoken loads it
from (tiktoken still checks their SHA-256). Import this before `tiktoken`.
"""

import atexit
import glob
import hashlib
import os
import shutil
import tempfile

URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def _fill_cache() -> str:
    assets = sorted(glob.glob(os.path.expanduser("~/.cargo/registry/src/*/tiktoken-rs-*/assets")))
    if not assets:
        raise SystemExit("tiktoken-rs crate source not found: run `cargo fetch` first")
    cache = tempfile.mkdtemp(prefix="tiktoken-cache-")
    atexit.register(shutil.rmtree, cache, ignore_errors=True)  # ~5 MB a run otherwise left behind
    for name, url in URLS.items():
        key = hashlib.sha1(url.encode()).hexdigest()
        shutil.copy(os.path.join(assets[-1], f"{name}.tiktoken"), os.path.join(cache, key))
    return cache


if "TIKTOKEN_CACHE_DIR" not in os.environ:
    os.environ["TIKTOKEN_CACHE_DIR"] = _fill_cache()

import tiktoken  # noqa: E402


def encoding(name: str) -> "tiktoken.Encoding":
    return tiktoken.get_encoding(name)
