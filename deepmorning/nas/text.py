"""Text corpora for the recurrent-cell search (Zoph & Le 2017, Sec. 4.2): token ids, three splits.

Two sources, chosen by a spec string:

``ptb:PATH``
    Penn Treebank, word level, from the standard files of Mikolov's preprocessing in PATH:
    ``ptb.train.txt``, ``ptb.valid.txt``, ``ptb.test.txt`` (one sentence per line, words separated
    by spaces, rare words already replaced by ``<unk>``, a 10,000-word vocabulary). Each line ends
    with an ``<eos>`` token, as in every PTB language-model setup. The vocabulary is the training
    file's; a validation or test word outside it means the files are not the preprocessed ones and
    is reported as malformed.
``pydoc``
    The embedded default, needing no download: the English help text every Python install ships
    in ``pydoc_data/topics.py`` (the ``topics`` dict: about 0.46 M characters of documentation
    prose and code), character level. The topics are joined in sorted key order and split
    contiguously 90 / 5 / 5 % into train / validation / test; the vocabulary is every character
    of the training part, and a character seen only in validation or test maps to the rare-token
    id ``0`` (``<unk>``).

A missing or malformed file is one :class:`DeepmorningError` line.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from deepmorning.platform.errors import DeepmorningError

PTB_FILES = ("ptb.train.txt", "ptb.valid.txt", "ptb.test.txt")
EOS = "<eos>"
UNK = "<unk>"
EMBEDDED_SPLIT = (0.90, 0.05)  # train, validation; the rest is test


@dataclass(frozen=True, eq=False)
class Corpus:
    """Token ids (int64) of the three splits and the vocabulary (id -> token)."""

    name: str
    level: str  # "word" or "char"
    vocab: tuple[str, ...]
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray

    @property
    def vocab_size(self) -> int:
        return len(self.vocab)

    def describe(self) -> str:
        return (f"{self.name} ({self.level} level): vocabulary {self.vocab_size}, "
                f"{len(self.train):,} / {len(self.valid):,} / {len(self.test):,} tokens "
                "train / validation / test")


def _read_text(path: Path) -> str:
    if not path.is_file():
        raise DeepmorningError(
            f"{path} does not exist (Penn Treebank needs {', '.join(PTB_FILES)})")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise DeepmorningError(f"{path} is malformed: not UTF-8 text (byte {exc.start})") from None
    if "\x00" in text:
        raise DeepmorningError(f"{path} is malformed: it holds NUL bytes (a binary file?)")
    return text


def ptb_tokens(text: str) -> list[str]:
    """Words of every non-empty line followed by ``<eos>`` (Mikolov's PTB convention)."""
    tokens: list[str] = []
    for line in text.splitlines():
        words = line.split()
        if words:
            tokens += [*words, EOS]
    return tokens


def load_ptb(folder: str | Path) -> Corpus:
    folder = Path(folder)
    if not folder.is_dir():
        raise DeepmorningError(f"Penn Treebank directory {folder} does not exist")
    splits = []
    for name in PTB_FILES:
        tokens = ptb_tokens(_read_text(folder / name))
        if not tokens:
            raise DeepmorningError(f"{folder / name} is malformed: it holds no words")
        splits.append(tokens)
    vocab = tuple(sorted(set(splits[0])))
    index = {token: i for i, token in enumerate(vocab)}
    ids = []
    for name, tokens in zip(PTB_FILES, splits, strict=True):
        unknown = next((t for t in tokens if t not in index), None)
        if unknown is not None:
            raise DeepmorningError(
                f"{folder / name} is malformed: the word '{unknown[:40]}' is not in the training "
                f"vocabulary (the standard files replace rare words by {UNK})")
        ids.append(np.array([index[t] for t in tokens], dtype=np.int64))
    return Corpus("ptb", "word", vocab, *ids)


def load_embedded(limit: int | None = None) -> Corpus:
    """Python's own help text (``pydoc_data.topics``), character level; see the module docs."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[key] for key in sorted(topics))
    if limit is not None:
        text = text[:limit]
    n_train = int(len(text) * EMBEDDED_SPLIT[0])
    n_valid = int(len(text) * EMBEDDED_SPLIT[1])
    parts = text[:n_train], text[n_train:n_train + n_valid], text[n_train + n_valid:]
    vocab = (UNK, *sorted(set(parts[0])))
    index = {ch: i for i, ch in enumerate(vocab)}
    ids = [np.array([index.get(ch, 0) for ch in part], dtype=np.int64) for part in parts]
    return Corpus("pydoc", "char", vocab, *ids)


def load_corpus(spec: str, limit: int | None = None) -> Corpus:
    """``pydoc`` or ``ptb:PATH`` (``limit``: cap the embedded text's characters)."""
    kind, _, path = spec.partition(":")
    if kind == "pydoc" and not path:
        return load_embedded(limit)
    if kind == "ptb":
        if not path:
            raise DeepmorningError("ptb needs a directory: --dataset ptb:PATH")
        return load_ptb(path)
    raise DeepmorningError(f"unknown text corpus '{spec}' (choose pydoc or ptb:PATH)")


def batchify(ids: np.ndarray, batch_size: int) -> np.ndarray:
    """Cut a token stream into ``batch_size`` contiguous columns: shape (T, batch_size)."""
    steps = len(ids) // batch_size
    if steps < 2:
        raise DeepmorningError(f"{len(ids)} tokens are too few for batches of {batch_size}")
    return ids[: steps * batch_size].reshape(batch_size, steps).T.copy()
