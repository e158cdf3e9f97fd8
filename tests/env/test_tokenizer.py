"""The byte-level BPE: exact raw byte counts per token (the bpb denominator), BOS, vocabulary, persistence."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from tokenizers import Tokenizer

from autoresearch_rl.env.corpus import kjv_documents
from autoresearch_rl.env.tokenizer import BOS, encode_documents, load_tokenizer, token_byte_lengths, train_tokenizer

VOCAB = 1024

SAMPLES = [
    "In the beginning God created the heaven and the earth.",
    "café naïve Zürich façade œuvre ß",
    "emoji 👍🏽 family 👨‍👩‍👧 flag 🇫🇷 ✨",
    "日本語のテキストと中文文本，한국어 텍스트",
    "שלום עולם مرحبا بالعالم नमस्ते",
    "combining e\u0301 a\u0308 zero\u200bwidth \ufeffBOM",
    "\x00\x01\x7f\t\r\n   trailing spaces   ",
    "\U0010fffd private use and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
    "",
]

# Code point ranges the random texts draw from: ASCII to astral planes, skipping surrogates.
_RANGES = [(0x20, 0x7E), (0x00, 0x1F), (0xA0, 0x24F), (0x370, 0x4FF), (0x590, 0x6FF), (0x900, 0x97F),
           (0x300, 0x36F), (0x3040, 0x30FF), (0x4E00, 0x9FFF), (0xAC00, 0xD7A3), (0xE000, 0xF8FF),
           (0xFE00, 0xFE0F), (0x1F300, 0x1FAFF), (0x10000, 0x1FFFF), (0x20000, 0x2A6DF), (0xF0000, 0x10FFFF)]


def random_texts(count: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    texts = []
    for _ in range(count):
        chars = []
        for _ in range(rng.randint(1, 60)):
            lo, hi = rng.choice(_RANGES)
            chars.append(chr(rng.randint(lo, hi)))
            if rng.random() < 0.2:
                chars.append(" ")
        texts.append("".join(chars))
    return texts


@pytest.fixture(scope="module")
def kjv_tokenizer() -> Tokenizer:
    """A BPE trained on 300 KJV training chapters: plenty of text for the requested vocabulary."""
    return train_tokenizer(itertools.islice(kjv_documents("train"), 300), VOCAB)


@pytest.fixture(scope="module")
def ascii_tokenizer() -> Tokenizer:
    """A BPE that never saw a non-ASCII character, so CJK and emoji encode as single-byte tokens."""
    return train_tokenizer(["the quick brown fox jumps over the lazy dog " * 20] * 5, 300)


def encoded_bytes(tok: Tokenizer, lengths: np.ndarray, text: str) -> int:
    return int(sum(lengths[i] for i in tok.encode(text, add_special_tokens=False).ids))


@pytest.mark.parametrize("text", SAMPLES)
def test_token_bytes_sum_to_the_utf8_length_of_the_text(kjv_tokenizer: Tokenizer, text: str) -> None:
    lengths = token_byte_lengths(kjv_tokenizer)
    assert encoded_bytes(kjv_tokenizer, lengths, text) == len(text.encode("utf-8"))


def test_token_bytes_sum_exactly_for_random_unicode(kjv_tokenizer: Tokenizer, ascii_tokenizer: Tokenizer) -> None:
    for tok in (kjv_tokenizer, ascii_tokenizer):
        lengths = token_byte_lengths(tok)
        for text in random_texts(300):
            assert encoded_bytes(tok, lengths, text) == len(text.encode("utf-8")), repr(text)


def test_partial_utf8_tokens_count_their_raw_bytes_not_replacement_chars(ascii_tokenizer: Tokenizer) -> None:
    """The reference's bug #384: a token holding part of a character decodes to U+FFFD (3 bytes)."""
    text = "日本🙂"  # 3 + 3 + 4 bytes, each its own token for a tokenizer that never saw them
    lengths = token_byte_lengths(ascii_tokenizer)
    ids = ascii_tokenizer.encode(text, add_special_tokens=False).ids
    assert len(ids) == 10
    assert all(lengths[i] == 1 for i in ids)
    decoded_len = sum(len(ascii_tokenizer.decode([i]).encode("utf-8")) for i in ids)
    assert decoded_len != 10  # what the buggy decode-and-re-encode count would have used
    assert encoded_bytes(ascii_tokenizer, lengths, text) == 10


