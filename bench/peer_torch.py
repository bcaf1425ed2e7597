#!/usr/bin/env python3
"""PyTorch peer for bench/loss.bench.ts: the same computations as the library's policyLoss and
tokenLogProbs / tokenLogProbsBackward, the way verl computes them, on CPU.

- Policy loss: verl's compute_policy_loss_vanilla (log-ratio clamp, clip-higher, dual clip, its three metrics)
  with agg_loss "token-mean", then .backward() for the gradient with respect to log_prob. Inputs come from the
  bench (binary files), so both sides see the same values; advantages are expanded to [B, T] as verl holds them.
- Token log-probs: log_softmax(logits, -1).gather(-1, tokens) forward (under no_grad, as for old/ref log-probs)
  and forward + backward (grad enabled, .backward(grad_logp)); the config can leave forward + backward out. With
  "reused" (bench:wasm), the same again into preallocated buffers every call: torch._log_softmax(..., out=) and
  torch.gather(..., out=) forward, and the backward written into a reused gradient buffer as
  grad = onehot·g − g·softmax (torch.exp(log_softmax, out=), mul_, scatter_add_): the cost without allocation.
  The 524 MB logits come from torch's own RNG
  (randn * 3, seed 0), not the bench's generator: timing does not depend on the values. Tokens and grad_logp
  follow the same closed formulas as the bench, so those are identical.

Usage: /usr/bin/python3 peer_torch.py CONFIG.json. CONFIG names the input files, the run counts, the thread count
and a folder for the outputs the bench checks (gradients, small log-prob results). One JSON report goes to stdout.
Peak memory per section: the kernel's RSS high-water mark (VmHWM) after resetting it through
/proc/self/clear_refs, falling back to a 2 ms sampling thread where that is not allowed; ru_maxrss overall.
"""
import json
import os
import platform
import resource
import statistics
import sys
import threading
import time

import numpy as np
import torch

MB = 2**20


# ── memory ──────────────────────────────────────────────────────────────────────────────────────────────────

def status_kb(field):
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_hwm():
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


class Sampler:
    """Samples RSS every 2 ms on a thread (torch's kernels release the GIL, so it runs during them)."""

    def __init__(self):
        self.peak_kb = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            self.peak_kb = max(self.peak_kb, status_kb("VmRSS"))
            time.sleep(0.002)

    def reset(self):
        self.peak_kb = status_kb("VmRSS")

    def stop(self):
        self._stop.set()
        self._thread.join()


class Section:
    """Peak RSS of a stretch of work and its rise over the RSS at its start."""

    def __init__(self, sampler):
        self.sampler = sampler

    def __enter__(self):
        self.baseline_kb = status_kb("VmRSS")
        self.hwm_reset = reset_hwm()
        self.sampler.reset()
        return self

    def __exit__(self, *exc):
        sampled = self.sampler.peak_kb
        hwm = status_kb("VmHWM") if self.hwm_reset else 0
        self.peak_kb = max(hwm, sampled, status_kb("VmRSS"))
        self.figures = {
            "baseline_rss_mb": self.baseline_kb / 1024,
            "peak_rss_mb": self.peak_kb / 1024,
            "sampled_peak_rss_mb": sampled / 1024,
            "method": "VmHWM after clear_refs" if self.hwm_reset else "sampling every 2 ms",
        }
        return False


def timed(fn, warmup, runs, between=None):
    result = None
    for _ in range(warmup):
        result = fn()
        if between is not None:
            between(result)
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        result = fn()
        samples.append((time.perf_counter() - start) * 1000)
        if between is not None and _ < runs - 1:
            between(result)
    return {"median_ms": statistics.median(samples), "min_ms": min(samples), "runs": runs, "samples_ms": samples}, result


# ── policy loss: verl's compute_policy_loss_vanilla + agg_loss token-mean ──────────────────────────────────

def masked_mean(values, mask):
    return (values * mask).sum() / (mask.sum() + 1e-8)


def verl_vanilla(log_prob, old_log_prob, advantages, response_mask, clip_low, clip_high, clip_ratio_c, clamp):
    negative_approx_kl = log_prob - old_log_prob
    negative_approx_kl = torch.clamp(negative_approx_kl, min=-clamp, max=clamp)
    ratio = torch.exp(negative_approx_kl)
    ppo_kl = masked_mean(-negative_approx_kl, response_mask)

    pg_losses1 = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1 - clip_low, 1 + clip_high)
    clip_pg_losses1 = torch.maximum(pg_losses1, pg_losses2)
    pg_clipfrac = masked_mean(torch.gt(pg_losses2, pg_losses1).float(), response_mask)

    pg_losses3 = -advantages * clip_ratio_c
    clip_pg_losses2 = torch.min(pg_losses3, clip_pg_losses1)
    pg_clipfrac_lower = masked_mean(torch.gt(clip_pg_losses1, pg_losses3) * (advantages < 0).float(), response_mask)

    pg_losses = torch.where(advantages < 0, clip_pg_losses2, clip_pg_losses1)
    # agg_loss "token-mean": sum(where(mask, L, 0) * mask) / sum(mask) * dp_size (dp_size 1).
    masked = torch.where(response_mask.bool(), pg_losses, torch.zeros_like(pg_losses))
    pg_loss = (masked * response_mask).sum() / response_mask.sum()
    return pg_loss, pg_clipfrac, ppo_kl, pg_clipfrac_lower


