"""The byte tokenizer as Hugging Face ``tokenizer.json`` (a ``tokenizers`` BPE with no merges).

With GPT-2's byte-level pre-tokenizer (``ByteLevel``, no regex split, no prefix space), text
becomes one symbol per UTF-8 byte, each spelled by GPT-2's printable byte-to-unicode map
(Radford et al. 2019, ``encoder.py`` ``bytes_to_unicode``). A vocabulary giving byte ``b``'s
symbol the id ``b``, and no merges, reproduces our ids 0-255 exactly; ``</s>`` (256) and
``<pad>`` (257) are added special tokens, as in trilm_jax/data/tokenizer.py.
"""

from __future__ import annotations

import json
from pathlib import Path

from export.errors import ExportError
from export.formats import BYTE_TOKENIZER, EOS_TOKEN, PAD_TOKEN
from trilm_jax.data.tokenizer import ByteTokenizer


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from the 256 bytes to printable unicode characters."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, (chr(c) for c in chars), strict=True))


def _special(token_id: int, content: str) -> dict:
    return {
        "id": token_id,
        "content": content,
        "single_word": False,
        "lstrip": False,
        "rstrip": False,
        "normalized": False,
        "special": True,
    }


def tokenizer_json() -> dict:
    tok = ByteTokenizer()
    vocab = {symbol: b for b, symbol in bytes_to_unicode().items()}
    vocab[EOS_TOKEN], vocab[PAD_TOKEN] = tok.eos_id, tok.pad_id
    byte_level = {"add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [_special(tok.eos_id, EOS_TOKEN), _special(tok.pad_id, PAD_TOKEN)],
        "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", **byte_level},
        "post_processor": None,
        "decoder": {"type": "ByteLevel", **byte_level},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [],
        },
    }


def write_byte_tokenizer(out_dir: Path, tokenizer: str, max_length: int) -> list[str]:
    """Write tokenizer.json, tokenizer_config.json and special_tokens_map.json; return names."""
    if tokenizer != BYTE_TOKENIZER:
        raise ExportError(f"tokenizer {tokenizer!r}: HF export knows the byte tokenizer only")
    special = {"bos_token": EOS_TOKEN, "eos_token": EOS_TOKEN, "pad_token": PAD_TOKEN}
    files = {
        "tokenizer.json": tokenizer_json(),
        "tokenizer_config.json": {
            "tokenizer_class": "PreTrainedTokenizerFast",
            **special,
            "model_max_length": max_length,
            "add_bos_token": False,
            "add_eos_token": False,
            "clean_up_tokenization_spaces": False,
        },
        "special_tokens_map.json": special,
    }
    for name, content in files.items():
        (Path(out_dir) / name).write_text(json.dumps(content, indent=2, ensure_ascii=False) + "\n")
    return list(files)
