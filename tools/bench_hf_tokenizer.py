#!/usr/bin/env python3
"""Encode throughput of Hugging Face `tokenizers` on the same text as bench/tokenizer_bench.cc,
single-threaded, for the side-by-side ratio in docs/PERFORMANCE.md.

    build/bench/tokenizer_bench --write_corpus=/tmp/plm_corpus.txt
    pip install tokenizers
    python3 tools/bench_hf_tokenizer.py /tmp/plm_corpus.txt [path/to/tokenizer.json]

Prints MB/s for the whole text in one call and line by line, plus the token count (which must
equal the `tokens` counter of BM_EncodeWholeText: same ids, same count)."""
import os
import sys
import time

# One thread: no rayon parallelism inside tokenizers.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

from tokenizers import Tokenizer  # noqa: E402


def best_of(fn, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main():
    corpus_path = sys.argv[1] if len(sys.argv) > 1 else "/tmp/plm_corpus.txt"
    here = os.path.dirname(os.path.abspath(__file__))
    fixtures = os.environ.get("PLM_FIXTURES") or os.path.join(here, "..", "..", "shared", "fixtures")
    # The first model folder with a tokenizer (discovered, like the C++ benchmark's tests).
    models = os.path.join(fixtures, "models")
    found = [os.path.join(models, m, "tokenizer.json") for m in sorted(os.listdir(models))
             if os.path.isfile(os.path.join(models, m, "tokenizer.json"))] if os.path.isdir(models) else []
    default_tok = found[0] if found else None
    tok_path = sys.argv[2] if len(sys.argv) > 2 else default_tok
    if tok_path is None:
        sys.exit("usage: bench_hf_tokenizer.py CORPUS [TOKENIZER_JSON] (no fixture tokenizer found)")
    with open(corpus_path, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    lines = text.splitlines(keepends=True)
    tok = Tokenizer.from_file(tok_path)
    mb = len(raw) / 1e6

    tok.encode(text, add_special_tokens=False)  # warm the BPE cache, as the C++ bench does
    tokens = len(tok.encode(text, add_special_tokens=False).ids)
    whole = best_of(lambda: tok.encode(text, add_special_tokens=False), 5)
    per_line = best_of(lambda: [tok.encode(l, add_special_tokens=False) for l in lines], 3)
    cold_tok = Tokenizer.from_file(tok_path)
    head = raw[: 1 << 20].decode("utf-8", errors="ignore")
    start = time.perf_counter()
    cold_tok.encode(head, add_special_tokens=False)
    cold = time.perf_counter() - start

    import tokenizers
    print(f"tokenizers {tokenizers.__version__}, {len(raw)} bytes, {tokens} tokens")
    print(f"whole text : {mb / whole:8.2f} MB/s")
    print(f"per line   : {mb / per_line:8.2f} MB/s ({len(lines)} calls)")
    print(f"cold cache : {len(head.encode()) / 1e6 / cold:8.2f} MB/s (first 1 MiB, fresh tokenizer)")


if __name__ == "__main__":
    main()
