"""Checks that a model exported by `irepair repair` loads into Hugging Face transformers.

Loads the exported directory with AutoModelForCausalLM and AutoTokenizer and measures perplexity
on a text with the protocol of `irepair eval --ppl`. The text is tokenized whole and cut into
non-overlapping windows of the context length, and the first token of each window is context
only. The result is compared with the JSON that `irepair eval --ppl` printed for the same
directory and text. It also checks that the
tensors of blocks that run.json does not list as updated equal those of the original model.

Usage: python3 bench/gpu/check_export.py --original DIR --exported DIR --text FILE --engine-ppl FILE.json
Exits 1 when the perplexities differ by more than --tolerance (relative) or the token counts differ.
"""

import argparse
import json
import math
import re
import sys

try:
    import torch
    import torch.nn.functional as F
    from transformers import AutoModelForCausalLM, AutoTokenizer
except ImportError as error:
    sys.exit(f"error: {error}. This check needs PyTorch and Hugging Face transformers in the python3 on PATH; it installs nothing.")


def perplexity(model, ids, window, device):
    """Return (perplexity, predicted tokens) with non-overlapping windows of `window` tokens."""
    total_nll = 0.0
    count = 0
    for start in range(0, len(ids), window):
        chunk = ids[start:start + window]
        if len(chunk) < 2:
            continue
        tokens = torch.tensor([chunk], device=device)
        with torch.no_grad():
            logits = model(tokens).logits.double()
        nll = F.cross_entropy(logits[0, :-1], tokens[0, 1:], reduction="sum")
        total_nll += nll.item()
        count += len(chunk) - 1
    return math.exp(total_nll / count), count


def block_of(name):
    """Return the transformer block index of a parameter name, or None for embeddings and ln_f."""
    match = re.search(r"\.h\.(\d+)\.", name)
    return int(match.group(1)) if match else None


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--original", required=True, help="the model directory given to irepair repair")
    parser.add_argument("--exported", required=True, help="the --out directory of irepair repair")
    parser.add_argument("--text", required=True, help="the text file given to irepair eval --ppl")
    parser.add_argument("--engine-ppl", required=True, help="the JSON that irepair eval --ppl printed for the exported model")
    parser.add_argument("--tolerance", type=float, default=2e-3, help="largest relative perplexity difference (default 2e-3)")
    args = parser.parse_args()

    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    exported = AutoModelForCausalLM.from_pretrained(args.exported, torch_dtype=torch.float32).to(device).eval()
    original = AutoModelForCausalLM.from_pretrained(args.original, torch_dtype=torch.float32).to(device).eval()
    tokenizer = AutoTokenizer.from_pretrained(args.exported)
    with open(args.text, encoding="utf-8") as file:
        ids = tokenizer(file.read())["input_ids"]
    with open(args.engine_ppl, encoding="utf-8") as file:
        engine = json.load(file)
    with open(f"{args.exported}/run.json", encoding="utf-8") as file:
        run = json.load(file)
    updated_blocks = set(run["updatedBlocks"])
    updated_embeddings = run["updatedEmbeddings"]

    failures = []
    window = exported.config.max_position_embeddings
    ppl, tokens = perplexity(exported, ids, window, device)
    relative = abs(ppl - engine["perplexity"]) / engine["perplexity"]
    print(f"perplexity: transformers {ppl:.6f} on {tokens} tokens, engine {engine['perplexity']:.6f} on {engine['tokens']} tokens, relative difference {relative:.2e}")
    if tokens != engine["tokens"]:
        failures.append(f"token counts differ: transformers {tokens}, engine {engine['tokens']}")
    if relative > args.tolerance:
        failures.append(f"perplexities differ by {relative:.2e}, more than {args.tolerance:.0e}")

    original_state = original.state_dict()
    changed_blocks = set()
    for name, tensor in exported.state_dict().items():
        if not torch.equal(tensor, original_state[name]):
            block = block_of(name)
            if block is None and not updated_embeddings:
                failures.append(f"{name} changed, but it belongs to no block")
            elif block is not None:
                changed_blocks.add(block)
    print(f"blocks changed: {sorted(changed_blocks)}; run.json lists {sorted(updated_blocks)}")
    if not changed_blocks <= updated_blocks:
        failures.append(f"blocks {sorted(changed_blocks - updated_blocks)} changed but run.json does not list them")

    for failure in failures:
        print(f"error: {failure}", file=sys.stderr)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
