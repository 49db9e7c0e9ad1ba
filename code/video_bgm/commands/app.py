"""Background music for a video, in the browser.

    python code/inference/gradio_app/app.py [--model MODEL ...] [--models-dir models/]

prints a local URL (http://127.0.0.1:7860 by default). Upload a video, pick a model, optionally
type a prompt; get the video with music, the music as WAV and a picture of it. The models offered
are the model folders under --models-dir and the --model references; clients can choose only those.
The app is a thin layer over ``video_bgm.app_support`` (model list, cache, limits, outputs).
"""

from __future__ import annotations

import atexit
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from . import project_root
from ..cli import ArgumentParser, add_precision_argument, add_threads_argument, quiet_libraries, set_threads
from ..config import DEFAULT_LOUDNESS, MAX_CANDIDATES, MAX_NUDGE, GenerationParams, Mix
from ..errors import UserInputError
from ..refs import first_line

if TYPE_CHECKING:
    from ..app_support import Limits, ModelCache, ModelList, OutputStore

PROG = "app.py"

REPO = project_root()
LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
KEEP_OUTPUTS_SECONDS = 3600  # results (ours and Gradio's copies, uploads too) are deleted after an hour
STORE_CHECK_SECONDS = 5.0  # how often the uploads' and results' total size is checked against --max-stored-mb
log = logging.getLogger("video_bgm.app")

# Defaults shown in the page (the same as generate.py's and GenerationParams').
DEFAULTS = GenerationParams()


