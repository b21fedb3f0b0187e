"""The procedural generator: determinism, frame contract, silhouettes, colours, validation."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from sparky_assets.generators.base import FrameSpec, GenerationRequest, Generator
from sparky_assets.generators.procedural import (
    ALGORITHM_VERSION,
    STYLES,
    ProceduralGenerator,
    _largest_component,
)
from sparky_assets.palettes.builtin import BUILTIN_PALETTES
from sparky_assets.reads import ReadContext

GENERATOR = ProceduralGenerator()
SPRITE_STYLES = [s for s in STYLES if s != "tile"]
ANIMATIONS = {"idle": 4, "walk": 6, "run": 4, "jump": 5, "attack": 3, "die": 4}


def request(
    sprite: str = "hero",
    *,
    size: tuple[int, int] = (32, 32),
    seed: int = 1234,
    style: str | None = None,
    animations: dict[str, int] | None = None,
    palette: tuple[tuple[int, int, int], ...] = (),
    prompt: str | None = None,
) -> GenerationRequest:
    animations = animations if animations is not None else {"idle": 4, "walk": 6}
    frames = tuple(FrameSpec(name, i) for name, n in animations.items() for i in range(n))
    options = {} if style is None else {"style": style}
    return GenerationRequest(
        sprite=sprite,
        width=size[0],
        height=size[1],
        frames=frames,
        seed=seed,
        root=Path("."),
        prompt=prompt,
        palette=palette,
        options=options,
    )


def generate(req: GenerationRequest) -> list[np.ndarray]:
    (frames,) = GENERATOR.generate([req])
    return frames


def frames_of(req: GenerationRequest, frames: list[np.ndarray], animation: str) -> list[np.ndarray]:
    return [f for f, spec in zip(frames, req.frames) if spec.animation == animation]


def edge_pixels(frame: np.ndarray) -> np.ndarray:
    """Opaque pixels with a transparent 4-neighbour (the image edge counts as transparent)."""
    opaque = frame[..., 3] == 255
    padded = np.pad(opaque, 1)
    enclosed = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return opaque & ~enclosed


# --------------------------------------------------------------------------- contract


def test_implements_the_generator_protocol():
    assert isinstance(GENERATOR, Generator)
    assert ProceduralGenerator.name == "procedural"
    assert ProceduralGenerator.uses_palette and ProceduralGenerator.needs_lock
    reads = ReadContext()
    GENERATOR.cache_key(request(), reads)
    assert reads.record == {}  # reads no file


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("size", [(4, 4), (7, 5), (16, 16), (24, 40), (64, 64), (100, 37), (257, 130)])
def test_every_frame_is_rgba_uint8_of_the_requested_size_with_binary_alpha(style, size):
    req = request(size=size, style=style, animations=ANIMATIONS)
    frames = generate(req)
    assert len(frames) == len(req.frames)
    for frame in frames:
        assert frame.shape == (size[1], size[0], 4)
        assert frame.dtype == np.uint8
        assert set(np.unique(frame[..., 3]).tolist()) <= {0, 255}
        assert (frame[..., 3] == 255).any(), "a frame must never be empty"
        # transparent pixels carry no stray colour
        assert not frame[frame[..., 3] == 0][:, :3].any()


def test_a_batch_returns_frames_per_request_in_order():
    reqs = [request("a"), request("b", size=(16, 24)), request("c", style="tile")]
    results = GENERATOR.generate(reqs)
    assert [len(r) for r in results] == [len(r.frames) for r in reqs]
    assert results[1][0].shape == (24, 16, 4)
    assert GENERATOR.generate([]) == []


def test_frame_zero_of_every_animation_is_the_base_sprite():
    req = request(animations=ANIMATIONS)
    frames = generate(req)
    firsts = [f for f, spec in zip(frames, req.frames) if spec.index == 0]
    for frame in firsts[1:]:
        assert np.array_equal(frame, firsts[0])


def test_returned_frames_do_not_share_memory():
    frames = generate(request(animations={"idle": 2, "walk": 2}))
    frames[0][:] = 0
    assert frames[2].any(), "mutating one frame must not change another"


# --------------------------------------------------------------------------- determinism


def test_same_request_gives_byte_identical_frames():
    first = generate(request(animations=ANIMATIONS))
    second = generate(request(animations=ANIMATIONS))
    assert [f.tobytes() for f in first] == [f.tobytes() for f in second]


def test_golden_digest_pins_the_algorithm(tmp_path):
    """A change to the output must bump ALGORITHM_VERSION (it is in the cache key)."""
    import hashlib

    digest = hashlib.sha256()
    endesga = BUILTIN_PALETTES["endesga-32"].colors
    for style in STYLES:
        for size, palette in (((32, 32), ()), ((64, 48), endesga), ((130, 130), ())):
            req = request(style=style, size=size, palette=palette, animations={"idle": 4, "walk": 2, "jump": 3})
            for frame in generate(req):
                digest.update(frame.tobytes())
    assert (ALGORITHM_VERSION, digest.hexdigest()[:16]) == (1, GOLDEN_DIGEST)


GOLDEN_DIGEST = "cc458fb850c22ae9"


def test_another_seed_or_name_gives_a_different_sprite():
    base = generate(request())[0]
    assert not np.array_equal(base, generate(request(seed=1235))[0])
    assert not np.array_equal(base, generate(request("villain"))[0])


def test_many_names_give_many_different_silhouettes():
    silhouettes = {generate(request(f"mob{i}", animations={"idle": 1}))[0][..., 3].tobytes() for i in range(20)}
    assert len(silhouettes) == 20


# --------------------------------------------------------------------------- look


@pytest.mark.parametrize("style", SPRITE_STYLES)
@pytest.mark.parametrize("size", [(8, 8), (16, 16), (32, 32), (31, 20), (96, 96), (101, 64)])
def test_base_frame_silhouette_is_mirror_symmetric(style, size):
    for seed in range(4):
        alpha = generate(request(size=size, seed=seed, style=style, animations={"idle": 1}))[0][..., 3]
        assert np.array_equal(alpha, alpha[:, ::-1]), f"seed {seed}"


@pytest.mark.parametrize("style", SPRITE_STYLES)
def test_every_edge_pixel_of_every_frame_is_the_outline_colour(style):
    for seed in range(5):
        req = request(seed=seed, style=style, animations=ANIMATIONS)
        frames = generate(req)
        outline_colours = set()
        for frame, spec in zip(frames, req.frames):
            edge = edge_pixels(frame)
            assert edge.any()
            colours = {tuple(c) for c in frame[edge][:, :3]}
            assert len(colours) == 1, f"seed {seed} {spec}: edge colours {colours}"
            outline_colours |= colours
        assert len(outline_colours) == 1
        # the outline is darker than the sprite's average colour
        frame = frames[0]
        outline = np.array(next(iter(outline_colours)), dtype=float)
        inside = frame[(frame[..., 3] == 255) & ~edge_pixels(frame)][:, :3].astype(float)
        assert outline.sum() < inside.sum(axis=1).mean()


@pytest.mark.parametrize("style", SPRITE_STYLES)
def test_sprites_are_shaded_with_light_from_the_top_left(style):
    """Mean brightness of the interior's top-left half beats its bottom-right half."""
    wins = 0
    for seed in range(10):
        frame = generate(request(seed=seed, style=style, animations={"idle": 1}))[0]
        inside = (frame[..., 3] == 255) & ~edge_pixels(frame)
        ys, xs = np.nonzero(inside)
        luma = frame[ys, xs, :3].astype(float) @ [0.299, 0.587, 0.114]
        diagonal = (ys - ys.mean()) + (xs - xs.mean())
        wins += luma[diagonal < 0].mean() > luma[diagonal > 0].mean()
        assert len({tuple(c) for c in frame[inside][:, :3]}) >= 4, "several tones, not flat fill"
    assert wins >= 9


