"""A byte-level BPE trained locally with HF `tokenizers`, and the raw byte length of every token.

Stored as JSON (tokenizer.json) and safetensors (token_bytes), never pickle. Bytes per token come
from each token's raw bytes, not from decode/re-encode (the reference's bug #384); special tokens
count 0 bytes, and the evaluator leaves zero-byte targets out of both sums (as the reference does).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

BOS = "<|bos|>"  # starts every document; the only special token
SPECIAL_TOKENS = (BOS,)


def _byte_decoder() -> dict[str, int]:
    """Inverse of GPT-2's bytes_to_unicode table used by the ByteLevel pre-tokenizer."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    chars = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars)}


def train_tokenizer(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Train a byte-level BPE with GPT-2 style pre-splitting; all 256 bytes are in the vocabulary."""
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer=trainer)
    return tokenizer


def token_byte_lengths(tokenizer: Tokenizer) -> np.ndarray:
    """int32 array: number of raw UTF-8 bytes each token id stands for (0 for special tokens)."""
    decoder = _byte_decoder()
    vocab = tokenizer.get_vocab(with_added_tokens=True)
    lengths = np.zeros(tokenizer.get_vocab_size(with_added_tokens=True), dtype=np.int32)
    for token, idx in vocab.items():
        if token in SPECIAL_TOKENS:
            continue
        lengths[idx] = len(bytes(decoder[ch] for ch in token))
    return lengths


def encode_documents(tokenizer: Tokenizer, documents: Iterable[str], batch: int = 256) -> Iterator[np.ndarray]:
    """Token ids of each document, prefixed by BOS, encoded in parallel batches."""
    bos = tokenizer.token_to_id(BOS)
    tokenizer.encode_special_tokens = True  # a literal "<|bos|>" in the text is text, not a boundary
    pending: list[str] = []

    def flush() -> Iterator[np.ndarray]:
        for enc in tokenizer.encode_batch(pending, add_special_tokens=False):
            yield np.asarray([bos, *enc.ids], dtype=np.int64)
        pending.clear()

    for doc in documents:
        pending.append(doc)
        if len(pending) >= batch:
            yield from flush()
    if pending:
        yield from flush()


def load_tokenizer(path: Path) -> Tokenizer:
    """Load tokenizer.json written by `Tokenizer.save`."""
    return Tokenizer.from_file(str(path))