def read_loss_case(case):
    rows, cols = case["rows"], case["cols"]
    n = rows * cols
    raw = np.fromfile(case["file"], dtype=np.uint8)
    offset = 0

    def take(dtype, count):
        nonlocal offset
        size = np.dtype(dtype).itemsize * count
        out = raw[offset:offset + size].view(dtype).copy()
        offset += size
        return out

    logp = take(np.float64, n).reshape(rows, cols)
    old = take(np.float64, n).reshape(rows, cols)
    adv = take(np.float64, rows)
    mask = take(np.uint8, n).reshape(rows, cols)
    return logp, old, adv, mask


def loss_section(case, dtype_name, options, sampler, out_dir):
    dtype = {"float64": torch.float64, "float32": torch.float32}[dtype_name]
    logp_np, old_np, adv_np, mask_np = read_loss_case(case)
    log_prob = torch.from_numpy(logp_np).to(dtype).requires_grad_(True)
    old_log_prob = torch.from_numpy(old_np).to(dtype)
    advantages = torch.from_numpy(adv_np).to(dtype)[:, None].expand(case["rows"], case["cols"]).contiguous()
    response_mask = torch.from_numpy(mask_np).to(dtype)
    del logp_np, old_np, adv_np, mask_np
    clip_low, clip_high = options["clipLow"], options["clipHigh"]
    clip_c = options["dualClip"]
    clamp = options["logRatioClamp"][1]

    def step():
        log_prob.grad = None
        pg_loss, clipfrac, ppo_kl, clipfrac_lower = verl_vanilla(
            log_prob, old_log_prob, advantages, response_mask, clip_low, clip_high, clip_c, clamp)
        pg_loss.backward()
        return pg_loss, clipfrac, ppo_kl, clipfrac_lower

    with Section(sampler) as section:
        timing, (pg_loss, clipfrac, ppo_kl, clipfrac_lower) = timed(step, case["warmup"], case["runs"])
    grad_file = os.path.join(out_dir, f"grad_{case['name']}_{dtype_name}.f64")
    log_prob.grad.detach().to(torch.float64).numpy().tofile(grad_file)
    return {
        "timing": timing,
        "memory": section.figures,
        "loss": float(pg_loss.item()),
        "metrics": {"pg_clipfrac": float(clipfrac), "ppo_kl": float(ppo_kl), "pg_clipfrac_lower": float(clipfrac_lower)},
        "grad_file": grad_file,
    }


# ── token log-probs ─────────────────────────────────────────────────────────────────────────────────────────

def formula_tokens(rows, cols, vocab):
    """The bench's tokens: (i * 2654435761) mod V for position i, exact in int64."""
    i = torch.arange(rows * cols, dtype=torch.int64)
    return ((i * 2654435761) % vocab).reshape(rows, cols)


def formula_grad_logp(rows, cols):
    """The bench's upstream gradient: ((i mod 7) − 2.5) / (B·T) for position i."""
    i = torch.arange(rows * cols, dtype=torch.float64)
    return ((torch.remainder(i, 7) - 2.5) / (rows * cols)).reshape(rows, cols)


def token_logp(logits, tokens):
    return torch.log_softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)


class Reused:
    """log_softmax + gather and its backward into buffers allocated once (the "reused" sections)."""

    def __init__(self, logits, tokens):
        self.logits = logits
        self.index = tokens.unsqueeze(-1)
        self.log_softmax = torch.empty_like(logits)
        self.logp = torch.empty(self.index.shape, dtype=logits.dtype)
        self.grad = torch.empty_like(logits)

    def forward(self):
        with torch.no_grad():
            torch._log_softmax(self.logits, -1, False, out=self.log_softmax)
            torch.gather(self.log_softmax, -1, self.index, out=self.logp)
        return self.logp

    def forward_backward(self, grad_logp):
        """∂/∂logits of Σ g·logp[token] = onehot·g − g·softmax, written into self.grad."""
        self.forward()
        g = grad_logp.unsqueeze(-1)
        with torch.no_grad():
            torch.exp(self.log_softmax, out=self.grad)
            self.grad.mul_(-g)
            self.grad.scatter_add_(-1, self.index, g)
        return self.grad