def test_tiles_fill_the_cell_and_wrap_seamlessly():
    for seed in range(6):
        frame = generate(request(seed=seed, style="tile", animations={"idle": 1}))[0]
        assert (frame[..., 3] == 255).all()
        # seam check: the wrap-around edge is no more different than an inner row/column pair
        rgb = frame[..., :3].astype(int)
        seam = np.abs(rgb[0] - rgb[-1]).sum() + np.abs(rgb[:, 0] - rgb[:, -1]).sum()
        inner = np.abs(rgb[15] - rgb[16]).sum() + np.abs(rgb[:, 15] - rgb[:, 16]).sum()
        assert seam <= 2.5 * max(inner, 1), f"seed {seed}"


def test_colours_come_from_the_palette_when_given():
    for name in ("endesga-32", "pico-8", "gameboy", "1bit"):
        palette = BUILTIN_PALETTES[name].colors
        allowed = set(palette)
        for style in STYLES:
            for seed in range(3):
                req = request(seed=seed, style=style, palette=palette, animations=ANIMATIONS)
                for frame in generate(req):
                    used = {tuple(c) for c in frame[frame[..., 3] == 255][:, :3].tolist()}
                    assert used <= allowed, f"{name} {style}: {used - allowed}"


def test_one_bit_palette_gives_black_outline_and_white_body():
    frame = generate(request(palette=BUILTIN_PALETTES["1bit"].colors, animations={"idle": 1}))[0]
    assert {tuple(c) for c in frame[edge_pixels(frame)][:, :3]} == {(0, 0, 0)}
    assert (0, 0, 0) in {tuple(c) for c in frame[frame[..., 3] == 255][:, :3]}
    assert (255, 255, 255) in {tuple(c) for c in frame[frame[..., 3] == 255][:, :3]}


