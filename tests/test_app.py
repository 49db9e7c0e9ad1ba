"""The Gradio app: its library logic, then a real server on a free port driven by gradio_client and
by a real browser (Playwright + Debian's Chromium, headless).

The server is ``python code/inference/gradio_app/app.py`` as a subprocess with the tiny random
bundle, started once for this module and terminated at the end.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from conftest import PYTHON, REPO, run_script, streams, video_packets
from video_bgm import app_support, media
from video_bgm.app_support import Limits, ModelCache, ModelList, OutputStore
from video_bgm.config import GenerationParams
from video_bgm.errors import MediaError, UserInputError
from video_bgm.synthetic import sine, write_test_video, write_text_file

APP = "code/inference/gradio_app/app.py"
MAX_DURATION = 8  # the test server's --max-duration
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
RESULT_TIMEOUT_MS = 240_000  # two loaded CPU cores, shared with other jobs


# ---------------------------------------------------------------------------------------------
# Library logic, no server


def make_our_model_folder(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "config.json").write_text('{"format": "video-bgm", "fps": 1.0}')
    return folder


def test_discover_models(tmp_path):
    root = tmp_path / "models"
    make_our_model_folder(root / "mine")
    make_our_model_folder(root / "group" / "b-model")
    (root / "group" / "b-model" / "musicgen").mkdir()  # a model's own frozen model: not listed
    (root / "group" / "b-model" / "musicgen" / "config.json").write_text('{"model_type": "musicgen"}')
    thesis = root / "thesis-run"
    thesis.mkdir()
    (thesis / "configuration.yml").write_text("fps: 1\n")
    (thesis / "lm_final.pt").write_bytes(b"\0")
    (root / "half-thesis").mkdir()
    (root / "half-thesis" / "configuration.yml").write_text("fps: 1\n")
    (root / "musicgen-small").mkdir()  # a MusicGen folder is not a video model
    (root / "musicgen-small" / "config.json").write_text('{"model_type": "musicgen"}')
    (root / "broken").mkdir()
    (root / "broken" / "config.json").write_text("{not json")
    make_our_model_folder(root / ".hidden")

    found = app_support.discover_models(root, ["acme/video-bgm-small", str(root / "mine")])
    # --model references first (the first is the default), then the folders found, sorted; once each.
    assert found == {"acme/video-bgm-small": "acme/video-bgm-small",
                     "mine": str((root / "mine").resolve()),
                     "group/b-model": str((root / "group" / "b-model").resolve()),
                     "thesis-run": str(thesis.resolve())}
    assert app_support.discover_models(tmp_path / "missing") == {}


def test_model_list_refuses_anything_not_listed(tmp_path):
    models = ModelList({"tiny": str(tmp_path)})
    assert models.reference("tiny") == str(tmp_path)
    for bad in (str(tmp_path), "/etc", "../models/tiny", None, 3):
        with pytest.raises(UserInputError, match="unknown model"):
            models.reference(bad)


def test_plan_duration():
    assert app_support.plan_duration(None, 12.5, 30) == (12.5, "")
    assert app_support.plan_duration(0, 12.5, 30) == (12.5, "")
    assert app_support.plan_duration(None, 95.0, 300) == (95.0, "")  # long music is made window by window
    duration, note = app_support.plan_duration(None, 95.0, 30)
    assert duration == 30 and "first 30 s of the 95.0 s video" in note
    duration, note = app_support.plan_duration(5, 12.5, 30)
    assert duration == 5 and "first 5 s" in note
    with pytest.raises(UserInputError, match="at most 30 s"):
        app_support.plan_duration(31, 40, 30)
    with pytest.raises(UserInputError, match="positive"):
        app_support.plan_duration(-1, 40, 30)


def test_check_video_limits(tmp_path, clip_3s):
    info = app_support.check_video(clip_3s, Limits())
    assert abs(info.duration - 3.0) < 0.05
    with pytest.raises(UserInputError, match=r"clip_3s.mp4: the video is 3.0 s long; this server accepts videos up to 2 s"):
        app_support.check_video(clip_3s, Limits(max_video_seconds=2))
    with pytest.raises(UserInputError, match=r"accepts videos up to 0.001 MB"):
        app_support.check_video(clip_3s, Limits(max_upload_mb=0.001))
    fake = tmp_path / "deep" / "folder" / "holiday.mp4"
    fake.parent.mkdir(parents=True)
    write_text_file(fake)
    with pytest.raises(MediaError) as err:
        app_support.check_video(fake, Limits())
    assert str(err.value).startswith("holiday.mp4: "), "the message names the user's file, not our temp path"
    with pytest.raises(UserInputError, match="upload a video"):
        app_support.check_video(None, Limits())


def test_stage_progress_is_monotonic_and_complete():
    seen = []
    report = lambda fraction, what: seen.append((fraction, what))  # noqa: E731
    for index in range(2):
        progress = app_support.stage_progress(report, index, 2)
        for stage, total in (("frames", 1), ("encoding", 1), ("generating", 50), ("decoding", 1), ("muxing", 1)):
            for done in range(total + 1):
                progress(stage, done, total)
    fractions = [f for f, _ in seen]
    assert fractions == sorted(fractions) and fractions[0] == 0.0 and fractions[-1] == pytest.approx(1.0)
    assert seen[-1][1] == "variation 2/2: muxing"
    assert any(what == "variation 1/2: generating 25/50 steps" for _, what in seen)
    assert 0.4 < dict((w, f) for f, w in seen)["variation 1/2: generating 50/50 steps"] < 0.5

    # windows are named with the steps and never move the bar back
    seen.clear()
    progress = app_support.stage_progress(report, 0, 1)
    progress("generating", 10, 100)
    progress("window", 2, 3)
    progress("generating", 40, 100)
    assert seen[-1][1] == "generating 40/100 steps (window 2/3)" and seen[-1][0] > seen[0][0]


def test_music_picture():
    rate = 32000
    tone = sine(1000.0, rate, 2 * rate, channels=2)  # [2, S]
    picture = app_support.music_picture(tone, rate, width=320, height=120)
    assert picture.shape == (120, 320, 3) and picture.dtype == np.uint8
    spectrogram = picture[:80].astype(float).sum(axis=2)  # top two thirds
    brightest = int(np.median(spectrogram.argmax(axis=0)))
    rows = np.geomspace(30.0, rate / 2, 80)[::-1]
    assert abs(np.log2(rows[brightest] / 1000.0)) < 0.2, "the tone's row is the brightest"
    wave = picture[80:]
    assert (wave == app_support._WAVE_COLOUR).all(axis=2).mean() > 0.5, "a loud tone fills the waveform strip"

    silence = app_support.music_picture(np.zeros((1, rate), np.float32), rate, width=64, height=60)
    assert (silence[:40] == app_support._RAMP[0]).all(), "silence is a black spectrogram"
    line = (silence[40:] == app_support._WAVE_COLOUR).all(axis=2)
    assert line.all(axis=1).sum() <= 2 and line.mean() <= 0.1, "and a flat line in the middle"


def test_output_store_purges_old_requests_and_closes():
    store = OutputStore(max_age=60)
    try:
        old, new = store.new_dir(), store.new_dir()
        (old / "music.wav").write_bytes(b"x")
        os.utime(old, (time.time() - 120, time.time() - 120))
        examples = store.root / "examples"
        examples.mkdir()
        os.utime(examples, (time.time() - 120, time.time() - 120))
        store.purge()
        assert not old.exists() and new.is_dir() and examples.is_dir()
    finally:
        store.close()
    assert not store.root.exists()


def test_output_store_caps_the_total_size_of_uploads_and_results(tmp_path):
    """Issue 20: twenty uploads without a generation used to pile up for an hour, uncapped."""
    uploads = tmp_path / "gradio"
    store = OutputStore(max_age=3600, max_bytes=10_000, uploads=uploads)
    try:
        result = store.new_dir()  # a request's folder (the newest here) counts too
        (result / "music.wav").write_bytes(b"y" * 3000)
        now = time.time()
        for i in range(6):  # 6 uploads of 3 kB, oldest first, each in its own folder as Gradio stores them
            (uploads / f"hash{i}").mkdir(parents=True)
            (uploads / f"hash{i}" / "clip.mp4").write_bytes(b"x" * 3000)
            os.utime(uploads / f"hash{i}" / "clip.mp4", (now - 600 + i, now - 600 + i))
        removed = store.enforce_size_cap(keep=[uploads / "hash0" / "clip.mp4"])  # the upload being looked at
        assert removed == 4 * 3000
        assert sorted(p.name for p in uploads.iterdir()) == ["hash0", "hash5"] and result.is_dir()
        assert OutputStore(max_bytes=None).enforce_size_cap() == 0
    finally:
        store.close()


def test_model_cache_loads_each_model_once_per_device():
    calls = []

    def slow_loader(ref, device):
        calls.append((ref, device))
        time.sleep(0.2)
        return object()

    cache = ModelCache(loader=slow_loader)
    with ThreadPoolExecutor(4) as pool:
        models = list(pool.map(lambda _: cache.get("a", "cpu"), range(4)))
    assert calls == [("a", "cpu")] and all(m is models[0] for m in models)
    assert cache.get("a", "cuda") is not models[0] and cache.get("b", "cpu") is not models[0]
    assert calls == [("a", "cpu"), ("a", "cuda"), ("b", "cpu")]
    assert cache.is_loaded("a", "cpu") and not cache.is_loaded("c", "cpu")
    assert cache.lock("cpu") is cache.lock("cpu") and cache.lock("cpu") is not cache.lock("cuda")


def test_model_cache_loads_in_the_servers_precision(tiny_bundle):
    """``app.py --precision bf16``: the cache's default loader gives MusicGen a bfloat16 decoder."""
    ref = str(tiny_bundle["video-encoder"])
    assert ModelCache(precision="bf16").get(ref, "cpu").musicgen.dtype == torch.bfloat16
    assert ModelCache().get(ref, "cpu").musicgen.dtype == torch.float32


