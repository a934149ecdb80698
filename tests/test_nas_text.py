"""Text corpora for the recurrent-cell search: Penn Treebank files and the embedded pydoc text."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from deepmorning.nas.text import EOS, batchify, load_corpus, load_embedded, load_ptb
from deepmorning.platform.errors import DeepmorningError

TRAIN = " the cat sat on the mat \n\n a dog <unk> the cat \n"
VALID = " the dog sat \n"
TEST = " a cat <unk> on a mat \n"


def write_ptb(folder: Path, train=TRAIN, valid=VALID, test=TEST) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in (("train", train), ("valid", valid), ("test", test)):
        (folder / f"ptb.{name}.txt").write_text(text)
    return folder


def test_ptb_files_are_read_word_by_word_with_eos(tmp_path):
    corpus = load_ptb(write_ptb(tmp_path / "ptb"))
    assert corpus.level == "word" and EOS in corpus.vocab and "<unk>" in corpus.vocab
    words = [corpus.vocab[i] for i in corpus.train]
    assert words == "the cat sat on the mat <eos> a dog <unk> the cat <eos>".split()
    assert [corpus.vocab[i] for i in corpus.valid] == ["the", "dog", "sat", EOS]
    assert len(corpus.test) == 7 and corpus.vocab_size == 9
    assert corpus.train.dtype == np.int64
    assert load_corpus(f"ptb:{tmp_path / 'ptb'}").vocab == corpus.vocab
    assert "9" in corpus.describe()


@pytest.mark.parametrize("break_it, fragment", [
    (lambda d: (d / "ptb.valid.txt").unlink(), "ptb.valid.txt does not exist"),
    (lambda d: (d / "ptb.test.txt").write_text("a zebra\n"), "'zebra' is not in the training"),
    (lambda d: (d / "ptb.train.txt").write_bytes(b"\xff\xfe\x00\x01"), "not UTF-8"),
    (lambda d: (d / "ptb.train.txt").write_text("\n \n"), "holds no words"),
])
def test_a_missing_or_malformed_ptb_file_is_one_line(tmp_path, break_it, fragment):
    folder = write_ptb(tmp_path / "ptb")
    break_it(folder)
    with pytest.raises(DeepmorningError, match=fragment) as info:
        load_ptb(folder)
    assert "\n" not in str(info.value)


def test_corpus_spec_errors(tmp_path):
    for spec, fragment in (("ptb", "ptb:PATH"), ("wiki", "unknown text corpus"),
                           (f"ptb:{tmp_path / 'none'}", "does not exist")):
        with pytest.raises(DeepmorningError, match=fragment):
            load_corpus(spec)


def test_embedded_text_is_pythons_help_character_level():
    corpus = load_embedded(limit=20_000)
    assert corpus.level == "char" and corpus.vocab[0] == "<unk>"
    assert len(corpus.train) == 18_000 and len(corpus.valid) == 1_000
    assert len(corpus.test) == 1_000
    text = "".join(corpus.vocab[i] for i in corpus.train[:200])
    assert text.isprintable() or "\n" in text
    full = load_embedded()
    assert len(full.train) > 400_000  # about 0.46 M characters in all


def test_batchify_cuts_contiguous_columns():
    ids = np.arange(10)
    batches = batchify(ids, 3)
    assert batches.shape == (3, 3)
    assert batches[:, 0].tolist() == [0, 1, 2] and batches[:, 1].tolist() == [3, 4, 5]
    with pytest.raises(DeepmorningError, match="too few"):
        batchify(np.arange(3), 2)
