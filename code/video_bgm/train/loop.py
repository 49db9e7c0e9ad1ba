"""The training loop: the video encoder learns to condition the frozen MusicGen.

Only the temporal transformer trains (AdamW, warm-up + cosine decay, gradient clipping on its
own parameters). The loss is MusicGen's per-codebook cross-entropy on the paired music's
cached EnCodec codes, backpropagated through the frozen decoder. ``accelerate`` handles
devices, several GPUs, mixed precision and gradient accumulation; there is no separate code
path for them.

Validation reports the **conditioning gain**: the cross-entropy with shuffled videos minus the
cross-entropy with the matching videos. Zero means the music does not depend on the video. The
test split is scored before training (the run's own untrained baseline) and after; a run whose
loss fell while its gain stayed near zero ends with a warning (a collapsed encoder).
"""

from __future__ import annotations

import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from ..config import from_dict
from ..data.cache import FeatureCache, prepare_features
from ..data.clips import Skipped, find_clips, load_or_make_split
from ..data.segments import SegmentDataset
from ..errors import UserInputError
from ..frames import build_frame_encoder
from ..musicgen import MusicGen
from ..objective import batch_loss, collapse_warning, collate, conditioning_losses
from ..outputs import write_atomic
from ..pipeline import VideoBGM
from ..refs import resolve_reference
from ..temporal import TemporalTransformer
from . import checkpoints as ckpt
from .config import TrainConfig, dump_train_config

MODEL_DIR = "model"
CONFIG_NAME = "training_config.yaml"


@dataclass
class RunResult:
    model_dir: Path
    step: int
    best_validation_loss: float | None
    test: dict | None
    skipped: list[Skipped]


