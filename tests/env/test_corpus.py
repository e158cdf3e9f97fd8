"""The embedded KJV corpus: chapters as documents, split disjointly and deterministically."""

from __future__ import annotations

import pytest

from autoresearch_rl.env.corpus import SPLITS, kjv_chapters, kjv_documents, split_of

KJV_CHAPTERS = 1189


@pytest.fixture(scope="module")
def chapters() -> list[str]:
    return kjv_chapters()


@pytest.fixture(scope="module")
def splits() -> dict[str, list[str]]:
    return {split: list(kjv_documents(split)) for split in SPLITS}


def test_corpus_has_every_chapter_once(chapters: list[str]) -> None:
    assert len(chapters) == KJV_CHAPTERS
    assert len(set(chapters)) == KJV_CHAPTERS
    assert chapters[0].startswith("Genesis 1\n1 In the beginning")
    assert chapters[-1].startswith("Revelation 22\n")


def test_splits_are_disjoint(splits: dict[str, list[str]]) -> None:
    train, val, test = (set(splits[s]) for s in SPLITS)
    assert not train & val
    assert not train & test
    assert not val & test


def test_splits_together_cover_every_chapter(splits: dict[str, list[str]], chapters: list[str]) -> None:
    assert sum(len(docs) for docs in splits.values()) == len(chapters)
    assert set().union(*map(set, splits.values())) == set(chapters)


@pytest.mark.parametrize("split", ["val", "test"])
def test_val_and_test_each_hold_about_five_percent(splits: dict[str, list[str]], split: str) -> None:
    share = len(splits[split]) / KJV_CHAPTERS
    assert 0.045 <= share <= 0.055


@pytest.mark.parametrize("split", ["val", "test"])
def test_held_out_chapters_are_interleaved_through_the_whole_bible(split: str) -> None:
    indices = [i for i in range(KJV_CHAPTERS) if split_of(i) == split]
    assert indices[0] < 20 and indices[-1] >= KJV_CHAPTERS - 20
    assert max(b - a for a, b in zip(indices, indices[1:])) <= 20


def test_splits_are_deterministic(splits: dict[str, list[str]]) -> None:
    for split in SPLITS:
        assert list(kjv_documents(split)) == splits[split]


def test_split_documents_keep_canonical_order(splits: dict[str, list[str]], chapters: list[str]) -> None:
    position = {chapter: i for i, chapter in enumerate(chapters)}
    for docs in splits.values():
        order = [position[d] for d in docs]
        assert order == sorted(order)


def test_unknown_split_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown split"):
        next(kjv_documents("dev"))