def test_generate_variations(tmp_path, tiny_model, clip_3s):
    info = media.probe_video(clip_3s)
    reports = []
    results = app_support.generate_variations(tiny_model, clip_3s, info, GenerationParams(seed=40, duration=1.0), 2,
                                              tmp_path, report=lambda f, w: reports.append(f))
    assert [r.seed for r in results] == [40, 41]
    for r in results:
        assert r.video.name == f"clip_3s_music_{r.seed}.mp4" and r.video.is_file()
        audio, rate = sf.read(r.wav, always_2d=True)
        assert rate == 32000 and audio.shape[0] == 32000
        assert r.picture.ndim == 3 and r.duration == 1.0
    assert reports[-1] == pytest.approx(1.0)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [r.video.name for r in results] + [r.wav.name for r in results]), "no temporary files left"
    with pytest.raises(UserInputError, match="1 to 4"):
        app_support.generate_variations(tiny_model, clip_3s, info, GenerationParams(), 5, tmp_path)


def test_app_command_line_from_code_inference(tmp_path):
    """The second documented form, ``python gradio_app/app.py`` from code/inference; with no models
    it says what to do, in one line, and exits 1."""
    empty = tmp_path / "no-models"
    empty.mkdir()
    result = run_script("gradio_app/app.py", "--models-dir", empty, cwd=REPO / "code/inference", timeout=240)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"app.py: error: no models: put a model folder under {empty} or pass --model "
        "(python code/tools/make_tiny_models.py models/tiny writes a tiny random one)"]
    bad = run_script("gradio_app/app.py", "--max-duration", "0", cwd=REPO / "code/inference", timeout=240)
    assert bad.returncode == 2 and "--max-duration must be positive" in bad.stderr