def test_prompt_colour_words_steer_the_main_hue():
    def mean_hue_vector(prompt: str) -> np.ndarray:
        vectors = []
        for seed in range(6):
            frame = generate(request(seed=seed, prompt=prompt, animations={"idle": 1}))[0]
            rgb = frame[frame[..., 3] == 255][:, :3].astype(float)
            vectors.append(rgb.mean(axis=0))
        return np.mean(vectors, axis=0)

    blue = mean_hue_vector("a blue slime")
    red = mean_hue_vector("a red slime")
    assert blue[2] > blue[0] and red[0] > red[2]


# --------------------------------------------------------------------------- animation


def test_walk_frames_differ_from_the_base_and_from_their_neighbours():
    for style in ("creature", "character"):
        for n in (2, 4, 6, 8):
            req = request(style=style, animations={"walk": n})
            walk = generate(req)
            for i in range(1, n):
                assert not np.array_equal(walk[i], walk[0]), f"{style} walk {i}/{n} equals frame 0"
                assert not np.array_equal(walk[i], walk[i - 1]), f"{style} walk {i}/{n} equals {i - 1}"


def test_walk_moves_the_legs_and_keeps_the_head_still_on_the_passing_frame():
    req = request(style="character", animations={"walk": 4})
    walk = generate(req)
    changed = [np.any(frame != walk[0], axis=2) for frame in walk[1:]]
    assert all(c[20:].any() for c in changed), "every walk frame moves the legs"
    assert any(not c[:10].any() for c in changed), "the spread frame leaves the head alone"


def test_idle_bobs_at_most_one_pixel():
    req = request(style="creature", animations={"idle": 4})
    idle = generate(req)

    def top_row(frame):
        return int(np.nonzero((frame[..., 3] == 255).any(axis=1))[0][0])

    tops = [top_row(f) for f in idle]
    assert max(tops) - min(tops) <= 1
    assert any(not np.array_equal(f, idle[0]) for f in idle[1:])


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("animation", ["idle", "walk", "run", "jump", "attack", "hurt"])
def test_every_animation_varies(style, animation):
    req = request(style=style, animations={animation: 4})
    frames = generate(req)
    assert any(not np.array_equal(f, frames[0]) for f in frames[1:])


def test_large_sprites_scale_the_cell_grid():
    frame = generate(request(size=(256, 256), animations={"idle": 1}))[0]
    # every 4x4 block is one colour: the 64-cell grid upscaled 4x
    blocks = frame.reshape(64, 4, 64, 4, 4)
    assert (blocks == blocks[:, :1, :, :1, :]).all()


# --------------------------------------------------------------------------- validation / cache


def test_validate_accepts_good_requests():
    for style in STYLES:
        assert GENERATOR.validate(request(style=style)) == []
    assert GENERATOR.validate(request()) == []  # default style


def test_validate_rejects_unknown_style_with_choices_and_suggestion():
    (problem,) = GENERATOR.validate(request(style="charcter"))
    assert problem.sprite == "hero"
    assert problem.key == "style"
    assert problem.stage == "generate"
    assert problem.found == "'charcter'"
    assert problem.expected == "one of " + ", ".join(STYLES)
    assert problem.hint == "did you mean 'character'?"


def test_validate_rejects_sizes_outside_4_to_4096_and_non_string_styles():
    problems = GENERATOR.validate(request(size=(3, 5000)))
    assert [p.message for p in problems] == [
        "sprite width out of range for the procedural generator",
        "sprite height out of range for the procedural generator",
    ]
    assert problems[0].expected == "an integer 4..4096"
    (problem,) = GENERATOR.validate(request(style=7))  # type: ignore[arg-type]
    assert problem.found == "7" and problem.hint is None


def test_generate_refuses_an_invalid_request():
    from sparky_assets.errors import InvalidInput

    with pytest.raises(InvalidInput) as excinfo:
        GENERATOR.generate([request(style="blob")])
    assert "unknown procedural style 'blob'" in str(excinfo.value)


def test_cache_key_is_json_and_changes_with_everything_that_matters():
    base = GENERATOR.cache_key(request())
    json.dumps(base)
    assert base["algorithm"] == ALGORITHM_VERSION
    variants = [
        request(seed=1),
        request("other"),
        request(size=(32, 33)),
        request(style="item"),
        request(animations={"idle": 4, "walk": 5}),
        request(palette=BUILTIN_PALETTES["pico-8"].colors),
        request(prompt="a green frog"),
    ]
    keys = [json.dumps(GENERATOR.cache_key(v), sort_keys=True) for v in variants]
    assert json.dumps(base, sort_keys=True) not in keys
    assert len(set(keys)) == len(keys)
    # a prompt without colour words does not change the output, nor the key
    assert GENERATOR.cache_key(request(prompt="a frog")) == base


def test_largest_component_keeps_the_biggest_4_connected_part():
    mask = np.array(
        [
            [1, 1, 0, 1],
            [0, 1, 0, 1],
            [1, 0, 0, 1],
            [1, 0, 1, 1],
        ],
        dtype=bool,
    )
    expected = np.zeros_like(mask)
    expected[:, 3] = True
    expected[3, 2] = True
    assert np.array_equal(_largest_component(mask), expected)
