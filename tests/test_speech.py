"""speech: a spoken sentence -> text with Whisper, and the sound kept in the run.

The tiny Whisper is loaded through the real loader and its transcript checked against
transformers run directly (feature extractor, generate, decode) on the shipped recording.
"""

from __future__ import annotations

import json
import wave
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from helpers import images, models, speech, tiny, tracking

SPOKEN = images.data_dir() / "speech" / "a-cup-of-coffee.wav"


@pytest.fixture(scope="module")
def ear() -> speech.Transcriber:
    return speech.Transcriber.from_pretrained("tiny", device="cpu")


def write_wav(path: Path, samples: np.ndarray, rate: int, channels: int = 1) -> Path:
    pcm = (np.clip(samples, -1, 1) * 32767).round().astype("<i2")
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm.tobytes())
    return path


def tone(seconds: float, rate: int, hz: float = 440.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_the_tiny_model_loads_through_the_real_loader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HELPERS_TINY_MODELS", "1")
    found = speech.Transcriber.from_pretrained(device="cpu")  # "whisper-tiny", swapped
    assert found.name == "tiny-whisper" and Path(found.loaded.path) == tiny.folder_for("whisper")
    assert type(found.model).__name__ == "WhisperForConditionalGeneration"
    assert len(found.processor.tokenizer) >= 100
    spec = models.REGISTRY["whisper-tiny"]
    assert spec.source == "openai/whisper-tiny" and spec.family == "whisper"


def test_the_shipped_recording_is_what_its_manifest_says() -> None:
    entry = json.loads((SPOKEN.parent / "manifest.json").read_text())["speech"][0]
    assert entry["file"] == SPOKEN.name and entry["text"] == "a cup of coffee"
    sound = speech.load_audio(SPOKEN)
    assert sound.rate == 16_000 and sound.seconds == pytest.approx(entry["seconds"], abs=0.01)
    assert not sound.silent


def test_transcript_equals_transformers_run_directly(ear: speech.Transcriber) -> None:
    import torch

    text = ear.transcribe(SPOKEN)
    assert isinstance(text, str) and text and text == text.strip()
    with wave.open(str(SPOKEN)) as w:  # the stdlib's reading, not PyAV's
        samples = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32768
        assert w.getframerate() == 16_000
    inputs = ear.processor(samples, sampling_rate=16_000, return_tensors="pt")
    with torch.inference_mode():
        ids = ear.model.generate(**inputs, language="en", task="transcribe")
    assert text == ear.processor.batch_decode(ids, skip_special_tokens=True)[0].strip()


def test_files_and_arrays_arrive_as_mono_16k(tmp_path: Path) -> None:
    samples = tone(1.0, 22_050)
    stereo = np.stack([samples, samples], axis=1).reshape(-1)
    sound = speech.load_audio(write_wav(tmp_path / "s.wav", stereo, 22_050, channels=2))
    assert abs(len(sound.samples) - 16_000) <= 40 and sound.samples.dtype == np.float32
    assert np.abs(sound.samples).max() == pytest.approx(0.3, abs=0.02)
    import av  # the same tone as MP3, through PyAV

    with av.open(str(tmp_path / "s.mp3"), "w") as out:
        stream = out.add_stream("mp3", rate=22_050, layout="mono")
        frame = av.AudioFrame.from_ndarray(samples[None], format="flt", layout="mono")
        frame.sample_rate, frame.pts = 22_050, 0
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            out.mux(packet)
    assert abs(speech.load_audio(tmp_path / "s.mp3").seconds - 1.0) < 0.1
    assert len(speech.load_audio(samples, sampling_rate=22_050).samples) == pytest.approx(
        16_000, abs=40)
    as_int = (samples * 32767).astype(np.int16)
    assert np.allclose(speech.load_audio(as_int, sampling_rate=22_050).samples,
                       speech.load_audio(samples, sampling_rate=22_050).samples, atol=1e-3)
    two = np.stack([samples, np.zeros_like(samples)])  # (channels, N): averaged
    assert np.abs(speech.load_audio(two, sampling_rate=22_050).samples).max() == pytest.approx(
        0.15, abs=0.01)


def test_silence_is_empty_text_without_the_model(ear: speech.Transcriber) -> None:
    before = ear.calls
    assert ear.transcribe(np.zeros(16_000, np.float32), sampling_rate=16_000) == ""
    assert ear.transcribe(np.full(8_000, 1e-4, np.float32), sampling_rate=16_000) == ""
    assert ear.calls == before
    ear.transcribe(tone(0.5, 16_000), sampling_rate=16_000)
    assert ear.calls == before + 1


def test_more_than_30_seconds_is_read_window_after_window(ear: speech.Transcriber) -> None:
    text = ear.transcribe(np.tile(tone(1.0, 16_000), 35), sampling_rate=16_000)
    assert isinstance(text, str)


@pytest.mark.parametrize(("make", "error"), [
    (lambda p: (p.write_text("not a sound\n"), p)[1], r"is not audio PyAV can read"),
    (lambda p: (p.write_bytes(b""), p)[1], r"is not audio PyAV can read"),
    (lambda p: images.data_dir() / "clips" / "coffee-pan.mp4", r"has no audio stream"),
])
def test_a_file_that_is_not_audio_is_named(tmp_path: Path, make: Any, error: str,
                                           ear: speech.Transcriber) -> None:
    path = make(tmp_path / "prompt.mp3")
    before = ear.calls
    with pytest.raises(ValueError, match=error):
        ear.transcribe(path)
    assert ear.calls == before


@pytest.mark.parametrize(("call", "error"), [
    (lambda e: e.transcribe(tone(1, 16_000)), r"needs its sampling_rate"),
    (lambda e: e.transcribe(tone(1, 16_000), sampling_rate=8), r"sampling_rate"),
    (lambda e: e.transcribe(np.zeros(0), sampling_rate=16_000), r"holds no samples"),
    (lambda e: e.transcribe(np.full(10, np.nan), sampling_rate=16_000), r"NaN or infinite"),
    (lambda e: e.transcribe(np.ones(10) * 3, sampling_rate=16_000), r"outside \[-1, 1\]"),
    (lambda e: e.transcribe(np.zeros((3, 3, 3)), sampling_rate=16_000), r"is not samples"),
    (lambda e: e.transcribe(np.zeros((20, 20)), sampling_rate=16_000), r"is not samples"),
    (lambda e: e.transcribe("hello", sampling_rate=16_000), r"no sound file 'hello'"),
    (lambda e: e.transcribe(SPOKEN, sampling_rate=16_000), r"a file says its own rate"),
    (lambda e: e.transcribe(SPOKEN, language="english"), r"language 'english' is not a "
                                                         r"Whisper language code"),
    (lambda e: e.transcribe(SPOKEN, task="summarise"), r"task 'summarise' is not one of"),
    (lambda e: e.transcribe(np.zeros(16_000 * 601), sampling_rate=16_000),
     r"lasts 601 s, more than 600 s"),
])
def test_bad_input_is_refused_before_the_model_runs(ear: speech.Transcriber, call: Any,
                                                    error: str) -> None:
    before = ear.calls
    with pytest.raises((ValueError, FileNotFoundError), match=error):
        call(ear)
    assert ear.calls == before


def test_the_sound_and_its_transcript_are_kept_in_the_run(offline_runs: Path,
                                                          ear: speech.Transcriber) -> None:
    sound = speech.load_audio(SPOKEN)
    text = ear.transcribe(sound)
    run = tracking.start("speech", online=False)
    entry = run.log_audio(sound, "spoken prompt", metadata={"text": "a cup of coffee"})
    run.log_text(text, metadata={"kind": "transcript", "model": ear.name})
    with pytest.raises(ValueError, match="needs its sampling_rate"):
        run.log_audio(sound.samples, "no rate")
    run.end()
    with wave.open(str(run.folder / entry["file"])) as w:
        assert w.getframerate() == 16_000 and w.getnchannels() == 1
        back = np.frombuffer(w.readframes(w.getnframes()), "<i2").astype(np.float32) / 32767
    assert np.abs(back - sound.samples).max() < 1e-3
    rec = tracking.load_record(run.folder)
    assert [a["name"] for a in rec["audio"]] == ["spoken prompt"]
    assert rec["texts"][0]["text"] == text
    wav = (run.folder / entry["file"]).read_bytes()
    with zipfile.ZipFile(run.archive) as archive:  # type: ignore[arg-type]
        members = {n: archive.read(n) for n in archive.namelist()}
    assert wav in members.values()  # Comet's archive holds the very file
    assert "spoken prompt.wav" in members["messages.json"].decode()
