"""Generation benchmark: throughput and memory of the diffusion generator.

Default (CPU, tiny random-weight model, seconds): images/s and peak memory (RSS
growth sampled every 5 ms; torch allocations are invisible to tracemalloc) through
the real ``DiffusionGenerator`` for batch sizes 1, 4 and 16, 2 steps at 64×64, plus
the batched/one-by-one ratio. ``--consistency`` also measures how alike consecutive
animation frames are in the ``seed`` and ``img2img`` frame modes.

``--full-size``: the real Stable Diffusion 1.5 architecture (UNet 860M, VAE,
CLIP ViT-L text encoder) built from the config dicts below with random weights — no
download — to measure GPU throughput along an optimisation ladder, each step
reporting its gain over the previous one:

    fp32 batch 1 (naive attention) → bf16 → batching → channels_last → SDPA
    → torch.compile → CUDA graphs

then a sweep over steps (4/8/20) and batch sizes (1–16) at the best eager setting.
UNet FLOPs per step come from ``torch.utils.flop_counter.FlopCounterMode``; the UNet's
achieved TFLOP/s (timed alone, CUDA-synchronised) is printed as a fraction of the
GPU's dense bf16 peak (``--peak-tflops``, H200: 989). Runs in a few minutes on an
H200 (two compiles dominate; ``--no-compile`` skips them).

``--full-size --tiny-steps``: the same code path on CPU at 64×64 with 1 step and
batch ≤ 2, fp32 only — a smoke run that exercises everything but the GPU-only steps.
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# ---------------------------------------------------------------- SD 1.5 configs

SD15_UNET = dict(
    sample_size=64,
    in_channels=4,
    out_channels=4,
    center_input_sample=False,
    flip_sin_to_cos=True,
    freq_shift=0,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    mid_block_type="UNetMidBlock2DCrossAttn",
    up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    only_cross_attention=False,
    block_out_channels=(320, 640, 1280, 1280),
    layers_per_block=2,
    downsample_padding=1,
    mid_block_scale_factor=1,
    act_fn="silu",
    norm_num_groups=32,
    norm_eps=1e-5,
    cross_attention_dim=768,
    attention_head_dim=8,
    use_linear_projection=False,
)
SD15_VAE = dict(
    in_channels=3,
    out_channels=3,
    latent_channels=4,
    sample_size=512,
    norm_num_groups=32,
    layers_per_block=2,
    act_fn="silu",
    block_out_channels=(128, 256, 512, 512),
    down_block_types=("DownEncoderBlock2D",) * 4,
    up_block_types=("UpDecoderBlock2D",) * 4,
)
SD15_TEXT = dict(
    vocab_size=49408,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    projection_dim=768,
    bos_token_id=0,
    eos_token_id=1,
    pad_token_id=1,
)
PROMPT = "pixel art knight with a blue cape, side view, game sprite"


class PeakRSS:
    """Peak resident-set growth over a block, sampled every 5 ms from /proc."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()

    @staticmethod
    def rss() -> int:
        try:
            with open("/proc/self/statm") as handle:
                return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
        except OSError:  # not Linux
            import resource

            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def __enter__(self) -> PeakRSS:
        self.base = self.peak = self.rss()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(0.005):
            self.peak = max(self.peak, self.rss())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())

    @property
    def growth_mib(self) -> float:
        return (self.peak - self.base) / 2**20


# ---------------------------------------------------------------- tiny (CPU)