def lr_factor(step: int, warmup: int, total: int, min_ratio: float) -> float:
    """Linear warm-up to 1, then cosine decay to ``min_ratio`` at ``total`` steps."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def trim_metrics(path: Path, step: int) -> None:
    """Keep the lines of ``path`` (metrics.jsonl) that a run resumed at ``step`` does not write again:
    training and validation up to ``step`` (the checkpoint is saved after both); the test, logged
    once at the end, always goes. ``step`` -1: a fresh start, nothing is kept."""
    if not path.is_file():
        return
    lines = path.read_text().splitlines(keepends=True)
    kept = [line for line in lines if _keeps(line, step)]
    if len(kept) != len(lines):
        write_atomic(path, "".join(kept))


def _keeps(line: str, step: int) -> bool:
    try:
        record = json.loads(line)
    except json.JSONDecodeError:  # the last line of a run killed while writing it
        return False
    return record.get("split") != "test" and record.get("step", 0) <= step


class Trainer:
    def __init__(self, config: TrainConfig, show_progress: bool = True):
        from accelerate import Accelerator
        from accelerate.utils import set_seed

        self.config = config
        self.show_progress = show_progress
        self.out = Path(config.output_dir)
        cpu = config.device == "cpu" or (config.device == "auto" and not torch.cuda.is_available())
        if config.device == "cuda" and not torch.cuda.is_available():
            raise UserInputError("device: cuda was asked for but no CUDA device is available")
        trackers = ["tensorboard"] + (["wandb"] if config.wandb_project else [])
        self.accelerator = Accelerator(
            cpu=cpu, gradient_accumulation_steps=config.train.grad_accum_steps,
            mixed_precision="no" if cpu else config.train.mixed_precision,
            log_with=trackers, project_dir=str(self.out),
        )
        set_seed(config.seed)
        self.out.mkdir(parents=True, exist_ok=True)
        self._check_resumable_config()

    # --- setup -------------------------------------------------------------------------------
    def _check_resumable_config(self) -> None:
        """A run resumes in the same folder only with the same model and data settings."""
        path = self.out / CONFIG_NAME
        if path.is_file():
            import yaml

            saved = yaml.safe_load(path.read_text())
            try:  # written before a setting existed: it has that setting's default
                saved = from_dict(TrainConfig, saved).to_dict()
            except ValueError:
                pass  # compared as written, so any difference is refused
            now = self.config.to_dict()
            for section in ("model", "data", "seed"):
                if saved.get(section) != now.get(section):
                    raise UserInputError(
                        f"{self.out}: holds a run with other '{section}' settings ({path}); "
                        f"use another output_dir or the same settings to resume")
        if self.accelerator.is_main_process:
            path.write_text(dump_train_config(self.config))

    def build_model(self) -> VideoBGM:
        config = self.config.model
        device = self.accelerator.device
        base = Path.cwd()
        frame_encoder = build_frame_encoder(config.frame_encoder, base).to(device)
        config.musicgen = resolve_reference(config.musicgen, base, "model.musicgen")
        musicgen = MusicGen.from_pretrained(config.musicgen, config.musicgen_revision, device)
        torch.manual_seed(self.config.seed)
        temporal = TemporalTransformer.for_model(config).to(device)
        return VideoBGM(config, frame_encoder, temporal, musicgen)

    def prepare_data(self, model: VideoBGM):
        """Find the clips, cache their features (main process first), split, build the datasets."""
        data = self.config.data
        clips, skipped = find_clips(data)
        cache = FeatureCache(Path(data.cache_dir or self.out / "cache"), self.config.model, model.musicgen)
        with self.accelerator.main_process_first():  # the others then find everything cached and split
            ready, failed = prepare_features(clips, cache, model.frame_encoder, model.musicgen, self.config.model.fps,
                                             data.num_workers, self.show_progress and self.accelerator.is_main_process)
            skipped += failed
            if not ready:
                reasons = "; ".join(f"{s.what}: {s.why}" for s in skipped[:3])
                raise UserInputError(f"no usable clips in the dataset ({len(skipped)} skipped: {reasons})")
            split, notes = load_or_make_split(self.out, [c.clip for c in ready], data)
        for note in notes:
            self.log_line(note)
        by_id = {c.clip.id: c for c in ready}

        def dataset(name: str, train: bool) -> SegmentDataset | None:
            chosen = [by_id[i] for i in split[name]]
            if not chosen:
                return None
            return SegmentDataset(chosen, data.segment_seconds, self.config.model.fps,
                                  model.musicgen.frame_rate, self.config.seed, random_crops=train)

        return dataset("training", True), dataset("validation", False), dataset("test", False), skipped

    def log_line(self, text: str) -> None:
        if self.accelerator.is_main_process:
            tqdm.write(text, file=sys.stderr)

    # --- loss and evaluation -----------------------------------------------------------------
    def batch_loss(self, model: VideoBGM, batch: dict, features: torch.Tensor | None = None,
                   null: bool = False) -> torch.Tensor:
        """MusicGen's loss on a batch; ``features`` replaces the batch's (shuffled video), ``null``
        uses MusicGen's null condition (no video at all)."""
        return batch_loss(model, batch, self.accelerator.device, features, null, self.accelerator.autocast)

    @torch.no_grad()
    def evaluate(self, model: VideoBGM, dataset: SegmentDataset) -> dict:
        """Cross-entropy with matched videos, shuffled videos and no video (see ``conditioning_losses``)."""
        return conditioning_losses(model, dataset, self.config.train.batch_size, self.accelerator.device,
                                   self.accelerator.autocast)

    # --- the run -----------------------------------------------------------------------------
    def run(self) -> RunResult:
        acc, cfg, opt_cfg = self.accelerator, self.config, self.config.train
        model = self.build_model()
        train_set, val_set, test_set, skipped = self.prepare_data(model)
        temporal = model.temporal
        optimizer = torch.optim.AdamW([p for p in temporal.parameters() if p.requires_grad], lr=opt_cfg.lr,
                                      betas=opt_cfg.betas, weight_decay=opt_cfg.weight_decay)
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda s: lr_factor(s, opt_cfg.warmup_steps, opt_cfg.max_steps, opt_cfg.min_lr_ratio))
        # The order and each process's share come from train_set.set_epoch (deterministic, so a
        # resumed run sees the same batches); accelerate wraps the model and optimizer.
        loader = DataLoader(train_set, batch_size=opt_cfg.batch_size, shuffle=False, collate_fn=collate)
        model.temporal, optimizer = acc.prepare(temporal, optimizer)
        unwrapped = acc.unwrap_model(model.temporal)

        folder = self.out / "checkpoints"
        state = {"step": 0, "epoch": 0, "batches_done": 0, "best_validation_loss": None, "best_score": None,
                 "best_by": opt_cfg.best_by, "evals_without_improvement": 0, "stopped_early": False}
        existing = ckpt.step_checkpoints(folder)
        if existing:
            state = ckpt.load_checkpoint(existing[-1], unwrapped, optimizer, scheduler)
            self.log_line(f"resuming from {existing[-1]} (step {state['step']})")
            self._resume_best_by(state)
        if opt_cfg.best_by == "gain" and val_set is not None and len(val_set) < 2:
            raise UserInputError("train.best_by: gain needs two or more validation clips (the gain pairs each "
                                 f"clip's music with another clip's video); the validation split has {len(val_set)}")
        acc.init_trackers("train", config={"output_dir": cfg.output_dir, "seed": cfg.seed} | {
            f"train.{k}": v for k, v in vars(opt_cfg).items() if isinstance(v, (int, float, str))}
            | ({"wandb": {"project": cfg.wandb_project}} if cfg.wandb_project else {}))
        metrics_file = self.out / "metrics.jsonl"
        if acc.is_main_process:  # the steps after the checkpoint run again: their lines go
            trim_metrics(metrics_file, state["step"] if existing else -1)

        def log(split: str, values: dict) -> None:
            if acc.is_main_process:
                with open(metrics_file, "a") as f:
                    f.write(json.dumps({"step": state["step"], "split": split, **values, "time": time.time()}) + "\n")
            acc.log({f"{split}/{k}": v for k, v in values.items() if isinstance(v, (int, float))}, step=state["step"])

        def save(name: str) -> None:
            if acc.is_main_process:
                ckpt.save_checkpoint(folder, name, unwrapped, optimizer, scheduler, state)
                ckpt.prune(folder, opt_cfg.keep_last)
            acc.wait_for_everyone()

        if val_set is None:
            self.log_line("no validation clips: no early stopping, the last weights are exported")
        bar = tqdm(total=opt_cfg.max_steps, initial=state["step"], desc="training", unit="step",
                   disable=not (self.show_progress and acc.is_main_process), dynamic_ncols=True)
        stop = state["step"] >= opt_cfg.max_steps or state["stopped_early"]
        if not existing:  # the untrained baselines, at step 0
            if test_set is not None:
                state["untrained_test"] = self.evaluate(model, test_set)
                log("untrained_test", state["untrained_test"])
                self.log_line(f"untrained: {_summary('test', state['untrained_test'])}")
            if val_set is not None:
                self._validate(model, val_set, state, log, save)
        model.temporal.train()
        while not stop:
            # Resuming mid-epoch: leave out the clips already seen (all processes' batches).
            seen = state["batches_done"] * opt_cfg.batch_size * acc.num_processes
            train_set.set_epoch(state["epoch"], skip=seen, rank=acc.process_index, world=acc.num_processes)
            for batch in loader:
                # Dropout's randomness is a function of (seed, process, epoch, batch), not of a
                # running state: a resumed run draws exactly what the uninterrupted one drew.
                torch.manual_seed(hash((cfg.seed, acc.process_index, state["epoch"], state["batches_done"])) % 2**63)
                with acc.accumulate(model.temporal):
                    loss = self.batch_loss(model, batch)
                    acc.backward(loss)
                    grad_norm = None
                    if acc.sync_gradients and opt_cfg.grad_clip > 0:
                        grad_norm = acc.clip_grad_norm_(model.temporal.parameters(), opt_cfg.grad_clip)
                    optimizer.step()
                    if acc.sync_gradients:
                        scheduler.step()
                    optimizer.zero_grad(set_to_none=True)
                state["batches_done"] += 1
                if not acc.sync_gradients:
                    continue
                state["step"] += 1
                bar.update()
                bar.set_postfix(loss=f"{loss.item():.3f}")
                if state["step"] % opt_cfg.log_every == 0:
                    log("train", {"loss": loss.item(), "lr": scheduler.get_last_lr()[0],
                                  **({"grad_norm": float(grad_norm)} if grad_norm is not None else {})})
                if val_set is not None and state["step"] % opt_cfg.eval_every == 0:
                    stop = state["stopped_early"] = self._validate(model, val_set, state, log, save)
                if state["step"] % opt_cfg.save_every == 0 or state["step"] >= opt_cfg.max_steps or stop:
                    save(f"step-{state['step']:06d}")
                if stop or state["step"] >= opt_cfg.max_steps:
                    stop = True
                    break
            else:
                state["epoch"] += 1
                state["batches_done"] = 0
        bar.close()

        result = self._finish(model, unwrapped, folder, val_set, test_set, state, log, skipped)
        acc.end_training()
        return result

    def _resume_best_by(self, state: dict) -> None:
        """A checkpoint's best score is by the criterion it was saved under (loss before best_by existed)."""
        by = self.config.train.best_by
        if "best_score" not in state:
            state["best_by"], state["best_score"] = "loss", state.get("best_validation_loss")
        if state["best_by"] != by:
            self.log_line(f"train.best_by changed from {state['best_by']} to {by}: the best checkpoint is chosen "
                          "afresh from the next validation on")
            state["best_by"], state["best_score"] = by, None

    def _validate(self, model, val_set, state, log, save) -> bool:
        """Evaluate; keep the best checkpoint (by ``train.best_by``); True when early stopping says stop."""
        values = self.evaluate(model, val_set)
        log("validation", values)
        self.log_line(f"step {state['step']}: {_summary('validation', values)}")
        if state["step"] == 0:
            state["baseline_validation"] = values
        by = self.config.train.best_by
        score = values["loss"] if by == "loss" else -values["conditioning_gain"]  # lower is better
        if state["best_score"] is None or score < state["best_score"]:
            state.update(best_score=score, best_validation_loss=values["loss"], best_validation=values,
                         evals_without_improvement=0)
            save("best")
            return False
        state["evals_without_improvement"] += 1
        patience = self.config.train.early_stopping_patience
        if patience and state["evals_without_improvement"] >= patience:
            what = "validation loss" if by == "loss" else "conditioning gain"
            self.log_line(f"early stopping: no better {what} in {patience} evaluations")
            return True
        return False

    def _finish(self, model, unwrapped, folder, val_set, test_set, state, log, skipped) -> RunResult:
        """Export the best (or last) weights as a model folder and report the test loss."""
        best = folder / "best"
        if best.is_dir() and (best / "temporal.safetensors").is_file():
            ckpt.load_checkpoint(best, unwrapped)
        model.temporal = unwrapped.eval()
        test = None
        if test_set is not None:
            test = self.evaluate(model, test_set)
            log("test", test)
            self.log_line(_summary("test", test))
        # Collapse: judged on validation (the baseline against the exported checkpoint), else on test.
        before, after, split = ((state.get("baseline_validation"), state.get("best_validation"), "validation")
                                if val_set is not None else (state.get("untrained_test"), test, "test"))
        warning = collapse_warning(before, after, split) if before and after else None
        if warning:
            self.log_line(f"warning: {warning}")
        model_dir = self.out / MODEL_DIR
        if self.accelerator.is_main_process:
            metrics = {"step": state["step"], "best_by": self.config.train.best_by,
                       "best_validation_loss": state["best_validation_loss"], "untrained_test": state.get("untrained_test"),
                       "test": test, "warnings": [warning] if warning else []}
            model.info = {"source": f"trained with training.py in {self.out}", "training": self.config.to_dict(),
                          "metrics": {f"{name}_{k}": v for name in ("untrained_test", "test")
                                      for k, v in (metrics[name] or {}).items() if isinstance(v, (int, float))},
                          "warnings": metrics["warnings"]}
            model.save_pretrained(model_dir, model_card=True)
            (model_dir / CONFIG_NAME).write_text(dump_train_config(self.config))
            (model_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")
            if skipped:
                self.log_line(f"{len(skipped)} clips skipped:")
                for s in skipped:
                    self.log_line(f"  {s.what}: {s.why}")
            self.log_line(f"model written to {model_dir}")
        self.accelerator.wait_for_everyone()
        return RunResult(model_dir, state["step"], state["best_validation_loss"], test, skipped)


def _summary(split: str, values: dict) -> str:
    gains = [f", {name.replace('_', ' ')} {values[name]:+.4f}" for name in ("conditioning_gain", "order_gain")
             if values.get(name) is not None]
    return f"{split} loss {values['loss']:.4f}" + "".join(gains)
