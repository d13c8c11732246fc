"""PyTorch baseline of the engine benchmark on a CUDA GPU.

Runs the engine benchmark's three passes with Hugging Face's GPT2LMHeadModel in eager fp32
(random weights, TF32 off) on the shapes of an engine results file that bench/run.ts --json
wrote. Prints tokens per second of both, their ratio, and the fraction of the GPU's fp32 peak
that each reaches. Passes, as in bench/engine.ts:
  forward           the weighted NLL, no gradients
  forward+backward  gradients of every parameter
  sensitivity       gradients of the transformer blocks only, and each block's gradient L2 norm

Usage: python3 bench/gpu/pytorch_gpt2.py --engine-results FILE [--iterations N] [--peak-tflops X]
"""

import argparse
import json
import shutil
import subprocess
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, GPT2Config, GPT2LMHeadModel
except ImportError as error:
    sys.exit(
        f"error: {error}. This benchmark needs PyTorch with CUDA and Hugging Face transformers in "
        "the python3 on PATH; it installs nothing. Check with: python3 -c 'import torch, transformers'"
    )

PASSES = ["forward", "forwardBackward", "sensitivity"]
PASS_LABELS = {"forward": "forward", "forwardBackward": "forward+backward", "sensitivity": "sensitivity"}

# FP32 units (CUDA cores) per streaming multiprocessor by compute capability, each one FMA per
# clock: NVIDIA's core and SM counts, e.g. 16,896 cores on 132 SMs for the H100 and H200 SXM.
FP32_LANES_PER_SM = {(7, 0): 64, (7, 5): 64, (8, 0): 64, (8, 6): 128, (8, 7): 128, (8, 9): 128, (9, 0): 128}


def flops_per_token(shape, seq_len):
    """Matrix-multiply FLOPs per token of each pass; the same convention as bench/run.ts."""
    layers, width, vocab = shape["numLayers"], shape["hiddenSize"], shape["vocabSize"]
    inner = 4 * width
    forward = 2 * layers * (4 * width * width + 2 * width * inner) + 2 * vocab * width + 4 * layers * seq_len * width
    return {"forward": forward, "forwardBackward": 3 * forward, "sensitivity": 3 * forward - 2 * vocab * width}


def max_sm_clock_mhz():
    """Return the GPU's maximum SM clock from nvidia-smi, or None where it cannot be read."""
    if not shutil.which("nvidia-smi"):
        return None
    try:
        output = subprocess.run(
            ["nvidia-smi", "--query-gpu=clocks.max.sm", "--format=csv,noheader,nounits", "-i", str(torch.cuda.current_device())],
            capture_output=True, text=True, timeout=30, check=True,
        ).stdout
        return float(output.strip().splitlines()[0])
    except (subprocess.SubprocessError, ValueError, IndexError):
        return None


def fp32_peak(override_tflops):
    """Return the fp32 (non-tensor-core) peak in FLOP/s and a sentence giving its source.

    For the H100 and H200 SXM: 132 SMs x 128 lanes x 2 x 1980 MHz = 66.9 TFLOP/s.
    """
    if override_tflops:
        return override_tflops * 1e12, f"{override_tflops} TFLOP/s, given with --peak-tflops"
    properties = torch.cuda.get_device_properties(torch.cuda.current_device())
    lanes = FP32_LANES_PER_SM.get((properties.major, properties.minor))
    clock = max_sm_clock_mhz()
    if lanes is None or clock is None:
        return None, (
            f"unknown: no FP32 lane count for compute capability {properties.major}.{properties.minor} "
            "or no clock from nvidia-smi; pass --peak-tflops"
        )
    peak = properties.multi_processor_count * lanes * 2 * clock * 1e6
    return peak, (
        f"{peak / 1e12:.1f} TFLOP/s = {properties.multi_processor_count} SMs x {lanes} FP32 lanes x 2 (FMA) "
        f"x {clock:.0f} MHz maximum SM clock (nvidia-smi)"
    )


