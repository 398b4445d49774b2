"""The byte tokenizer as a GGUF vocabulary that llama.cpp tokenizes and detokenizes exactly.

The vocabulary is llama.cpp's byte-level BPE type (``tokenizer.ggml.model = gpt2``): token ``b``
(0-255) is byte ``b`` spelled as its GPT-2 ``bytes_to_unicode`` symbol, the same symbols as the
Hugging Face ``tokenizer.json`` export (export/hf_tokenizer.py). llama.cpp's BPE tokenizer
(llama-vocab.cpp, ``llm_tokenizer_bpe_session``) maps every UTF-8 byte of a pre-tokenized word to
its symbol and then merges adjacent symbols by rank; the vocabulary has no multi-byte tokens and
its one merge pairs two special tokens, which never meet inside text, so every word stays split
into single bytes: our ids 0-255, spaces and newlines included. (llama.cpp's SentencePiece type
would not do: it always rewrites a space as U+2581 and then falls back to that symbol's three
UTF-8 bytes.) llama.cpp refuses a BPE vocabulary without the ``merges`` key, and the gguf writer
refuses an empty array, hence the one inert merge.

Id 256 is our end-of-document token (CONTROL ``</s>``, also BOS since the byte tokenizer has none,
never added automatically), 257 padding (CONTROL ``<pad>``); ids beyond 258 (a padded embedding)
are UNUSED placeholders.
"""

from __future__ import annotations

import gguf

from export.errors import ExportError
from export.formats import BYTE_TOKENIZER, EOS_TOKEN, PAD_TOKEN
from export.hf_tokenizer import bytes_to_unicode
from trilm_jax.data.tokenizer import ByteTokenizer

INERT_MERGE = f"{EOS_TOKEN} {PAD_TOKEN}"
"""The only merge: two special tokens, which the tokenizer never sees side by side in text."""


def byte_vocab(vocab_size: int) -> tuple[list[str], list[int]]:
    """(token texts, GGUF token types) for ``vocab_size`` ids (>= 258)."""
    tok = ByteTokenizer()
    if vocab_size < tok.vocab_size:
        raise ExportError(
            f"model.vocab_size={vocab_size} is smaller than the byte tokenizer's {tok.vocab_size}"
        )
    symbols = bytes_to_unicode()
    tokens = [symbols[b] for b in range(256)] + [EOS_TOKEN, PAD_TOKEN]
    types = [gguf.TokenType.NORMAL] * 256 + [gguf.TokenType.CONTROL] * 2
    extra = vocab_size - len(tokens)
    tokens += [f"<unused{i}>" for i in range(extra)]
    types += [gguf.TokenType.UNUSED] * extra
    return tokens, [int(t) for t in types]


def add_byte_vocab(writer: gguf.GGUFWriter, tokenizer: str, vocab_size: int) -> None:
    """Write the ``tokenizer.ggml.*`` keys for our tokenizer ``tokenizer``."""
    if tokenizer != BYTE_TOKENIZER:
        raise ExportError(f"tokenizer {tokenizer!r}: GGUF export knows the byte tokenizer only")
    tok = ByteTokenizer()
    tokens, types = byte_vocab(vocab_size)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges([INERT_MERGE])
    writer.add_bos_token_id(tok.eos_id)
    writer.add_eos_token_id(tok.eos_id)
    writer.add_pad_token_id(tok.pad_id)
    writer.add_add_bos_token(False)
    writer.add_add_eos_token(False)
