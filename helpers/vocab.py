"""Offline tokenizers for the tiny models: small vocabularies built in code, no download.

A tiny model needs a real tokenizer class with a real file layout, but nothing may be
fetched: ``clip_tokenizer`` builds a byte-level BPE vocabulary in CLIP's format and
``bert_tokenizer`` a WordPiece one laid out like bert-base-uncased (Grounding DINO hard-codes
some of its ids). Every word in ``WORDS`` (the words the lessons use in prompts) encodes as
one token; any other text still encodes, in byte pieces.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from transformers import BertTokenizer, CLIPTokenizer

_WORDS_TEXT = (
    "a an the of in on with and or to is at by for from this that it his her its "
    "photo picture image drawing painting close up small big large little old new "
    "cat cats dog dogs person people man woman child boy girl face faces hand head eye eyes "
    "hair shirt hat glasses sunglasses car cars bus truck bike bicycle motorcycle road street "
    "tree trees flower flowers grass sky cloud clouds sun water sea beach mountain house "
    "building window door table chair bed sofa couch plant bird birds horse cow sheep "
    "astronaut rocket space moon planet coffee cup mug bottle glass plate food pizza cake "
    "apple banana orange fruit bowl book phone laptop computer keyboard mouse screen "
    "dragon castle robot teddy bear ball toy box bag background foreground object "
    "red green blue yellow black white brown gray grey pink purple golden silver "
    "realistic photorealistic detailed high quality best art style digital oil watercolor "
    "sitting standing wearing holding riding flying running lying looking "
    "left right top bottom front back middle center"
)
WORDS: tuple[str, ...] = tuple(_WORDS_TEXT.split())
"""Words the lessons use in prompts: the tiny tokenizers keep each one a whole token."""



def _byte_symbols() -> list[str]:
    """The 256 printable symbols GPT-2/CLIP byte-level BPE uses for the bytes 0..255."""
    keep = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: b for b in keep}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = 256 + extra
            extra += 1
    return [chr(table[b]) for b in range(256)]


def clip_vocab(words: tuple[str, ...] = WORDS) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """A small byte-level BPE vocabulary and merge list in CLIP's format.

    The vocabulary holds the 256 byte symbols, the same with CLIP's end-of-word mark
    ``</w>``, one entry per merge, and then ``<|startoftext|>`` and ``<|endoftext|>`` last:
    OWL-ViT pools text at ``input_ids.argmax()``, so end-of-text must have the highest id.
    Each word gets the merges that join the pieces the earlier merges leave it in, so every
    word of ``words`` encodes as one token.
    """
    symbols = _byte_symbols()
    tokens = symbols + [s + "</w>" for s in symbols]
    ranks: dict[tuple[str, str], int] = {}
    for word in dict.fromkeys(words):
        parts = _bpe(list(word[:-1]) + [word[-1] + "</w>"], ranks)
        while len(parts) > 1:  # join what is left, left to right, with new (lower) ranks
            pair = (parts[0], parts[1])
            ranks[pair] = len(ranks)
            tokens.append(pair[0] + pair[1])
            parts = [pair[0] + pair[1]] + parts[2:]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    vocab: dict[str, int] = {}
    for token in tokens:
        vocab.setdefault(token, len(vocab))
    return vocab, list(ranks)


def _bpe(parts: list[str], ranks: dict[tuple[str, str], int]) -> list[str]:
    """Apply BPE merges to one word's pieces: always the best-ranked adjacent pair first."""
    while len(parts) > 1:
        rank, i = min((ranks.get((parts[j], parts[j + 1]), len(ranks)), j)
                      for j in range(len(parts) - 1))
        if rank == len(ranks):
            break
        parts = parts[:i] + [parts[i] + parts[i + 1]] + parts[i + 2:]
    return parts


def clip_tokenizer(model_max_length: int = 77) -> CLIPTokenizer:
    """An offline CLIP tokenizer with a small vocabulary (see ``clip_vocab``).

    Any text encodes (unknown words fall back to byte pieces); each of ``WORDS`` encodes as
    one token. Padding uses ``<|endoftext|>``, like the real CLIP.
    """
    from transformers import CLIPTokenizer

    vocab, merges = clip_vocab()
    return CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=model_max_length)


# bert-base-uncased puts these characters at 999.. (ASCII punctuation, digits, a-z), which
# is why "." is 1012 and "?" is 1029, ids that Grounding DINO's code hard-codes.
_BERT_CHARS = [chr(c) for c in range(33, 127) if not "A" <= chr(c) <= "Z"]
BERT_IDS = {"[PAD]": 0, "[UNK]": 100, "[CLS]": 101, "[SEP]": 102, "[MASK]": 103,
            ".": 1012, "?": 1029}
"""Token ids the tiny BERT vocabulary shares with bert-base-uncased."""


def bert_vocab(words: tuple[str, ...] = WORDS) -> list[str]:
    """A WordPiece vocabulary (one token per line of ``vocab.txt``) laid out like BERT's.

    ``[PAD]``, ``[UNK]``, ``[CLS]``, ``[SEP]``, ``[MASK]``, ``.`` and ``?`` have the ids of
    bert-base-uncased (see ``BERT_IDS``); other low slots are ``[unusedN]`` placeholders, and
    the course's words and ``##`` continuation letters follow the characters.
    """
    vocab = ["[PAD]"] + [f"[unused{i}]" for i in range(99)] + ["[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab += [f"[unused{i}]" for i in range(99, 99 + 999 - len(vocab))]
    vocab += _BERT_CHARS
    vocab += [w for w in dict.fromkeys(words) if w not in _BERT_CHARS]
    vocab += ["##" + c for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += ["##" + w for w in ("es", "ed", "ing", "er", "ly")]
    assert all(vocab[i] == token for token, i in BERT_IDS.items()), "BERT ids moved"
    return vocab


def bert_tokenizer(folder: Path | None = None) -> BertTokenizer:
    """An offline uncased BERT tokenizer for Grounding DINO (see ``bert_vocab``).

    Args:
        folder: where to write ``vocab.txt`` too, or None to keep it in memory only.
    """
    from transformers import BertTokenizer

    vocab = bert_vocab()
    if folder is not None:
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    return BertTokenizer(vocab={t: i for i, t in enumerate(vocab)}, do_lower_case=True)
