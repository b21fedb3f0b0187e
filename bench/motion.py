"""Motion benchmark: do steered diffusion frames keep one identity and follow the rig?

For each frame mode the real ``DiffusionGenerator`` renders the same sprites (a
``character`` walk cycle per seed, pico-8 palette) and every animation is scored:

* **identity** — between consecutive frames: the *palette histogram distance*
  (each opaque pixel snapped to the nearest palette colour in OKLab; total variation
  distance between the two frames' colour histograms, 0 = same colour mix, 1 =
  disjoint) and the *OKLab mean colour drift* (distance between the frames' mean
  OKLab colours of opaque pixels, ×100);
* **motion fidelity** — *silhouette IoU* of each generated frame's opaque pixels
  with the rig's silhouette for that frame, and *tracking*: IoU with its own frame's
  rig minus IoU with frame 0's rig (over frames that move; > 0 means the frame
  follows the rig's motion, not just the base pose).

Anchors measured in the same run: the rig itself (the procedural generator's frames:
the identity a perfect animation of this rig keeps, IoU 1) and a *static* row
(frame 0's rig for every frame: perfect identity, tracking ≤ 0).

Modes: ``seed`` (independent seeds), ``img2img-0.3`` (variations of one base),
``rig-img2img`` (img2img from each frame's flat rig render), ``controlnet`` (pose
ControlNet per frame), ``sheet`` (the whole animation in one strip, img2img from the
flat rig strip), ``sheet+controlnet``, and with an IP-Adapter (frame 0 is every other
frame's reference image): ``seed+ip-adapter``, ``rig-img2img+ip``, ``controlnet+ip``,
and with reference attention instead (weight 1; no extra weights): ``seed+reference``,
``rig-img2img+ref``, ``controlnet+ref``.

Default: the tiny random-weight pipeline, ControlNet and IP-Adapter of
``tests/tiny_pipeline.py`` on CPU (1 thread, 2 steps, 64 px; a few minutes). ``--model
PATH`` runs a real diffusers folder (``--controlnet PATH`` for the ControlNet rows, e.g.
an OpenPose ControlNet, ``--ip-adapter PATH`` for the IP-Adapter rows, e.g. the IP-Adapter
repository's ``models/`` folder; rows without their model are skipped) and prints the
same table. Tiny-model
figures say only that the plumbing steers pixels: its weights are random.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from sparky_assets.colour import srgb_to_oklab  # noqa: E402
from sparky_assets.generators.base import FrameSpec, GenerationRequest  # noqa: E402
from sparky_assets.generators.conditioning import Rig, rig_request  # noqa: E402
from sparky_assets.palettes.builtin import BUILTIN_PALETTES  # noqa: E402

MODES: dict[str, dict] = {
    "seed": {"frames": "seed"},
    "img2img-0.3": {"frames": "img2img", "strength": 0.3},
    "rig-img2img": {"frames": "rig"},
    "controlnet": {"frames": "rig", "controlnet": True},
    "sheet": {"frames": "sheet"},
    "sheet+controlnet": {"frames": "sheet", "controlnet": True},
    "seed+ip-adapter": {"frames": "seed", "ip_adapter": True},
    "rig-img2img+ip": {"frames": "rig", "ip_adapter": True},
    "controlnet+ip": {"frames": "rig", "controlnet": True, "ip_adapter": True},
    "seed+reference": {"frames": "seed", "reference_attention": 1.0},
    "rig-img2img+ref": {"frames": "rig", "reference_attention": 1.0},
    "controlnet+ref": {"frames": "rig", "controlnet": True, "reference_attention": 1.0},
}


# ---------------------------------------------------------------- metrics


def palette_histogram(frame: np.ndarray, palette_lab: np.ndarray) -> np.ndarray:
    opaque = frame[..., 3] > 0
    if not opaque.any():
        return np.zeros(len(palette_lab))
    lab = srgb_to_oklab(frame[opaque][:, :3])
    nearest = np.argmin(((lab[:, None, :] - palette_lab[None]) ** 2).sum(-1), axis=1)
    counts = np.bincount(nearest, minlength=len(palette_lab)).astype(np.float64)
    return counts / counts.sum()


def mean_lab(frame: np.ndarray) -> np.ndarray | None:
    opaque = frame[..., 3] > 0
    return srgb_to_oklab(frame[opaque][:, :3]).mean(axis=0) if opaque.any() else None


def iou(a: np.ndarray, b: np.ndarray) -> float:
    union = (a | b).sum()
    return float((a & b).sum() / union) if union else 1.0


def score(frames: list[np.ndarray], rig_masks: list[np.ndarray], palette_lab: np.ndarray) -> dict[str, float]:
    hist = [palette_histogram(f, palette_lab) for f in frames]
    means = [mean_lab(f) for f in frames]
    tv, drift = [], []
    for i in range(len(frames) - 1):
        tv.append(0.5 * float(np.abs(hist[i] - hist[i + 1]).sum()))
        if means[i] is not None and means[i + 1] is not None:
            drift.append(100 * float(np.linalg.norm(means[i] - means[i + 1])))
    masks = [f[..., 3] > 0 for f in frames]
    ious = [iou(m, r) for m, r in zip(masks, rig_masks)]
    moving = [i for i in range(1, len(frames)) if not np.array_equal(rig_masks[i], rig_masks[0])]
    tracking = [iou(masks[i], rig_masks[i]) - iou(masks[i], rig_masks[0]) for i in moving]
    return {
        "hist": float(np.mean(tv)) if tv else 0.0,
        "drift": float(np.mean(drift)) if drift else float("nan"),
        "iou": float(np.mean(ious)),
        "tracking": float(np.mean(tracking)) if tracking else float("nan"),
    }


# ---------------------------------------------------------------- runs


def requests_for(args, root: Path, settings: dict, palette) -> list[GenerationRequest]:
    frames = tuple(FrameSpec(args.animation, i) for i in range(args.frames))
    return [
        GenerationRequest(
            sprite=f"hero{n}",
            width=args.size,
            height=args.size,
            frames=frames,
            seed=1000 + n,
            root=root,
            prompt=args.prompt,
            palette=palette,
            options={"style": "character"},
            settings=settings,
        )
        for n in range(args.sprites)
    ]


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a diffusers folder (default: the tiny random-weight pipeline)")
    parser.add_argument("--controlnet", help="a ControlNetModel folder (default with the tiny model: a tiny one)")
    parser.add_argument("--ip-adapter", help="an IP-Adapter folder (default with the tiny model: a tiny one)")
    parser.add_argument("--ip-adapter-weights", help="the adapter file in that folder (default: its only one)")
    parser.add_argument("--ip-adapter-scale", type=float, default=0.6)
    parser.add_argument("--conditioning", default="pose", choices=["pose", "silhouette", "depth", "flat"])
    parser.add_argument("--steps", type=int, help="default 2 (tiny) or 20 (--model)")
    parser.add_argument("--guidance", type=float, help="default 1.5 (tiny) or 7.5 (--model)")
    parser.add_argument("--render-size", type=int, help="default: the model's (64 for the tiny one)")
    parser.add_argument("--sprites", type=int, default=3, help="sprites (seeds) per mode")
    parser.add_argument("--frames", type=int, default=4, help="frames of the animation")
    parser.add_argument("--animation", default="walk")
    parser.add_argument("--size", type=int, default=16, help="sprite side in pixels")
    parser.add_argument("--strength", type=float, default=0.5, help="img2img strength of rig-img2img and sheet")
    parser.add_argument("--prompt", default="knight with a blue cape, pixel art")
    parser.add_argument("--modes", default=",".join(MODES), help="comma-separated subset of " + ", ".join(MODES))
    args = parser.parse_args(argv)

    import torch

    from sparky_assets.generators.diffusion import DiffusionGenerator

    tiny = args.model is None
    if tiny:
        torch.set_num_threads(1)
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    if tiny:
        from tests.tiny_pipeline import save_tiny_controlnet, save_tiny_ip_adapter, save_tiny_pipeline

        model = save_tiny_pipeline(root / "tiny-sd")
        controlnet = str(save_tiny_controlnet(model, root / "tiny-controlnet")) if not args.controlnet else None
        adapter = str(save_tiny_ip_adapter(model, root / "tiny-ip-adapter")) if not args.ip_adapter else None
        model = str(model)
    else:
        model, controlnet, adapter = str(Path(args.model).resolve()), None, None
    controlnet = str(Path(args.controlnet).resolve()) if args.controlnet else controlnet
    adapter = str(Path(args.ip_adapter).resolve()) if args.ip_adapter else adapter
    # The requests' project root holds every model used (an IP-Adapter folder must lie inside it).
    root = Path(os.path.commonpath([str(root)] + [p for p in (model, controlnet, adapter) if p]))
    steps = args.steps or (2 if tiny else 20)
    guidance = args.guidance if args.guidance is not None else (1.5 if tiny else 7.5)
    palette = tuple(tuple(c) for c in BUILTIN_PALETTES["pico-8"].colors)
    palette_lab = srgb_to_oklab(np.array(palette, dtype=np.uint8))

    base = {"model": model, "steps": steps, "guidance": guidance, "pixelize": {"background": "auto"}}
    if args.render_size:
        base["render_size"] = args.render_size
    rig_rows = []
    for request in requests_for(args, root, dict(base), palette):
        rig = Rig(rig_request(request))
        frames = [rig.frame(spec) for spec in request.frames]
        silhouettes = [rig.render(f, "silhouette", args.size, args.size)[..., 0] == 255 for f in frames]
        rig_rows.append(([rig.sprite_rgba(f) for f in frames], silhouettes))

    print(
        f"model: {'tiny random-weight pipeline (CPU, 1 thread)' if tiny else model}; ControlNet: "
        f"{'tiny' if tiny and not args.controlnet else (controlnet or 'none')}; IP-Adapter: "
        f"{'tiny' if tiny and not args.ip_adapter else (adapter or 'none')} (scale {args.ip_adapter_scale}); {steps} steps, guidance {guidance}; "
        f"{args.sprites} sprites x {args.frames}-frame {args.animation}, {args.size}x{args.size} px; "
        f"rig/sheet strength {args.strength}"
    )
    header = f"{'mode':<18} {'palette hist dist':>17} {'OKLab drift':>11} {'silhouette IoU':>14} {'tracking':>9} {'s/frame':>8}"
    print(header)
    print("-" * len(header))

    def row(name: str, scores: list[dict], seconds: float | None) -> None:
        mean = {k: float(np.nanmean([s[k] for s in scores])) for k in scores[0]}
        timing = f"{seconds:>8.2f}" if seconds is not None else f"{'—':>8}"
        print(
            f"{name:<18} {mean['hist']:>17.3f} {mean['drift']:>11.2f} {mean['iou']:>14.3f} "
            f"{mean['tracking']:>+9.3f} {timing}"
        )

    row("rig (anchor)", [score(frames, masks, palette_lab) for frames, masks in rig_rows], None)
    row("static (anchor)", [score([f[0]] * len(f), m, palette_lab) for f, m in rig_rows], None)
    generator = DiffusionGenerator()
    for name in [m.strip() for m in args.modes.split(",") if m.strip()]:
        settings = (
            dict(base)
            | {"strength": args.strength}
            | {k: v for k, v in MODES[name].items() if k not in ("controlnet", "ip_adapter")}
        )
        if MODES[name].get("ip_adapter"):
            if not adapter:
                print(f"{name:<18} skipped: no --ip-adapter given")
                continue
            settings["ip_adapter"], settings["ip_adapter_scale"] = adapter, args.ip_adapter_scale
            if args.ip_adapter_weights:
                settings["ip_adapter_weights"] = args.ip_adapter_weights
        if MODES[name].get("controlnet"):
            if not controlnet:
                print(f"{name:<18} skipped: no --controlnet given")
                continue
            settings["controlnet"] = controlnet
            settings["conditioning"] = args.conditioning
        requests = requests_for(args, root, settings, palette)
        started = time.perf_counter()
        results = generator.generate(requests)
        seconds = (time.perf_counter() - started) / (len(requests) * args.frames)
        row(name, [score(frames, masks, palette_lab) for frames, (_, masks) in zip(results, rig_rows)], seconds)
    tmp.cleanup()


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
