"""A spoken sentence as the prompt: speech -> text with Whisper -> any text prompt.

``speech.transcribe("data/speech/a-cup-of-coffee.wav")`` returns the words as a ``str``,
ready for ``Detector.detect`` or ``ClipSeg``; ``load_audio`` gives the samples Whisper hears
(mono, 16 kHz, float32 in [-1, 1]) for a run to log (``run.log_audio``).

Audio comes from a file of any format PyAV's FFmpeg reads (WAV, MP3, FLAC, OGG, M4A, the
sound of a video) or from an array with its ``sampling_rate``. Whisper reads 30-second
windows; longer audio is transcribed window after window (up to ``MAX_SECONDS``). Silence
(no sample louder than ``SILENCE``) gives "" without running the model, because Whisper
tends to invent a word or two ("you", "Thank you.") when it hears nothing.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from helpers import checks, models

FAMILIES = ("whisper",)
RATE = 16_000
"""The sampling rate Whisper reads."""
WINDOW_S = 30
"""Whisper's window: longer audio is transcribed window after window."""
MAX_SECONDS = 600
"""The longest audio ``load_audio`` takes (10 minutes)."""
SILENCE = 1e-3
"""Audio whose loudest sample is quieter than this is silence: "" without the model."""
TASKS = ("transcribe", "translate")


@dataclass(frozen=True)
class Audio:
    """Mono samples at ``RATE`` Hz, float32 in [-1, 1].

    Attributes:
        samples: (N,) float32.
        source: where they came from, for messages and records.
    """

    samples: np.ndarray
    source: str = "an array"

    @property
    def rate(self) -> int:
        """Samples per second: always ``RATE``."""
        return RATE

    @property
    def seconds(self) -> float:
        """The duration."""
        return len(self.samples) / RATE

    @property
    def silent(self) -> bool:
        """True when no sample is louder than ``SILENCE``."""
        return not len(self.samples) or float(np.abs(self.samples).max()) < SILENCE

    def __repr__(self) -> str:
        return f"Audio({self.seconds:.2f} s at {RATE} Hz from {self.source})"


def _resample(samples: np.ndarray, rate: int) -> np.ndarray:
    """Mono float32 ``samples`` at ``rate`` Hz -> at ``RATE`` Hz (FFmpeg's resampler)."""
    if rate == RATE or not len(samples):
        return samples
    import av

    frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(samples)[None], format="flt",
                                       layout="mono")
    frame.sample_rate = rate
    resampler = av.AudioResampler(format="flt", layout="mono", rate=RATE)
    parts = [f.to_ndarray() for f in resampler.resample(frame)]
    parts += [f.to_ndarray() for f in resampler.resample(None)]  # the filter's tail
    return np.concatenate(parts, axis=1)[0] if parts else np.zeros(0, np.float32)


def _decode(path: Path) -> np.ndarray:
    """The first audio stream of a file, mono at ``RATE`` Hz."""
    import av

    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, ValueError) as err:
        raise ValueError(f"{str(path)!r} is not audio PyAV can read ({err}); give a WAV, "
                         "MP3, FLAC, OGG or M4A file, or an array with its sampling_rate"
                         ) from None
    chunks = []
    with container:
        if not container.streams.audio:
            raise ValueError(f"{str(path)!r} has no audio stream (a silent video, or not a "
                             "sound file); give a file with sound")
        stream = container.streams.audio[0]
        # the channels as they are (averaged below: FFmpeg's own downmix adds them at -3 dB)
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=RATE)
        try:
            for frame in container.decode(stream):
                frame.pts = None  # the resampler ignores gaps in the timestamps
                chunks += [f.to_ndarray() for f in resampler.resample(frame)]
                if sum(c.shape[1] for c in chunks) > MAX_SECONDS * RATE:
                    raise ValueError(f"{str(path)!r} is longer than {MAX_SECONDS} s; cut it "
                                     "to the sentence you want as the prompt")
        except av.error.FFmpegError as err:
            if not chunks:
                raise ValueError(f"{str(path)!r} could not be decoded ({err}); is it "
                                 "audio?") from None
        chunks += [f.to_ndarray() for f in resampler.resample(None)]
    if not chunks:
        return np.zeros(0, np.float32)
    return np.concatenate(chunks, axis=1).mean(axis=0, dtype=np.float32)


def load_audio(audio: Any, sampling_rate: int | None = None) -> Audio:
    """The samples Whisper hears, from a sound file, an array or an ``Audio``.

    Args:
        audio: a path to a sound file, an ``Audio``, or an array of samples: (N,) mono or
            (N, C) / (C, N) with up to 8 channels (averaged), float in [-1, 1] or int16.
        sampling_rate: the array's samples per second (required for an array; a file says
            its own).

    Raises:
        FileNotFoundError: no such file.
        ValueError: not audio, no audio stream, no samples, samples that are not finite or
            outside [-1, 1], an array without its sampling rate, or more than
            ``MAX_SECONDS``; before any model runs.
    """
    if isinstance(audio, Audio):
        return audio
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no sound file {str(path)!r}")
        if sampling_rate is not None:
            raise ValueError("sampling_rate is for arrays; a file says its own rate")
        samples, source = _decode(path), str(path)
    else:
        samples, source = _from_array(audio, sampling_rate), "an array"
    if not len(samples):
        raise ValueError(f"{source} holds no samples; give a recording of the sentence")
    if len(samples) > MAX_SECONDS * RATE:
        raise ValueError(f"{source} lasts {len(samples) / RATE:.0f} s, more than "
                         f"{MAX_SECONDS} s; cut it to the sentence you want as the prompt")
    return Audio(samples.astype(np.float32, copy=False), source)