def logprob_agreement(check, out_dir):
    rows, cols, vocab = check["shape"]
    logits = torch.from_numpy(np.fromfile(check["file"], dtype=np.float32).reshape(rows, cols, vocab).copy())
    tokens = formula_tokens(rows, cols, vocab)
    grad_logp = formula_grad_logp(rows, cols).to(torch.float32)
    reused = Reused(logits, tokens)
    reused_logp = reused.forward().squeeze(-1).clone()
    reused_grad = reused.forward_backward(grad_logp).clone()
    # Autograd's own backward kernel into a preallocated buffer, as a second check of the formulation above.
    grad_output = torch.zeros_like(logits).scatter_(-1, tokens.unsqueeze(-1), grad_logp.unsqueeze(-1))
    kernel_grad = torch.empty_like(logits)
    torch._log_softmax_backward_data(grad_output, reused.log_softmax, -1, logits.dtype, out=kernel_grad)
    logits.requires_grad_(True)
    logp = token_logp(logits, tokens)
    logp.backward(grad_logp)
    logp_file = os.path.join(out_dir, "small_logp.f64")
    grad_file = os.path.join(out_dir, "small_grad.f64")
    logp.detach().to(torch.float64).numpy().tofile(logp_file)
    logits.grad.to(torch.float64).numpy().tofile(grad_file)
    return {
        "logp_file": logp_file,
        "grad_file": grad_file,
        "reused_vs_autograd": {
            "logp": float((reused_logp - logp.detach()).abs().max()),
            "grad": float((reused_grad - logits.grad).abs().max()),
            "log_softmax_backward_data_grad": float((kernel_grad - logits.grad).abs().max()),
        },
    }


def logprob_sections(spec, sampler):
    rows, cols, vocab = spec["shape"]
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    logits = torch.randn(rows, cols, vocab, generator=generator, dtype=torch.float32).mul_(spec["scale"])
    generate_s = time.perf_counter() - start
    tokens = formula_tokens(rows, cols, vocab)
    grad_logp = formula_grad_logp(rows, cols).to(torch.float32)
    logits_mb = logits.numel() * logits.element_size() / MB

    def forward():
        with torch.no_grad():
            return token_logp(logits, tokens)

    with Section(sampler) as fwd_section:
        fwd_timing, logp = timed(forward, spec["warmup"], spec["runs"])
    del logp

    result = {
        "generate_s": generate_s,
        "logits_mb": logits_mb,
        "forward": {"timing": fwd_timing, "memory": fwd_section.figures},
    }
    if spec.get("reused", False):
        reused = Reused(logits, tokens)
        with Section(sampler) as section:
            timing, _ = timed(reused.forward, spec["warmup"], spec["runs"])
        result["forward_reused"] = {"timing": timing, "memory": section.figures}
        with Section(sampler) as section:
            timing, _ = timed(lambda: reused.forward_backward(grad_logp), spec["warmup"], spec["runs"])
        result["forward_backward_reused"] = {"timing": timing, "memory": section.figures}
        del reused
    if not spec.get("forwardBackward", True):
        return result
    logits.requires_grad_(True)

    def forward_backward():
        logits.grad = None
        logp = token_logp(logits, tokens)
        logp.backward(grad_logp)
        return logits.grad

    def drop(_grad):
        logits.grad = None

    with Section(sampler) as bwd_section:
        bwd_timing, grad = timed(forward_backward, spec["warmup"], spec["runs"], between=drop)
    result["grad_mb"] = grad.numel() * grad.element_size() / MB
    del grad
    logits.grad = None
    result["forward_backward"] = {"timing": bwd_timing, "memory": bwd_section.figures}
    return result


def main():
    with open(sys.argv[1]) as f:
        config = json.load(f)
    torch.set_num_threads(config["threads"])
    sampler = Sampler()
    report = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "loss": {},
    }
    loss = config.get("loss")  # bench:wasm leaves the loss out
    for case in loss["cases"] if loss is not None else []:
        for dtype_name in loss["dtypes"]:
            report["loss"][f"{case['name']}_{dtype_name}"] = loss_section(case, dtype_name, loss["options"], sampler, config["outDir"])
    if "agreement" in config["logprobs"]:
        report["logprobAgreement"] = logprob_agreement(config["logprobs"]["agreement"], config["outDir"])
    report["logprobs"] = logprob_sections(config["logprobs"], sampler)
    sampler.stop()
    report["ru_maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    json.dump(report, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