def test_a_port_in_use_is_one_line_naming_the_option(tmp_path):
    import socket

    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        result = run_script("code/inference/gradio_app/app.py", "--port", port, "--models-dir", tmp_path, timeout=240)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"app.py: error: --host 127.0.0.1 --port {port}: cannot listen there (Address already in use); "
        "pass another --port"]


# ---------------------------------------------------------------------------------------------
# A real server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``app.py`` in a subprocess; ``log`` collects its output."""

    def __init__(self, args: list[str], tmpdir: Path):
        self.port = free_port()
        self.tmpdir = tmpdir
        env = {k: v for k, v in os.environ.items() if k != "GRADIO_TEMP_DIR"}
        env.update(TMPDIR=str(tmpdir), HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False", PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen([PYTHON, str(REPO / APP), "--port", str(self.port), *args], cwd=REPO, env=env,
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.log: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        self.url = f"http://127.0.0.1:{self.port}/"

    def _read(self):
        for line in self.proc.stdout:
            self.log.append(line)

    def wait_ready(self, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if any(f"Running on local URL:  {self.url.rstrip('/')}" in line for line in self.log):
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.2)
        self.stop()
        raise AssertionError(f"app.py did not start:\n{''.join(self.log)}")

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.reader.join(timeout=10)
        return self.proc.returncode


@pytest.fixture(scope="module")
def app_media(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("app-media")
    write_text_file(folder / "not_a_video.mp4")
    return {"good": Path(write_test_video(folder / "good.mp4", duration=3.0, fps=10, size=(64, 48))),
            "browser": Path(write_test_video(folder / "sample.mp4", duration=3.0, fps=25, size=(320, 240))),
            "long": Path(write_test_video(folder / "long.mp4", duration=MAX_DURATION + 2.0, fps=5, size=(64, 48))),
            "text": folder / "not_a_video.mp4"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_bundle):
    """The app on a free port: the tiny model (--model, the default), a thesis folder under
    --models-dir (listed, not loadable yet), a hub id that cannot be downloaded offline."""
    root = tmp_path_factory.mktemp("app-server")
    models_dir = root / "models"
    thesis = models_dir / "thesis-run"
    thesis.mkdir(parents=True)
    (thesis / "configuration.yml").write_text("fps: 1\n")
    (thesis / "lm_final.pt").write_bytes(b"\0")
    tmpdir = root / "tmp"
    tmpdir.mkdir()
    srv = Server(["--model", str(tiny_bundle["video-encoder"]), "--model", "acme/not-downloaded",
                  "--models-dir", str(models_dir), "--max-duration", str(MAX_DURATION), "--queue-size", "8"], tmpdir)
    srv.wait_ready()
    yield srv
    srv.stop()


@pytest.fixture
def client(server, tmp_path):
    from gradio_client import Client

    return Client(server.url, verbose=False, download_files=str(tmp_path / "downloads"))


def predict(client, video, **kwargs):
    from gradio_client import handle_file

    return client.predict(handle_file(str(video)), api_name="/generate", **kwargs)


def video_path(value) -> str:
    """A Video output, as gradio_client returns it: the downloaded file's path."""
    assert isinstance(value, str), value
    return value


def test_the_start_up_lines_name_our_options(server):
    log = "".join(server.log)
    assert "start again with --share" in log
    assert "share=True" not in log and "launch()" not in log, "Gradio's hints name its own arguments"


def test_client_end_to_end_and_seeded_reproducible(client, app_media):
    out = predict(client, app_media["good"], seed=11, random_seed=False)
    assert len(out) == 4 * 3 + 2
    video, wav, picture = video_path(out[0]), out[1], out[2]
    assert out[3:12] == (None,) * 9, "one variation: the other slots are empty"
    assert "variation 1: seed **11**" in out[12] and out[13] == 11

    assert streams(video) == [("video", "h264"), ("audio", "aac")]
    assert video_packets(video) == video_packets(app_media["good"]), "the video stream is copied"
    video_seconds = media.probe_video(app_media["good"]).duration
    audio_seconds = media.decode_audio(video, sample_rate=32000, channels=1).shape[-1] / 32000
    assert abs(audio_seconds - video_seconds) < 0.05, "the audio lasts as long as the video"
    music, rate = sf.read(wav, always_2d=True)
    assert rate == 32000 and music.shape[0] == round(video_seconds * 32000) and np.abs(music).max() > 0.01
    assert Path(picture).suffix == ".png" and Path(picture).stat().st_size > 1000

    again = predict(client, app_media["good"], seed=11, random_seed=False, variations=2)
    assert np.array_equal(sf.read(again[1], always_2d=True)[0], music), "same seed, same music"
    second, _ = sf.read(again[4], always_2d=True)
    assert second.shape == music.shape and not np.array_equal(second, music), "variation 2 uses seed 12"
    assert "variation 1: seed **11**, variation 2: seed **12**" in again[12] and again[6:12] == (None,) * 6

    random = predict(client, app_media["good"])  # "random seed" is the default; the seed used is shown
    assert isinstance(random[13], int) and f"seed **{random[13]}**" in random[12]


def test_bad_requests_are_refused_and_the_server_keeps_serving(client, server, app_media):
    from gradio_client.exceptions import AppError

    refusals = [
        ({"video": app_media["text"]}, "not_a_video.mp4: not a media file"),
        ({"video": app_media["long"]}, f"long.mp4: the video is {MAX_DURATION + 2:.1f} s long; this server "
                                       f"accepts videos up to {MAX_DURATION} s"),
        ({"video": app_media["good"], "duration": 31}, ""),  # over the slider's range, refused by Gradio or us
        ({"video": app_media["good"], "model": "/etc"}, ""),  # not a listed model
        ({"video": app_media["good"], "model": "thesis-run"}, r"^thesis-run: "),  # listed; a broken checkpoint
        ({"video": app_media["good"], "model": "acme/not-downloaded"}, r"^acme/not-downloaded: "),  # offline
        ({"video": app_media["good"], "temperature": 0}, "minimum value"),  # checked by Gradio
        ({"video": app_media["good"], "random_seed": False, "seed": None}, "seed: enter a number"),
    ]
    for kwargs, message in refusals:
        video = kwargs.pop("video")
        with pytest.raises(AppError, match=message or None) as refused:
            predict(client, video, **kwargs)
        assert str(server.tmpdir) not in str(refused.value), "no server paths in messages"
    out = predict(client, app_media["good"], seed=3, random_seed=False)
    assert Path(video_path(out[0])).is_file() and out[13] == 3
    assert server.proc.poll() is None


def test_hostile_uploads_are_refused_and_lying_headers_size_nothing(client, server, app_media, tmp_path):
    """Issue 20: each hostile upload is one message naming the file, and the server keeps serving;
    a header claiming 99 h (or 1 s) over 3 s of frames gets 3 s of music and a note."""
    from gradio_client.exceptions import AppError
    from test_media import lie_about_duration

    good = app_media["good"].read_bytes()
    hostile = {"empty.mp4": b"", "cut.mp4": good[: len(good) // 3], "photo.mp4": b"\x89PNG\r\n\x1a\n" + bytes(64),
               "zeroed.mp4": good[: len(good) // 2] + bytes(len(good) - len(good) // 2)}
    for name, data in hostile.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(AppError, match=name):
            predict(client, path)
        assert server.proc.poll() is None
    honest = Path(write_test_video(tmp_path / "honest.mkv", duration=3.0, fps=10, size=(64, 48)))
    for claim, said in ((b"99:00:03.0", "356403 s (99.0 h)"), (b"00:00:01.0", "1.00 s")):
        lying = tmp_path / f"lying_{claim[:2].decode()}.mkv"
        lying.write_bytes(lie_about_duration(honest, claim))
        out = predict(client, lying, seed=4, random_seed=False)
        assert f"{lying.name}: its header says {said} but its video data lasts 3.00 s; 3.00 s used" in out[12]
        assert out[12].startswith("3 s of music")
        assert sf.info(out[1]).duration == pytest.approx(3.0)
        assert abs(media.decode_audio(video_path(out[0]), 32000, 1).shape[1] / 32000 - 3.0) < 0.05


def test_page_states_the_storage_cap(server):
    import urllib.request

    config = urllib.request.urlopen(server.url + "config", timeout=30).read().decode()
    assert "Uploads and results are kept for an hour and 2000 MB in all at most" in config


def test_three_concurrent_clients(server, app_media, tmp_path):
    from gradio_client import Client

    def one(seed):
        client = Client(server.url, verbose=False, download_files=str(tmp_path / f"client-{seed}"))
        return predict(client, app_media["good"], seed=seed, random_seed=False)

    with ThreadPoolExecutor(3) as pool:
        results = list(pool.map(one, [101, 102, 103]))
    for seed, out in zip([101, 102, 103], results):
        assert out[13] == seed and Path(video_path(out[0])).name == f"good_music_{seed}.mp4"
        assert streams(video_path(out[0])) == [("video", "h264"), ("audio", "aac")]
    wavs = [sf.read(out[1])[0] for out in results]
    assert not np.array_equal(wavs[0], wavs[1]), "each client got its own music"


# --- a real browser --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    if not Path(CHROMIUM).exists():
        message = "the browser tests need Debian's chromium: apt-get install -y chromium"
        if os.environ.get("REQUIRE_BROWSER"):  # CI: a missing browser is a failure, not a skip
            pytest.fail(message)
        pytest.skip(message + " (REQUIRE_BROWSER=1 makes this a failure)")
    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                                       headless=True, viewport={"width": 1280, "height": 900})
        yield context
        context.close()
    shutil.rmtree(profile, ignore_errors=True)


def upload_and_generate(page, server, video: Path, prompt: str = "", variations: int = 1):
    page.goto(server.url)
    page.locator("#input-video input[type=file]").set_input_files(str(video))
    # the server has probed the upload: its description or its refusal (Gradio's loading timer, "0.7s",
    # is text in the same box and must not count)
    page.wait_for_function(r"/\d+x\d+|Cannot use this file/.test(document.querySelector('#video-info').innerText)",
                           timeout=60_000)
    if prompt:
        page.locator("#prompt textarea").fill(prompt)
    if variations != 1:
        page.locator("#variations input[type=number]").fill(str(variations))
        page.locator("#variations input[type=number]").press("Enter")
    page.locator("#generate").click()


def test_browser_generates_and_plays_music(browser, server, app_media, tmp_path):
    page = browser.new_page()
    upload_and_generate(page, server, app_media["browser"], prompt="calm piano", variations=2)
    assert "3.0 s, 320x240, 25 fps, with sound." in page.locator("#video-info").inner_text()
    player = page.locator("#result-video-1 video")
    player.wait_for(timeout=RESULT_TIMEOUT_MS)
    page.locator("#result-video-2 video").wait_for(timeout=10_000)  # the two variations side by side
    first, second = (page.locator(f"#result-video-{i}").bounding_box() for i in (1, 2))
    assert abs(first["y"] - second["y"]) < 5 and second["x"] > first["x"] + first["width"] - 5
    state = player.evaluate("""async (video) => {
        video.muted = true;  // headless: no sound device; decoding still happens
        await video.play();
        const start = Date.now();
        while ((video.currentTime < 1.0 || !video.webkitAudioDecodedByteCount) && Date.now() - start < 30000)
            await new Promise(r => setTimeout(r, 100));
        return {duration: video.duration, time: video.currentTime, error: video.error && video.error.code,
                audioBytes: video.webkitAudioDecodedByteCount, videoBytes: video.webkitVideoDecodedByteCount,
                src: video.currentSrc};
    }""")
    assert state["error"] is None and abs(state["duration"] - 3.0) < 0.1, state
    assert state["time"] >= 1.0 and state["audioBytes"] > 0 and state["videoBytes"] > 0, state
    assert state["src"].endswith(".mp4")
    for i in (1, 2):
        assert page.locator(f"#result-wav-{i}").get_by_text(".wav").count() >= 1
        assert page.locator(f"#result-picture-{i} img").count() == 1
    assert not page.locator("#result-video-3").is_visible()
    seeds = re.search(r"3 s of music with .* \(variation 1: seed (\d+), variation 2: seed (\d+)\)",
                      page.locator("#summary").inner_text())
    assert seeds and int(seeds[2]) == int(seeds[1]) + 1, "a random seed, shown, and the next one"
    page.locator("#result-picture-1 img").scroll_into_view_if_needed()
    screenshot = tmp_path / "app.png"
    page.screenshot(path=str(screenshot), full_page=True)
    assert screenshot.stat().st_size > 10_000
    text = page.evaluate(PAGE_TEXT)
    if os.environ.get("APP_SCREENSHOT"):  # APP_SCREENSHOT=docs/app.png refreshes the README's picture
        save_screenshot(screenshot, REPO / os.environ["APP_SCREENSHOT"], text)
    else:
        assert screenshot_text(README_SCREENSHOT) == text, (
            f"the page's text changed since {README_SCREENSHOT.relative_to(REPO)} was taken: refresh it with "
            f"APP_SCREENSHOT={README_SCREENSHOT.relative_to(REPO)} python -m pytest tests/test_app.py -k browser_generates")
    page.close()


# The README's screenshot carries the page's text it shows (a PNG text chunk), so that a change to
# the page's wording or limits without a new screenshot fails the test above.
README_SCREENSHOT = REPO / "docs" / "app.png"
PAGE_TEXT = """() => [document.querySelector('#intro'), ...document.querySelectorAll('label, button')]
    .map(e => e.innerText.trim()).filter(t => t).join('\\n')"""
_TEXT_KEY = "page-text"


def save_screenshot(png: Path, target: Path, text: str) -> None:
    from PIL import Image, PngImagePlugin

    info = PngImagePlugin.PngInfo()
    info.add_itxt(_TEXT_KEY, text)
    Image.open(png).save(target, pnginfo=info, optimize=True)


def screenshot_text(png: Path) -> str | None:
    from PIL import Image

    return Image.open(png).text.get(_TEXT_KEY)


def test_browser_shows_errors_then_succeeds(browser, server, app_media):
    page = browser.new_page()
    for video, message in [(app_media["text"], "not_a_video.mp4: not a media file"),
                           (app_media["long"], f"this server accepts videos up to {MAX_DURATION} s")]:
        upload_and_generate(page, server, video)
        assert "Cannot use this file" in page.locator("#video-info").inner_text()
        page.locator(".toast-body", has_text=message).wait_for(timeout=RESULT_TIMEOUT_MS)
    upload_and_generate(page, server, app_media["good"])
    page.locator("#result-video-1 video").wait_for(timeout=RESULT_TIMEOUT_MS)
    assert page.locator(".toast-body").count() == 0, "a good request after errors shows no error"
    page.close()


def test_server_cleans_up_when_terminated(server, client, app_media):
    """Last: stop the server; its private folder (results, uploads, sample clips) is gone."""
    predict(client, app_media["good"], seed=1, random_seed=False)
    folders = list(server.tmpdir.glob("video-bgm-app-*"))
    assert len(folders) == 1 and any(folders[0].rglob("*.mp4")) and any(folders[0].rglob("good.mp4"))
    assert server.stop() == 0
    left = [p.name for p in server.tmpdir.iterdir() if not p.name.startswith("torchinductor")]  # torch's cache
    assert left == [], "no temporary files left behind (Gradio's uploads and copies were inside our folder)"