def bench_tiny(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    from sparky_assets.generators.base import FrameSpec, GenerationRequest
    from sparky_assets.generators.diffusion import DiffusionGenerator
    from tests.tiny_pipeline import save_tiny_pipeline

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        save_tiny_pipeline(root / "tiny-sd")
        generator = DiffusionGenerator()
        frames = tuple(FrameSpec("walk", i) for i in range(16))

        def request(batch_size: int, count: int, seed: int = 1, mode: str = "seed", **extra):
            return GenerationRequest(
                sprite="hero",
                width=16,
                height=16,
                frames=frames[:count],
                seed=seed,
                root=root,
                prompt=PROMPT,
                settings={
                    "model": "tiny-sd",
                    "steps": args.steps,
                    "guidance": 1.5,
                    "batch_size": batch_size,
                    "frames": mode,
                    "pixelize": {"background": "none"},
                    **extra,
                },
            )

        generator.generate([request(1, 1)])
        print(
            f"tiny SD pipeline, CPU, {torch.get_num_threads()} thread(s), 64x64, {args.steps} steps, "
            f"load {generator.last_stats['load_s']:.2f} s (first load in this process)"
        )
        print(f"{'batch':>5} {'images':>6} {'images/s':>9} {'s/image':>8} {'peak RSS +MiB':>14}")
        rates = {}
        for batch in (1, 4, 16):
            count = 16
            with PeakRSS() as memory:
                generator.generate([request(batch, count)])
            seconds = generator.last_stats["generate_s"]
            rates[batch] = count / seconds
            print(f"{batch:5d} {count:6d} {rates[batch]:9.2f} {seconds / count:8.3f} {memory.growth_mib:14.1f}")
        print(
            f"batched/one-by-one: batch 4 {rates[4] / rates[1]:.2f}x, batch 16 {rates[16] / rates[1]:.2f}x "
            f"(anchor: diffusers batch 1, 2 steps: 0.8 s/image)"
        )
        if args.consistency:
            import numpy as np

            print("frame consistency (mean |frame[i+1] - frame[i]| per channel, 0..255; lower = more alike):")
            for mode, strength in (("seed", None), ("img2img", 0.3), ("img2img", 0.55), ("img2img", 0.8)):
                differences = []
                for seed in range(args.consistency):
                    extra = {"strength": strength} if strength else {}
                    out = generator.generate([request(8, 6, seed=seed, mode=mode, **extra)])[0]
                    differences += [
                        np.abs(out[i + 1][..., :3].astype(int) - out[i][..., :3].astype(int)).mean()
                        for i in range(len(out) - 1)
                    ]
                label = mode if strength is None else f"{mode} strength {strength}"
                print(f"  {label:<22} {np.mean(differences):6.2f}  (n={len(differences)})")


# ---------------------------------------------------------------- full size (GPU)


def build_sd15(device: str, dtype):
    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

    from tests.tiny_pipeline import write_tokenizer_files

    torch.manual_seed(0)
    with torch.device(device):
        unet = UNet2DConditionModel(**SD15_UNET)
        vae = AutoencoderKL(**SD15_VAE)
        text_encoder = CLIPTextModel(CLIPTextConfig(**SD15_TEXT))
    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(Path(tmp))
        tokenizer = CLIPTokenizer(str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=77)
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", steps_offset=1
    )
    pipe = StableDiffusionPipeline(
        unet=unet,
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=tokenizer,
        scheduler=scheduler,
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


class Runner:
    def __init__(self, device: str, size: int, warmup: int):
        import torch

        self.torch = torch
        self.device = device
        self.size = size
        self.warmup = warmup

    def sync(self) -> None:
        if self.device.startswith("cuda"):
            self.torch.cuda.synchronize()

    def images_per_s(self, pipe, batch: int, steps: int, total: int) -> tuple[float, float]:
        """Pipeline throughput for ``total`` images in batches of ``batch`` (after
        ``warmup`` untimed calls), and peak GPU memory in GiB (0 on CPU)."""
        torch = self.torch
        kwargs = dict(
            num_inference_steps=steps, guidance_scale=7.0, height=self.size, width=self.size, output_type="np"
        )
        for _ in range(self.warmup):
            pipe([PROMPT] * batch, **kwargs)
        if self.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        self.sync()
        started = time.perf_counter()
        done = 0
        while done < total:
            generators = [torch.Generator(self.device).manual_seed(done + i) for i in range(batch)]
            pipe([PROMPT] * batch, generator=generators, **kwargs)
            done += batch
        self.sync()
        seconds = time.perf_counter() - started
        peak = torch.cuda.max_memory_allocated() / 2**30 if self.device.startswith("cuda") else 0.0
        return done / seconds, peak

    def unet_flops(self, pipe, batch: int) -> int:
        """FLOPs of one UNet call with classifier-free guidance (2 × batch)."""
        from torch.utils.flop_counter import FlopCounterMode

        sample, timestep, context = self._unet_inputs(pipe, batch)
        counter = FlopCounterMode(display=False)
        with counter, self.torch.inference_mode():
            pipe.unet(sample, timestep, encoder_hidden_states=context)
        return counter.get_total_flops()

    def unet_seconds(self, pipe, batch: int, calls: int) -> float:
        sample, timestep, context = self._unet_inputs(pipe, batch)
        with self.torch.inference_mode():
            for _ in range(max(1, self.warmup)):
                pipe.unet(sample, timestep, encoder_hidden_states=context)
            self.sync()
            started = time.perf_counter()
            for _ in range(calls):
                pipe.unet(sample, timestep, encoder_hidden_states=context)
            self.sync()
        return (time.perf_counter() - started) / calls

    def _unet_inputs(self, pipe, batch: int):
        torch = self.torch
        dtype = pipe.unet.dtype
        latent = self.size // 8
        generator = torch.Generator(self.device).manual_seed(0)
        sample = torch.randn((2 * batch, 4, latent, latent), generator=generator, device=self.device, dtype=dtype)
        if next(pipe.unet.parameters()).is_contiguous(memory_format=torch.channels_last):
            sample = sample.to(memory_format=torch.channels_last)
        context = torch.randn((2 * batch, 77, 768), generator=generator, device=self.device, dtype=dtype)
        timestep = torch.tensor(500, device=self.device)
        return sample, timestep, context


def bench_full_size(args) -> None:
    import torch
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    cuda = torch.cuda.is_available() and not args.tiny_steps
    device = "cuda" if cuda else "cpu"
    if not cuda:
        torch.set_num_threads(args.threads)
    size = 64 if args.tiny_steps else args.size
    steps = 1 if args.tiny_steps else args.ladder_steps
    big_batch = 2 if args.tiny_steps else args.batch
    total = 2 if args.tiny_steps else args.images
    runner = Runner(device, size, warmup=0 if args.tiny_steps else 1)
    name = torch.cuda.get_device_name() if cuda else "CPU"
    print(
        f"SD 1.5 architecture, random weights, {name}, {size}x{size}, Euler, ladder at {steps} steps, "
        f"{total} images per measurement; peak = {args.peak_tflops:g} TFLOP/s dense bf16"
    )
    if not cuda and not args.tiny_steps:
        print("no CUDA device: use --tiny-steps for the CPU smoke run")
        return

    fast = torch.bfloat16 if cuda else torch.float32
    pipe = build_sd15(device, torch.float32)
    pipe.unet.set_attn_processor(AttnProcessor())
    pipe.vae.set_attn_processor(AttnProcessor())
    flops_per_image_step = runner.unet_flops(pipe, 1)
    print(f"UNet FLOPs per image per step (CFG, 2 UNet samples): {flops_per_image_step / 1e12:.3f} TFLOP")

    rows: list[tuple[str, float, float, int]] = []

    def measure(label: str, batch: int) -> None:
        rate, peak = runner.images_per_s(pipe, batch, steps, max(total, batch))
        unet_s = runner.unet_seconds(pipe, batch, calls=1 if args.tiny_steps else 10)
        tflops = flops_per_image_step * batch / unet_s / 1e12
        previous = rows[-1][1] if rows else rate
        rows.append((label, rate, tflops, batch))
        print(
            f"  {label:<34} batch {batch:2d}: {rate:8.2f} images/s  x{rate / previous:5.2f} vs previous   "
            f"UNet {tflops:8.3f} TFLOP/s = {tflops / args.peak_tflops:7.2%} of peak   peak mem {peak:5.1f} GiB"
        )

    print("optimisation ladder:")
    measure("fp32, naive attention", 1)
    if cuda:
        pipe.to(dtype=fast)
        measure("bf16", 1)
    measure("+ batching", big_batch)
    pipe.unet.to(memory_format=torch.channels_last)
    pipe.vae.to(memory_format=torch.channels_last)
    measure("+ channels_last", big_batch)
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.vae.set_attn_processor(AttnProcessor2_0())
    measure("+ SDPA (flash/efficient attention)", big_batch)

    if not args.no_compile and (cuda or args.compile_on_cpu):
        eager_unet = pipe.unet
        started = time.perf_counter()
        pipe.unet = torch.compile(
            eager_unet, mode="max-autotune-no-cudagraphs" if args.autotune else "default", fullgraph=True
        )
        runner.images_per_s(pipe, big_batch, steps, big_batch)
        print(f"  (torch.compile warm-up {time.perf_counter() - started:.0f} s)")
        measure("+ torch.compile", big_batch)
        if cuda:
            torch._dynamo.reset()
            started = time.perf_counter()
            pipe.unet = torch.compile(eager_unet, mode="reduce-overhead", fullgraph=True)
            runner.images_per_s(pipe, big_batch, steps, big_batch)
            print(f"  (CUDA graphs warm-up {time.perf_counter() - started:.0f} s)")
            measure("+ CUDA graphs (reduce-overhead)", big_batch)
        pipe.unet = eager_unet
        torch._dynamo.reset()
    print(f"ladder total: x{rows[-1][1] / rows[0][1]:.1f} images/s over the fp32 batch-1 baseline")

    print("sweep (eager bf16 + channels_last + SDPA):" if cuda else "sweep (eager fp32):")
    sweep_steps = (1,) if args.tiny_steps else (4, 8, 20)
    sweep_batches = (1, 2) if args.tiny_steps else (1, 4, 8, 16)
    for sweep_step in sweep_steps:
        single = None
        for batch in sweep_batches:
            rate, peak = runner.images_per_s(pipe, batch, sweep_step, max(batch, total if sweep_step < 20 else batch))
            single = single or rate
            print(
                f"  {sweep_step:2d} steps batch {batch:2d}: {rate:8.2f} images/s   batched/one-by-one x{rate / single:4.2f}"
                f"   peak mem {peak:5.1f} GiB"
            )
    pipe = None  # release the pipeline before the next section
    gc.collect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--full-size", action="store_true", help="SD 1.5 architecture (GPU ladder)")
    parser.add_argument("--tiny-steps", action="store_true", help="with --full-size: CPU smoke run, 64x64, 1 step")
    parser.add_argument("--steps", type=int, default=2, help="tiny mode: denoising steps")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (tiny mode / CPU smoke)")
    parser.add_argument(
        "--consistency",
        type=int,
        default=0,
        metavar="SEEDS",
        help="tiny mode: also measure frame consistency of the frame modes over SEEDS sprites",
    )
    parser.add_argument("--size", type=int, default=512, help="full size: render resolution")
    parser.add_argument("--ladder-steps", type=int, default=8)
    parser.add_argument("--batch", type=int, default=8, help="full size: batch for the batched ladder steps")
    parser.add_argument("--images", type=int, default=16, help="full size: images per measurement")
    parser.add_argument("--peak-tflops", type=float, default=989.0, help="dense bf16 peak (H200/H100 SXM: 989)")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile and CUDA graphs")
    parser.add_argument("--autotune", action="store_true", help="torch.compile with max-autotune (slower warm-up)")
    parser.add_argument("--compile-on-cpu", action="store_true", help="with --tiny-steps: also run torch.compile")
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if args.full_size:
        bench_full_size(args)
    else:
        bench_tiny(args)


if __name__ == "__main__":
    main()