def random_batch(vocab_size, batch, seq_len, device, generator):
    """Random tokens whose targets are the next tokens, every position weighted 1/(B*T)."""
    stream = torch.randint(0, vocab_size, (batch, seq_len + 1), generator=generator).to(device)
    weights = torch.full((batch, seq_len), 1.0 / (batch * seq_len), device=device)
    return stream[:, :-1].contiguous(), stream[:, 1:].contiguous(), weights


def weighted_nll(model, tokens, targets, weights):
    """sum(weight * -log p(target)), the loss of the engine's lossForward."""
    logits = model(input_ids=tokens).logits
    nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="none")
    return (nll * weights.reshape(-1)).sum()


def benchmark(shape, batch, seq_len, iterations, warmup, attention, device):
    config = GPT2Config(
        vocab_size=shape["vocabSize"], n_positions=shape["contextLength"], n_embd=shape["hiddenSize"],
        n_layer=shape["numLayers"], n_head=shape["numHeads"],
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )
    torch.manual_seed(0)
    # from_config builds a GPT2LMHeadModel with fresh random weights and takes the attention kernel.
    model = AutoModelForCausalLM.from_config(config, attn_implementation=attention).float().to(device).eval()
    assert isinstance(model, GPT2LMHeadModel)
    generator = torch.Generator().manual_seed(0)
    tokens, targets, weights = random_batch(config.vocab_size, batch, seq_len, device, generator)
    blocks = list(model.transformer.h)
    block_parameters = {id(p) for block in blocks for p in block.parameters()}

    def forward():
        with torch.no_grad():
            return weighted_nll(model, tokens, targets, weights).item()

    def forward_backward():
        model.zero_grad(set_to_none=True)
        loss = weighted_nll(model, tokens, targets, weights)
        loss.backward()
        return loss.item()

    def sensitivity():
        model.zero_grad(set_to_none=True)
        loss = weighted_nll(model, tokens, targets, weights)
        loss.backward()
        squares = [sum(p.grad.pow(2).sum() for p in block.parameters()) for block in blocks]
        return torch.stack(squares).sqrt().tolist()

    steps = {"forward": forward, "forwardBackward": forward_backward, "sensitivity": sensitivity}
    results = {"loss": forward(), "passes": {}}
    for name in PASSES:
        # The sensitivity pass needs no gradients of the embeddings and the final LayerNorm. The
        # token embedding is tied to the output head, so the head's weight gradient is skipped too.
        only_blocks = name == "sensitivity"
        for parameter in model.parameters():
            parameter.requires_grad_(not only_blocks or id(parameter) in block_parameters)
        model.zero_grad(set_to_none=True)
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(warmup):
            steps[name]()
        torch.cuda.synchronize(device)
        start = time.perf_counter()
        for _ in range(iterations):
            steps[name]()
        torch.cuda.synchronize(device)
        seconds = time.perf_counter() - start
        results["passes"][name] = {
            "iterations": iterations,
            "seconds": seconds,
            "tokensPerSecond": batch * seq_len * iterations / seconds,
            "peakBytes": torch.cuda.max_memory_allocated(device),
        }
    model.zero_grad(set_to_none=True)
    del model
    torch.cuda.empty_cache()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--engine-results", required=True, help="JSON file written by bench/run.ts --json")
    parser.add_argument("--iterations", type=int, default=10, help="timed iterations per pass (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed iterations before each pass (default 2)")
    parser.add_argument("--peak-tflops", type=float, help="fp32 peak of the GPU in TFLOP/s (default: computed)")
    parser.add_argument("--attention", default="sdpa", choices=["sdpa", "eager"],
                        help="transformers attention implementation (default sdpa, the library's default)")
    parser.add_argument("--json", help="write the comparison to this file")
    args = parser.parse_args()
    if args.iterations < 1 or args.warmup < 0:
        parser.error("--iterations must be at least 1 and --warmup at least 0")

    try:
        with open(args.engine_results) as file:
            engine_report = json.load(file)
    except (OSError, json.JSONDecodeError) as error:
        sys.exit(f"error: cannot read the engine results {args.engine_results}: {error}. Run bench/run.ts with --json first.")
    if not torch.cuda.is_available():
        sys.exit("error: PyTorch sees no CUDA device; this baseline runs on an NVIDIA GPU.")

    # fp32 as the engine computes it: no TF32 tensor-core rounding in matrix products.
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    device = torch.device("cuda")
    peak, peak_source = fp32_peak(args.peak_tflops)

    print(f"PyTorch {torch.__version__} on {torch.cuda.get_device_name(device)}, fp32 eager, attention {args.attention}")
    print(f"engine adapter: {engine_report['machine']['adapter']}")
    print(f"fp32 peak: {peak_source}\n")

    header = ["config", "pass", "engine tok/s", "PyTorch tok/s", "engine/PyTorch", "engine % peak", "PyTorch % peak",
              "engine peak MiB", "PyTorch peak MiB"]
    rows = [header]
    comparison = []
    for result in engine_report["results"]:
        batch, seq_len = result["batch"], result["seqLen"]
        measured = benchmark(result["shape"], batch, seq_len, args.iterations, args.warmup, args.attention, device)
        torch_passes = measured["passes"]
        # Different random weights, so the losses differ; both should be near ln(vocabulary size).
        print(f"{result['name']}: loss engine {result['engine']['loss']:.4f}, PyTorch {measured['loss']:.4f}")
        flops = flops_per_token(result["shape"], seq_len)
        entry = {"name": result["name"], "batch": batch, "seqLen": seq_len, "flopsPerToken": flops,
                 "engine": result["engine"]["passes"], "pytorch": torch_passes, "ratios": {}}
        # Only the passes that the engine run measured (bench/run.ts --passes) are compared.
        for name in [name for name in PASSES if name in result["engine"]["passes"]]:
            engine_rate = result["engine"]["passes"][name]["tokensPerSecond"]
            torch_rate = torch_passes[name]["tokensPerSecond"]
            engine_share = engine_rate * flops[name] / peak if peak else None
            torch_share = torch_rate * flops[name] / peak if peak else None
            entry["ratios"][name] = {"speed": engine_rate / torch_rate, "enginePeakFraction": engine_share,
                                     "pytorchPeakFraction": torch_share}
            rows.append([
                result["name"], PASS_LABELS[name], f"{engine_rate:.0f}", f"{torch_rate:.0f}", f"{engine_rate / torch_rate:.3f}",
                f"{100 * engine_share:.2f}" if peak else "-", f"{100 * torch_share:.2f}" if peak else "-",
                f"{result['engine']['passes'][name]['peakBytes'] / 2**20:.0f}", f"{torch_passes[name]['peakBytes'] / 2**20:.0f}",
            ])
        comparison.append(entry)

    print()
    widths = [max(len(row[column]) for row in rows) for column in range(len(header))]
    for row in rows:
        print("  ".join(cell.ljust(widths[i]) if i < 2 else cell.rjust(widths[i]) for i, cell in enumerate(row)))
    print("\nengine/PyTorch is the ratio of tokens per second: below 1 means PyTorch is faster.")
    print("% peak counts matrix-multiply FLOPs only (see flops_per_token), against the fp32 peak above.")

    if args.json:
        report = {
            "pytorch": torch.__version__, "gpu": torch.cuda.get_device_name(device), "attention": args.attention,
            "fp32Peak": peak, "fp32PeakSource": peak_source, "engineMachine": engine_report["machine"],
            "results": comparison,
        }
        with open(args.json, "w") as file:
            json.dump(report, file, indent=2)
        print(f"results written to {args.json}")


if __name__ == "__main__":
    main()