def test_every_byte_value_is_a_one_byte_token(ascii_tokenizer: Tokenizer) -> None:
    lengths = token_byte_lengths(ascii_tokenizer)
    for b in range(256):
        text = bytes([b]).decode("latin-1")  # U+0000..U+00FF: 1 or 2 UTF-8 bytes
        assert encoded_bytes(ascii_tokenizer, lengths, text) == len(text.encode("utf-8"))


def test_bos_counts_zero_bytes_and_every_other_token_at_least_one(kjv_tokenizer: Tokenizer) -> None:
    lengths = token_byte_lengths(kjv_tokenizer)
    bos = kjv_tokenizer.token_to_id(BOS)
    assert bos is not None
    assert lengths[bos] == 0
    assert np.count_nonzero(lengths == 0) == 1
    assert lengths.dtype == np.int32


def test_vocabulary_has_the_requested_size(kjv_tokenizer: Tokenizer) -> None:
    assert kjv_tokenizer.get_vocab_size(with_added_tokens=True) == VOCAB
    assert len(token_byte_lengths(kjv_tokenizer)) == VOCAB


def test_every_document_starts_with_bos_and_keeps_its_order(kjv_tokenizer: Tokenizer) -> None:
    docs = SAMPLES + [f"document {i}" for i in range(7)]
    bos = kjv_tokenizer.token_to_id(BOS)
    encoded = list(encode_documents(kjv_tokenizer, docs, batch=3))  # several batches plus a partial one
    assert len(encoded) == len(docs)
    lengths = token_byte_lengths(kjv_tokenizer)
    for doc, ids in zip(docs, encoded):
        assert ids[0] == bos
        assert bos not in ids[1:].tolist()
        assert ids[1:].tolist() == kjv_tokenizer.encode(doc, add_special_tokens=False).ids
        assert int(lengths[ids].sum()) == len(doc.encode("utf-8"))


def test_bos_in_text_is_not_turned_into_the_special_token(kjv_tokenizer: Tokenizer) -> None:
    text = f"a document quoting {BOS} literally"
    (ids,) = encode_documents(kjv_tokenizer, [text])
    assert ids.tolist().count(kjv_tokenizer.token_to_id(BOS)) == 1
    assert int(token_byte_lengths(kjv_tokenizer)[ids].sum()) == len(text.encode("utf-8"))


def test_encoding_round_trips_to_the_original_text(kjv_tokenizer: Tokenizer) -> None:
    for text in SAMPLES + random_texts(50, seed=1):
        ids = kjv_tokenizer.encode(text, add_special_tokens=False).ids
        assert kjv_tokenizer.decode(ids) == text


def test_tokenizer_round_trips_through_tokenizer_json(kjv_tokenizer: Tokenizer, tmp_path: Path) -> None:
    path = tmp_path / "tokenizer.json"
    kjv_tokenizer.save(str(path))
    loaded = load_tokenizer(path)
    np.testing.assert_array_equal(token_byte_lengths(loaded), token_byte_lengths(kjv_tokenizer))
    assert loaded.token_to_id(BOS) == kjv_tokenizer.token_to_id(BOS)
    for text in SAMPLES + random_texts(20, seed=2):
        assert loaded.encode(text).ids == kjv_tokenizer.encode(text).ids


def test_training_is_deterministic() -> None:
    docs = list(itertools.islice(kjv_documents("val"), 20))
    a, b = train_tokenizer(docs, 400), train_tokenizer(docs, 400)
    assert a.get_vocab(with_added_tokens=True) == b.get_vocab(with_added_tokens=True)
