"""Audio in a run: a spoken prompt kept as a WAV file in the run folder and sent to Comet.

``Run.log_audio`` calls ``log_audio`` here. The samples are written as 16-bit mono PCM
(``audio/0001-<name>.wav``, atomically, as images are), recorded as an ``audio`` event of
the local record, and given to Comet as that file (its audio panel plays it).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import wave
from collections.abc import Mapping
from typing import Any

import numpy as np

from helpers import checks
from helpers.tracking import record
from helpers.tracking.annotations import plain, redact


def samples_of(audio: Any, sampling_rate: int | None) -> tuple[np.ndarray, int]:
    """(mono float32 samples in [-1, 1], rate) of ``speech.Audio`` or of an array with its
    ``sampling_rate``."""
    if hasattr(audio, "samples") and hasattr(audio, "rate"):
        if sampling_rate is not None:
            raise ValueError("sampling_rate is for arrays; an Audio knows its own rate")
        samples, rate = np.asarray(audio.samples), int(audio.rate)
    else:
        if sampling_rate is None:
            raise ValueError("an array of samples needs its sampling_rate (e.g. 16000); or "
                             "log what speech.load_audio returned")
        rate = checks.integer("sampling_rate", sampling_rate, 1000, 384_000)
        try:
            samples = np.asarray(audio, dtype=np.float32)
        except (TypeError, ValueError):
            raise ValueError(f"audio {audio!r:.60} is not samples: give speech.load_audio(...) "
                             "or a (N,) array of floats in [-1, 1]") from None
    if samples.ndim != 1 or not len(samples) or not np.isfinite(samples).all():
        raise ValueError(f"audio of shape {samples.shape} is not mono samples: give a "
                         "non-empty (N,) array of finite floats in [-1, 1]")
    return samples.astype(np.float32), rate


def wav_bytes(samples: np.ndarray, rate: int) -> bytes:
    """16-bit mono PCM WAV of float samples (clipped to [-1, 1])."""
    pcm = (np.clip(samples, -1.0, 1.0) * 32767.0).round().astype("<i2")
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm.tobytes())
    return out.getvalue()


def log_audio(run: Any, audio: Any, name: str, metadata: Mapping[str, Any] | None,
              step: int | None, sampling_rate: int | None) -> dict[str, Any]:
    """What ``Run.log_audio`` does (see there)."""
    run._check_open("log_audio")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"audio name {name!r} must be a non-empty string")
    if metadata is not None and not isinstance(metadata, Mapping):
        raise ValueError(f"metadata {metadata!r:.60} must be a dict of name -> value")
    if step is not None:
        step = checks.integer("step", step)
    samples, rate = samples_of(audio, sampling_rate)
    name = redact(name, run._secret)
    meta = redact(plain(dict(metadata or {})), run._secret)
    data = wav_bytes(samples, rate)
    folder = run.folder / "audio"
    with run._lock:
        index = len(list(folder.glob("*.wav"))) + 1 if folder.is_dir() else 1
        file = f"audio/{index:04d}-{record.file_stem(name)}.wav"
        with record.writing(run.folder, f"audio {name!r}"):
            folder.mkdir(exist_ok=True)
            record.write_bytes(run.folder / file, data)
    entry = {"index": index, "name": name, "file": file, "rate": rate,
             "seconds": round(len(samples) / rate, 3), "step": step, "metadata": meta,
             "sha256": hashlib.sha256(data).hexdigest()}
    try:
        run._append({"type": "audio", "audio": entry}, f"audio {name!r}")
    except record.RecordWriteError:  # a WAV nobody lists would be a file for nothing
        with contextlib.suppress(OSError):
            (run.folder / file).unlink()
        raise
    run.experiment.log_audio(str(run.folder / file), file_name=f"{name}.wav",
                             metadata=meta or None, step=step)
    return entry