def _from_array(audio: Any, sampling_rate: int | None) -> np.ndarray:
    if sampling_rate is None:
        raise ValueError("an array of samples needs its sampling_rate (e.g. "
                         "sampling_rate=16000): the same numbers at another rate are "
                         "another sound")
    rate = checks.integer("sampling_rate", sampling_rate, 1000, 384_000,
                          hint="samples per second, e.g. 16000 or 44100")
    try:
        arr = np.asarray(audio)
    except (TypeError, ValueError):
        arr = np.asarray([])
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32768.0
    if arr.dtype.kind not in "fiu" or arr.ndim not in (1, 2) or (
            arr.ndim == 2 and min(arr.shape) > 8):
        raise ValueError(f"audio of shape {arr.shape} and type {arr.dtype} is not samples: "
                         "give (N,) mono or (N, channels) floats in [-1, 1], or int16")
    arr = arr.astype(np.float32)
    if arr.ndim == 2:
        arr = arr.mean(axis=int(np.argmin(arr.shape)))  # the short axis is the channels
    if not np.isfinite(arr).all():
        raise ValueError("the audio holds NaN or infinite samples; give finite samples in "
                         "[-1, 1]")
    if len(arr) and float(np.abs(arr).max()) > 1.0 + 1e-6:
        raise ValueError(f"audio samples reach {float(np.abs(arr).max()):.3g}, outside "
                         "[-1, 1]: divide int16 samples by 32768 first (or pass them as "
                         "int16)")
    return _resample(arr, rate)


def audio_manifest() -> dict[str, dict[str, Any]]:
    """The course's spoken prompts by name (``data/speech/manifest.json``): file, the text
    said, how it was made, licence, length and SHA-256."""
    import json

    from helpers import images

    path = images.data_dir() / "speech" / "manifest.json"
    if not path.exists():
        raise FileNotFoundError(f"no speech manifest at {path}; the data/speech folder is "
                                "missing from this checkout")
    return {e["name"]: e for e in json.loads(path.read_text(encoding="utf-8"))["speech"]}


def sample_audio(name: str) -> Audio:
    """One of the course's spoken prompts by name (``a-cup-of-coffee``, ``a-red-motorcycle``)."""
    from helpers import images

    entries = audio_manifest()
    if name not in entries:
        raise ValueError(f"unknown spoken prompt {name!r}; there are "
                         f"{', '.join(map(repr, sorted(entries)))}")
    return load_audio(images.data_dir() / "speech" / entries[name]["file"])


class Transcriber(models.Pretrained):
    """Whisper: speech -> text.

    ``Transcriber.from_pretrained()`` loads ``"whisper-tiny"`` (openai/whisper-tiny, 38M
    parameters, 151 MB); ``"whisper-base"`` and ``"whisper-small"`` are better and slower;
    ``"tiny"`` is the tiny random model.
    """

    families = FAMILIES
    default = "whisper-tiny"

    def __init__(self, loaded: models.Loaded) -> None:
        super().__init__(loaded)
        self.model = loaded.model
        self.processor = loaded.processor
        self.calls = 0
        """How many times the model ran (silence does not count)."""

    def transcribe(self, audio: Any, sampling_rate: int | None = None, *,
                   language: str | None = "en", task: str = "transcribe") -> str:
        """The words spoken in ``audio`` (see ``load_audio``), stripped; "" for silence.

        Args:
            language: the spoken language's code ("en", "fr", ...), or None to let Whisper
                tell it.
            task: "transcribe" (the words as spoken) or "translate" (into English).

        Raises:
            ValueError: bad audio (see ``load_audio``), an unknown language or task, before
                the model runs.
        """
        import torch
        from transformers.models.whisper.tokenization_whisper import LANGUAGES

        if language is not None and language not in LANGUAGES:
            raise ValueError(f"language {language!r} is not a Whisper language code; use "
                             "e.g. 'en', 'fr', 'de', or None to let Whisper tell")
        if task not in TASKS:
            raise ValueError(f"task {task!r} is not one of {', '.join(map(repr, TASKS))}")
        sound = load_audio(audio, sampling_rate)
        if sound.silent:
            return ""
        extra: dict[str, Any] = {}
        if sound.seconds > WINDOW_S:  # window after window, every frame kept
            inputs = self.processor(sound.samples, sampling_rate=RATE, return_tensors="pt",
                                    truncation=False, padding="longest",
                                    return_attention_mask=True)
            extra["return_timestamps"] = True
        else:
            inputs = self.processor(sound.samples, sampling_rate=RATE, return_tensors="pt")
        inputs = inputs.to(self.device, self.model.dtype)
        from transformers.utils import logging as hf_logging

        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # transformers' own Whisper call warns about itself
        try:
            with torch.inference_mode():
                ids = self.model.generate(**inputs, language=language, task=task, **extra)
        finally:
            hf_logging.set_verbosity(level)
        self.calls += 1
        return str(self.processor.batch_decode(ids, skip_special_tokens=True)[0]).strip()


def transcribe(audio: Any, sampling_rate: int | None = None, *, model: str | None = None,
               language: str | None = "en", device: str | None = None) -> str:
    """``Transcriber.from_pretrained(model, device).transcribe(audio, sampling_rate,
    language=language)``: the words spoken in ``audio``, "" for silence. The audio is
    checked before the model loads."""
    sound = load_audio(audio, sampling_rate)
    return Transcriber.from_pretrained(model, device).transcribe(sound, language=language)
