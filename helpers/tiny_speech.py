"""A tiny random Whisper, built in code with its tokenizer (see ``helpers.tiny``).

The tokenizer is laid out as openai/whisper-tiny's, because transformers computes token ids
from that layout: the 256 byte symbols in GPT-2's order (id 220 is the space), a few merges,
then ``<|endoftext|>``, ``<|startoftranscript|>``, the 99 language tokens in transformers'
``LANGUAGES`` order, the task and control tokens ending with ``<|notimestamps|>``, and the
1501 timestamps ``<|0.00|>`` .. ``<|30.00|>`` as ordinary tokens. The feature extractor is
the released one (80 mel bins, 16 kHz, 30-second windows).

Random weights would mostly pick timestamp tokens, which decode to nothing and make
``generate`` seek through the window again and again; the decoder's last bias is turned
away from them (and from the language tokens), so the tiny model writes short random text.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

RATE = 16_000
WORDS = ("a", "cup", "of", "coffee", "the", "cat", "dog", "and", "is")
TASK_TOKENS = ("<|translate|>", "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
               "<|nocaptions|>", "<|notimestamps|>")


def _byte_symbols() -> list[str]:
    """GPT-2's printable stand-ins for the 256 bytes, in vocabulary order."""
    kept = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
            + list(range(ord("®"), ord("ÿ") + 1)))
    shown = kept[:]
    extra = 0
    for b in range(256):
        if b not in kept:
            kept.append(b)
            shown.append(256 + extra)
            extra += 1
    return [chr(c) for c in shown]


def languages() -> list[str]:
    """The 99 language codes of whisper-tiny, in transformers' order."""
    from transformers.models.whisper.tokenization_whisper import LANGUAGES

    return [code for code in LANGUAGES if code != "yue"]  # yue came with large-v3


def whisper_tokenizer() -> Any:
    """A ``WhisperTokenizer`` built in memory (1897 tokens)."""
    from transformers import WhisperTokenizer

    tokens = _byte_symbols()
    seen = set(tokens)
    merges: list[tuple[str, str]] = []
    for word in WORDS:  # " cup" etc. as single tokens, merged left to right
        parts = ["Ġ", *word]
        while len(parts) > 1:
            pair = (parts[0], parts[1])
            if pair not in merges:
                merges.append(pair)
            joined = pair[0] + pair[1]
            if joined not in seen:
                tokens.append(joined)
                seen.add(joined)
            parts = [joined, *parts[2:]]
    specials = ["<|endoftext|>", "<|startoftranscript|>",
                *(f"<|{c}|>" for c in languages()), *TASK_TOKENS]
    vocab = {t: i for i, t in enumerate(tokens + specials)}
    tokenizer = WhisperTokenizer(vocab=vocab, merges=merges, unk_token="<|endoftext|>",
                                 bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                 pad_token="<|endoftext|>", extra_special_tokens=specials,
                                 model_max_length=448)
    tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)], special_tokens=False)
    return tokenizer


def _generation_config(tokenizer: Any) -> Any:
    from transformers import GenerationConfig

    ids = tokenizer.convert_tokens_to_ids
    eos = ids("<|endoftext|>")
    unreadable = [i for i in range(94, 256) if i != 220]  # lone bytes print as "\ufffd"
    return GenerationConfig(
        decoder_start_token_id=ids("<|startoftranscript|>"), bos_token_id=eos,
        eos_token_id=eos, pad_token_id=eos, max_length=12, is_multilingual=True,
        lang_to_id={f"<|{c}|>": ids(f"<|{c}|>") for c in languages()},
        task_to_id={"translate": ids("<|translate|>"), "transcribe": ids("<|transcribe|>")},
        no_timestamps_token_id=ids("<|notimestamps|>"), prev_sot_token_id=ids("<|startofprev|>"),
        suppress_tokens=[ids(t) for t in ("<|startoftranscript|>", "<|translate|>",
                                          "<|transcribe|>", "<|startoflm|>", "<|startofprev|>",
                                          "<|nocaptions|>")] + unreadable,
        begin_suppress_tokens=[220, eos], max_initial_timestamp_index=50,
        return_timestamps=False, alignment_heads=[[0, 0]])


def build_whisper(folder: Path) -> None:
    """A tiny ``WhisperForConditionalGeneration`` (d_model 32, 2 + 2 layers, 177k
    parameters) with the offline tokenizer and the released feature extractor."""
    import torch
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperProcessor,
    )

    tokenizer = whisper_tokenizer()
    ids = tokenizer.convert_tokens_to_ids
    eos, sot = ids("<|endoftext|>"), ids("<|startoftranscript|>")
    config = WhisperConfig(
        vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=2,
        decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2,
        encoder_ffn_dim=64, decoder_ffn_dim=64, max_source_positions=1500,
        max_target_positions=448, decoder_start_token_id=sot, bos_token_id=eos,
        eos_token_id=eos, pad_token_id=eos, begin_suppress_tokens=[220, eos])
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # logits are LN(h) . E[token]: a bias along u lowers the rows -u
        u = torch.randn(config.d_model)
        u /= u.norm()
        model.model.decoder.layer_norm.bias.copy_(10.0 * u)
        table = model.model.decoder.embed_tokens.weight  # tied to proj_out
        table[ids("<|notimestamps|>") + 1:] -= u  # the timestamps
        table[[ids(f"<|{c}|>") for c in languages()]] -= u
        table[ids("<|en|>")] = 0.0  # language detection answers English
    model.generation_config = _generation_config(tokenizer)
    model.save_pretrained(folder)
    features = WhisperFeatureExtractor(feature_size=80, sampling_rate=RATE, hop_length=160,
                                       chunk_length=30, n_fft=400)
    WhisperProcessor(feature_extractor=features, tokenizer=tokenizer).save_pretrained(folder)


BUILDERS: dict[str, Callable[[Path], None]] = {"whisper": build_whisper}
"""Family -> builder, for ``helpers.tiny``."""