def parse_args(argv=None, prog: str = PROG):
    p = ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    p.add_argument("--model", action="append", default=[], metavar="MODEL",
                   help="a model folder or Hugging Face Hub repo id to offer (repeatable); listed after --models-dir's")
    p.add_argument("--models-dir", default=str(REPO / "models"),
                   help="offer every model folder under this folder (default: the repo's models/)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="default: cuda if present")
    add_precision_argument(p)
    add_threads_argument(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0: everyone who can reach it)")
    p.add_argument("--port", type=int, default=7860, help="default 7860")
    p.add_argument("--share", action="store_true", help="also serve through a public *.gradio.live link (opt-in)")
    p.add_argument("--max-upload-mb", type=float, default=200.0, help="largest video accepted, in MB (default 200)")
    p.add_argument("--max-stored-mb", type=float, default=2000.0,
                   help="uploads and results kept at once, in MB (default 2000); the oldest are removed first")
    p.add_argument("--max-duration", type=float, default=300.0,
                   help="longest video accepted, in seconds (default 300); longer music is made window by window")
    p.add_argument("--queue-size", type=int, default=16,
                   help="requests waiting at most; more are refused (default 16); one generation runs at a time")
    args = p.parse_args(argv)
    for name in ("max_upload_mb", "max_stored_mb", "max_duration", "queue_size"):
        if getattr(args, name) <= 0:
            p.error(f"--{name.replace('_', '-')} must be positive")
    if args.max_stored_mb < args.max_upload_mb:
        p.error(f"--max-stored-mb ({args.max_stored_mb:g}) must be at least --max-upload-mb ({args.max_upload_mb:g})")
    return args


def make_examples(folder: Path) -> list[list]:
    """Small sample clips, written at start (the repository ships no media): [video, prompt] rows."""
    from ..synthetic import write_test_video

    folder.mkdir(parents=True, exist_ok=True)
    landscape = write_test_video(folder / "colours-6s.mp4", duration=6.0, fps=25, size=(320, 240))
    portrait = write_test_video(folder / "portrait-4s.mp4", duration=4.0, fps=25, size=(320, 240), rotation=90,
                                audio_freq=220.0)
    return [[landscape, "calm piano"], [portrait, ""]]


def build_app(models: ModelList, cache: ModelCache, store: OutputStore, limits: Limits, device: str,
              queue_size: int, examples: list[list]):
    import gradio as gr

    from .. import app_support

    n = app_support.MAX_VARIATIONS

    def describe(video):
        """Shown under the upload: what the video is and how much music it will get."""
        if not video:
            return ""
        store.enforce_size_cap(keep=[video])  # each upload may push older ones out
        try:
            info = app_support.check_video(video, limits)
            _, note = app_support.plan_duration(None, info.duration, limits.max_music_seconds)
        except UserInputError as err:
            return f"**Cannot use this file:** {err}"
        header = f" Note: {info.duration_note()}." if info.duration_note() else ""
        return (f"{info.duration:.1f} s, {info.width}x{info.height}, {info.fps:.3g} fps, "
                f"{'with' if info.has_audio else 'without'} sound. {note}{header}")

    def generate(video, model, prompt, duration, variations, guidance_scale, temperature, top_k, top_p,
                 random_seed, seed, keep_original=False, music_level=-12.0, loudness=DEFAULT_LOUDNESS,
                 follow_cuts=DEFAULTS.follow_cuts, candidates=DEFAULTS.candidates, nudge=DEFAULTS.nudge,
                 progress=gr.Progress()):
        """Music for ``video``: per variation the video with music, the WAV and a picture; then a
        summary and the first seed used."""
        ref = None
        try:
            ref = models.reference(model)
            info = app_support.check_video(video, limits)
            music_seconds, note = app_support.plan_duration(duration, info.duration, limits.max_music_seconds)
            count = int(variations)
            params = GenerationParams(guidance_scale=float(guidance_scale), temperature=float(temperature),
                                      top_k=int(top_k), top_p=float(top_p), duration=music_seconds,
                                      seed=None if random_seed else _seed(seed), prompt=(prompt or "").strip() or None,
                                      follow_cuts=bool(follow_cuts), candidates=int(candidates), nudge=float(nudge))
            mix = Mix(loudness=float(loudness), keep_original=float(music_level) if keep_original else None)
            try:
                params.validate()
                mix.validate()
            except ValueError as err:
                raise UserInputError(str(err).replace("_", " ")) from None
            with cache.lock(device):  # one generation at a time per device
                if not cache.is_loaded(ref, device):
                    progress(0.0, desc=f"loading {model}")
                model_obj = cache.get(ref, device)
                results = app_support.generate_variations(
                    model_obj, video, info, params, count, store.new_dir(),
                    report=lambda fraction, what: progress(fraction, desc=what), mix=mix)
        except UserInputError as err:  # errors name the model by its label, never by its path on the server
            message = str(err).replace(ref, model) if ref else str(err)
            raise gr.Error(message, duration=None, print_exception=False) from None
        except Exception as err:  # a bug or an exhausted device: say so in the page, keep serving
            log.exception("generation failed")
            raise gr.Error(f"Generation failed ({type(err).__name__}: {first_line(err)})", duration=None,
                           print_exception=False) from None

        # Plain values (not component updates) so that API clients get file paths; the columns'
        # visibility is layout, which the API does not see.
        outputs = []
        for i in range(n):
            r = results[i] if i < len(results) else None
            outputs += [gr.Column(visible=r is not None)] + ([str(r.video), str(r.wav), r.picture] if r else [None] * 3)
        seeds = ", ".join(f"variation {i + 1}: seed **{r.seed}**" for i, r in enumerate(results))
        cuts = app_support.cuts_summary(results[0].cuts)  # the video's cuts: the same for every variation
        summary = (f"{music_seconds:g} s of music with {model} ({seeds}). {note}" + (f" {cuts}" if cuts else "")
                   + "".join(f" Note: {n}." for n in app_support.summary_notes(results)))
        return outputs + [summary, results[0].seed]

    with gr.Blocks(title="video-to-music", delete_cache=(600, KEEP_OUTPUTS_SECONDS)) as demo:
        gr.Markdown(
            "# video-to-music\n"
            "Upload a video, pick a model and press **Generate music**: you get the video with new music "
            "(the video stream is copied, not re-encoded), the music as a WAV, and a picture of it.\n\n"
            f"**Limits:** videos up to {limits.max_upload_mb:g} MB and {limits.max_video_seconds:g} s. "
            f"Uploads and results are kept for an hour and {limits.max_stored_mb:g} MB in all at most "
            "(the oldest are removed first: download what you want to keep). "
            f"Music longer than MusicGen's {DEFAULTS.window:g} s window is made window by window, each window following its own "
            "part of the video and continuing the music before it. One generation runs at a time; other requests "
            f"wait in a queue of {queue_size}.", elem_id="intro")
        with gr.Row():
            with gr.Column():
                video = gr.Video(label="Video", sources=["upload"], height=320, elem_id="input-video")
                video_info = gr.Markdown(elem_id="video-info")
            with gr.Column():
                model = gr.Dropdown(models.labels, value=models.labels[0], label="Model", elem_id="model")
                prompt = gr.Textbox("", label="Text prompt (optional)", placeholder="calm piano", elem_id="prompt")
                duration = gr.Slider(0, limits.max_music_seconds, value=0, step=0.5,
                                     label="Music duration in seconds (0: the video's)", elem_id="duration")
                variations = gr.Slider(1, n, value=1, step=1, label="Variations (shown side by side)",
                                       elem_id="variations")
                keep_original = gr.Checkbox(value=False, label="Keep the video's own sound (music mixed under it)",
                                            elem_id="keep-original")
                music_level = gr.Slider(-30, 10, value=-12, step=1, elem_id="music-level",
                                        label="Music level relative to the video's sound, dB (with the box ticked)")
                follow_cuts = gr.Checkbox(value=DEFAULTS.follow_cuts, elem_id="follow-cuts",
                                          label="Follow the cuts (the music changes where the scene does)")
                with gr.Accordion("Advanced options", open=False):
                    guidance_scale = gr.Slider(0, 10, value=DEFAULTS.guidance_scale, step=0.1,
                                               label="Guidance scale (1: off, 0: ignore the video)")
                    temperature = gr.Slider(0.05, 2, value=DEFAULTS.temperature, step=0.05, label="Temperature")
                    top_k = gr.Slider(0, 2048, value=DEFAULTS.top_k, step=1, label="Top-k (0: no limit)")
                    top_p = gr.Slider(0, 1, value=DEFAULTS.top_p, step=0.01, label="Top-p (0: off)")
                    loudness = gr.Slider(-30, -6, value=DEFAULT_LOUDNESS, step=1, label="Output loudness (LUFS)")
                    candidates = gr.Slider(1, MAX_CANDIDATES, value=DEFAULTS.candidates, step=1, elem_id="candidates",
                                           label="Candidates per cut (keep the one whose beats hit the cut best)")
                    nudge = gr.Slider(0, MAX_NUDGE, value=DEFAULTS.nudge, step=0.5, elem_id="nudge",
                                      label="Nudge the beats onto the cuts: tempo change at most, % (0: off)")
                    random_seed = gr.Checkbox(value=True, label="Random seed (the seed used is shown after)")
                    seed = gr.Number(value=0, precision=0, minimum=0, maximum=2**31 - 1, label="Seed",
                                     info="used when 'Random seed' is off; variations use seed + 1, ...")
                button = gr.Button("Generate music", variant="primary", elem_id="generate")
        gr.Examples(examples, inputs=[video, prompt], cache_examples=False, label="Sample clips")
        summary = gr.Markdown(label="Summary", elem_id="summary")
        slots = []
        with gr.Row(equal_height=False):
            for i in range(n):
                with gr.Column(visible=i == 0, min_width=240) as column:
                    slots += [column,
                              gr.Video(label=f"Variation {i + 1}", interactive=False, buttons=["download"], height=320,
                                       elem_id=f"result-video-{i + 1}"),
                              gr.File(label="Music (WAV)", interactive=False, elem_id=f"result-wav-{i + 1}"),
                              gr.Image(label="Spectrogram and waveform (following the cuts: cuts green, beats orange)",
                                       format="png", interactive=False,
                                       buttons=["download"], elem_id=f"result-picture-{i + 1}")]

        video.change(describe, video, video_info, queue=False, api_visibility="private")
        button.click(generate, [video, model, prompt, duration, variations, guidance_scale, temperature, top_k,
                                top_p, random_seed, seed, keep_original, music_level, loudness, follow_cuts, candidates,
                                nudge], slots + [summary, seed],
                     api_name="generate", concurrency_limit=1, concurrency_id=f"generate-{device}")
    demo.queue(max_size=queue_size, default_concurrency_limit=1)
    return demo


def _keep_under_cap(store: OutputStore, every: float) -> None:
    while True:
        time.sleep(every)
        try:
            store.enforce_size_cap()
        except OSError:
            log.exception("could not keep the temporary folder under its size cap")


def _seed(value) -> int:
    if value is None:
        raise UserInputError("seed: enter a number, or tick 'Random seed'")
    return int(value)


def check_port_free(host: str, port: int) -> None:
    """Fail before any model loads, naming our option: Gradio's own error names its ``server_port``."""
    import socket

    try:
        with socket.create_server((host, port)):
            pass
    except OSError as err:
        raise UserInputError(f"--host {host} --port {port}: cannot listen there ({os.strerror(err.errno) if err.errno else err}); "
                             "pass another --port") from None


def main(argv=None, prog: str = PROG) -> int:
    args = parse_args(argv, prog)
    check_port_free(args.host, args.port)
    quiet_libraries()
    set_threads(args.threads)
    from .. import app_support  # PyAV, torch: after the arguments
    from ..app_support import Limits, ModelCache, ModelList, OutputStore

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    models = ModelList(app_support.discover_models(args.models_dir, args.model))
    if not models.labels:
        raise UserInputError(f"no models: put a model folder under {args.models_dir} or pass --model "
                             "(python code/tools/make_tiny_models.py models/tiny writes a tiny random one)")
    from ..pipeline import resolve_device

    device = str(resolve_device(args.device))
    limits = Limits(max_upload_mb=args.max_upload_mb, max_video_seconds=args.max_duration,
                    max_music_seconds=args.max_duration, max_stored_mb=args.max_stored_mb)

    # Everything this server writes (results, sample clips, and Gradio's uploads and copies unless
    # GRADIO_TEMP_DIR says otherwise) lives in one private folder, removed at exit. Gradio reads
    # GRADIO_TEMP_DIR when it is imported, hence the late import.
    store = OutputStore(max_age=KEEP_OUTPUTS_SECONDS, max_bytes=int(args.max_stored_mb * 2**20))
    atexit.register(store.close)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # so that a terminated server cleans up too
    os.environ.setdefault("GRADIO_TEMP_DIR", str(store.root / "gradio"))
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    store.uploads = Path(os.environ["GRADIO_TEMP_DIR"])
    # Uploads through the API reach no handler of ours until a generation: check the total regularly too.
    threading.Thread(target=_keep_under_cap, args=(store, STORE_CHECK_SECONDS), daemon=True).start()

    demo = build_app(models, ModelCache(precision=args.precision), store, limits, device, args.queue_size,
                     make_examples(store.root / "examples"))
    print(f"models: {', '.join(models.labels)}; device: {device}", flush=True)
    if args.host not in LOCAL_HOSTS:
        print(f"WARNING: listening on {args.host}: anyone who can reach this machine on port {args.port} can "
              "upload videos and use its GPU. Prefer an SSH tunnel (ssh -L 7860:localhost:7860 server) "
              "or a firewall.", file=sys.stderr, flush=True)
    # quiet: Gradio's own hints name its launch() arguments (share=True), not our options.
    demo.launch(server_name=args.host, server_port=args.port, share=args.share, quiet=True, prevent_thread_lock=True,
                max_file_size=int(args.max_upload_mb * 2**20), footer_links=["api", "gradio"])
    print(f"* Running on local URL:  {demo.local_url.rstrip('/')}", flush=True)
    if demo.share_url:
        print(f"* Running on public URL: {demo.share_url}", flush=True)
    elif args.share:
        print("--share: no public link could be made (no internet?); serving locally only", file=sys.stderr, flush=True)
    else:
        print("* For a public link, start again with --share", flush=True)
    demo.block_thread()
    return 0
