#!/usr/bin/env python3
"""PyTorch CUDA peer of bench/cuda.bench.ts and native/src/bench_main.cc (bench/gpu/run-on-gpu.sh runs it too).

The same work as grpo-roc's fused pass, the way an eager PyTorch training step does it: token log-probs
log_softmax(logits).gather(tokens), the GRPO-RoC policy loss on them (PPO clip, clip-low 0.2 / clip-high 0.28,
token-mean over the mask, advantages +1/-1 by row, an old policy within ±0.4 of the current one, so that many
ratios are clipped), then loss.backward() into the logits. Logits [rows, cols, vocab] (default [4, 4096, 151936]) already in GPU memory,
float32 or bfloat16, from torch's own RNG (randn * 2): timing does not depend on the values.

Variants:
  float32   "eager"          log_softmax in float32.
  bfloat16  "eager"          log_softmax on the bfloat16 logits (accumulates in float32 inside, returns bfloat16
                             log-probs: what a bf16 model's logits get without an explicit upcast; TRL's and verl's
                             row-by-row bf16 paths compute the same values).
  bfloat16  "eager-upcast"   logits.float() first (the precise way, at twice the memory).

Timing: CUDA events around each step (after torch.cuda.synchronize()), warm-up runs first; peak memory from
torch.cuda.max_memory_allocated() after reset_peak_memory_stats(), reported as the rise over what the step starts
with (the logits and the small inputs), less the gradient itself (which the step must produce): the same meaning as
grpo-roc's "peak extra". Errors: on the same six positions as grpo-roc's bench, log-probs and gradient rows against
float64 (the gradient from the step's own dloss/dlogp; for bfloat16 against the float64 value rounded to bfloat16).

Usage: python3 bench/peer_torch_cuda.py --dtype float32|bfloat16 [--rows 4 --cols 4096 --vocab 151936
       --iterations 10 --warmup 2 --seed 1] [--json FILE]
       --device cpu runs the same code on the CPU (wall-clock timing, no memory figures): a smoke test of this
       script on machines without a GPU, never a measurement to report.
Exit status: 0 measured; 2 not measured (no torch, no CUDA device: the reason goes to stderr and the JSON file).
"""
import argparse
import json
import platform
import sys
import time


