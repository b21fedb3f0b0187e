"""Runs one peer pixelizer over a batch of bench images, inside that peer's own venv.

Called by bench/pixelize.py as ``<venv>/bin/python bench/pixelize_peers.py PEER JOBS.json``;
needs only numpy, Pillow and the peer. Each job: ``{"input", "output", "size": [w, h] |
null}``. Writes every output as an RGBA PNG and prints one JSON line per job with the
seconds the peer's call took (or the error it raised). Each peer is called the way its
README shows, with its default colour mode; with a size, through its own size/scale
option (unfake: an integer ``manual_scale``; proper-pixel-art: an integer
``pixel_width``; ai2pixelart: a fractional ``pitch``). Their palette options are not
used: unfake 1.0.7's ``fixed_palette`` and ai2pixelart 0.1.4's ``palette`` both turned a
whole sprite into one colour here, and the bench locks every output to the sprite's
palette anyway.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np
from PIL import Image


def run_unfake(image: Image.Image, size):
    import unfake

    kwargs = {"manual_scale": max(1, round(image.width / size[0]))} if size else {}
    result = unfake.process_image_sync(image.filename, **kwargs)
    return result["image"]


def run_ppa(image: Image.Image, size):
    from proper_pixel_art import PixelateConfig, pixelate

    config = PixelateConfig(pixel_width=max(1, round(image.width / size[0])) if size else None)
    return pixelate(image.convert("RGBA"), config=config).image


def run_ai2pixelart(image: Image.Image, size):
    from ai2pixelart import clean

    kwargs = {"pitch": (image.height / size[1], image.width / size[0])} if size else {}
    result = clean(np.asarray(image.convert("RGB")), **kwargs)
    return Image.fromarray(result.image)


PEERS = {"unfake": run_unfake, "proper-pixel-art": run_ppa, "ai2pixelart": run_ai2pixelart}


def main() -> None:
    peer, jobs_path = sys.argv[1], sys.argv[2]
    run = PEERS[peer]
    with open(jobs_path) as handle:
        jobs = json.load(handle)
    for job in jobs:
        image = Image.open(job["input"])
        image.load()
        started = time.perf_counter()
        try:
            out = run(image, job["size"])
            seconds = time.perf_counter() - started
            out.convert("RGBA").save(job["output"])
            print(json.dumps({"output": job["output"], "seconds": seconds}), flush=True)
        except Exception as exc:  # noqa: BLE001 - a peer's failure is a result, not a bench crash
            print(json.dumps({"output": job["output"], "error": f"{type(exc).__name__}: {exc}"}), flush=True)


if __name__ == "__main__":
    main()