def emit(report, path):
    text = json.dumps(report, indent=2)
    if path:
        with open(path, "w") as f:
            f.write(text + "\n")
    print(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32")
    ap.add_argument("--rows", type=int, default=4)
    ap.add_argument("--cols", type=int, default=4096)
    ap.add_argument("--vocab", type=int, default=151936)
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", default=None)
    ap.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    args = ap.parse_args()
    base = {
        "tool": "peer_torch_cuda",
        "dtype": args.dtype,
        "shape": [args.rows, args.cols, args.vocab],
        "python": platform.python_version(),
    }

    def not_measured(reason):
        print(f"peer_torch_cuda: not measured: {reason}", file=sys.stderr)
        emit({**base, "ok": False, "reason": reason}, args.json)
        sys.exit(2)

    try:
        import torch
    except Exception as error:  # noqa: BLE001 - any import failure means no peer
        not_measured(f"PyTorch is not importable: {error}")
    base["torch"] = torch.__version__
    base["torchCuda"] = torch.version.cuda
    cuda = args.device == "cuda"
    if cuda and not torch.cuda.is_available():
        not_measured(f"torch.cuda.is_available() is False (torch {torch.__version__}, built for CUDA {torch.version.cuda})")

    dev = torch.device(args.device)
    B, T, V = args.rows, args.cols, args.vocab
    P = B * T
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[args.dtype]
    if cuda:
        props = torch.cuda.get_device_properties(dev)
        base["device"] = f"{props.name} (sm_{props.major}{props.minor})"
    else:
        base["device"] = "cpu (smoke test only: not a measurement)"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    class Timer:
        """CUDA events on the GPU; perf_counter on the CPU (smoke test)."""

        def __enter__(self):
            if cuda:
                self.start = torch.cuda.Event(enable_timing=True)
                self.stop = torch.cuda.Event(enable_timing=True)
                self.start.record()
            else:
                self.t0 = time.perf_counter()
            return self

        def __exit__(self, *exc):
            if cuda:
                self.stop.record()
                self.stop.synchronize()
                self.ms = self.start.elapsed_time(self.stop)
            else:
                self.ms = (time.perf_counter() - self.t0) * 1e3

    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    # Row by row, so that a float32 temporary never holds more than one row of the batch.
    logits = torch.empty(B, T, V, device=dev, dtype=dtype)
    for b in range(B):
        logits[b] = (torch.randn(T, V, device=dev, generator=gen) * 2).to(dtype)
    logits.requires_grad_(True)
    tokens = torch.randint(0, V, (B, T), device=dev, generator=gen)
    advantages = torch.tensor([1.0 if b % 2 == 0 else -1.0 for b in range(B)], device=dev)[:, None].expand(B, T)
    mask = torch.ones(B, T, device=dev)
    low, high = 0.8, 1.28

    def token_logp(upcast):
        z = logits.float() if upcast else logits
        return torch.log_softmax(z, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1).float()

    with torch.no_grad():
        old = token_logp(False) + 0.8 * (torch.rand(B, T, device=dev, generator=gen) - 0.5)

    def step(upcast):
        logp = token_logp(upcast)
        logp.retain_grad()
        ratio = torch.exp(logp - old)
        unclipped = -advantages * ratio
        clipped = -advantages * torch.clamp(ratio, low, high)
        loss = (torch.maximum(unclipped, clipped) * mask).sum() / mask.sum()
        loss.backward()
        return logp

    variants = [("eager", False)] if args.dtype == "float32" else [("eager", False), ("eager-upcast", True)]
    grad_bytes = logits.numel() * logits.element_size()
    checks = [0, 1, P // 3, P // 2, P - 2, P - 1]
    results = []
    for name, upcast in variants:
        times = []
        peak_extra = 0
        peak_total = 0
        logp = None
        for k in range(args.warmup + args.iterations):
            logits.grad = None
            sync()
            if cuda:
                torch.cuda.reset_peak_memory_stats(dev)
                start_bytes = torch.cuda.memory_allocated(dev)
            with Timer() as timer:
                logp = step(upcast)
            if k >= args.warmup:
                times.append(timer.ms)
            if cuda:
                peak = torch.cuda.max_memory_allocated(dev)
                peak_total = max(peak_total, peak)
                peak_extra = max(peak_extra, peak - start_bytes - grad_bytes)

        # Errors on the last step's results, against float64.
        with torch.no_grad():
            idx = torch.tensor(checks, device=dev)
            rows = logits.detach().reshape(P, V)[idx].double()
            tok = tokens.reshape(P)[idx]
            lse = torch.logsumexp(rows, dim=-1)
            logp64 = rows.gather(-1, tok[:, None]).squeeze(-1) - lse
            err_logp = (logp.detach().reshape(P)[idx].double() - logp64).abs().max().item()
            g = logp.grad.reshape(P)[idx].double()
            onehot = torch.zeros_like(rows).scatter_(-1, tok[:, None], 1.0)
            expected = g[:, None] * (onehot - torch.exp(rows - lse[:, None]))
            if dtype == torch.bfloat16:
                expected = expected.to(torch.bfloat16).double()
            err_grad = (logits.grad.reshape(P, V)[idx].double() - expected).abs().max().item()
        results.append(
            {
                "name": name,
                "upcast": upcast,
                "ms": sum(times) / len(times),
                "minMs": min(times),
                "peakExtraBytes": peak_extra if cuda else None,
                "peakBytes": peak_total if cuda else None,
                "logitsBytes": grad_bytes,
                "maxAbsErrLogp": err_logp,
                "maxAbsErrGrad": err_grad,
                "checkedPositions": len(checks),
            }
        )
        logits.grad = None
        if cuda:
            torch.cuda.empty_cache()

    emit({**base, "ok": cuda, **({} if cuda else {"reason": "--device cpu: a smoke test, not a measurement"}), "iterations": args.iterations, "warmup": args.warmup, "variants": results}, args.json)


if __name__ == "__main__":
    main()
