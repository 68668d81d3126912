# Writes the language-model tensors of a PLM-shaped bf16 checkpoint as a Llama GGUF (BF16).
import json, struct, sys
import numpy as np
import gguf

src, tok_dir, out = sys.argv[1], sys.argv[2], sys.argv[3]
cfg = json.load(open(f"{src}/config.json"))["text_config"]
f = open(f"{src}/model.safetensors", "rb")
n = struct.unpack("<Q", f.read(8))[0]
hdr = json.loads(f.read(n)); base = 8 + n
mm = np.memmap(f"{src}/model.safetensors", dtype=np.uint8, mode="r")

def tensor(name):
    h = hdr[name]; assert h["dtype"] == "BF16", h["dtype"]
    b, e = h["data_offsets"]
    return np.asarray(mm[base + b: base + e]).view(np.uint16).reshape(h["shape"])

w = gguf.GGUFWriter(out, "llama")
w.add_name("plm-1b-shaped-random")
w.add_context_length(cfg["max_position_embeddings"])
w.add_embedding_length(cfg["hidden_size"])
w.add_block_count(cfg["num_hidden_layers"])
w.add_feed_forward_length(cfg["intermediate_size"])
w.add_head_count(cfg["num_attention_heads"])
w.add_head_count_kv(cfg["num_key_value_heads"])
w.add_rope_dimension_count(cfg["head_dim"])
w.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
w.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
w.add_vocab_size(cfg["vocab_size"])
w.add_file_type(gguf.LlamaFileType.MOSTLY_BF16)

tj = json.load(open(f"{tok_dir}/tokenizer.json"))
vocab = dict(tj["model"]["vocab"])
for t in tj["added_tokens"]:
    vocab[t["content"]] = t["id"]
tokens = [""] * cfg["vocab_size"]; types = [gguf.TokenType.NORMAL] * cfg["vocab_size"]
for s, i in vocab.items():
    tokens[i] = s
for t in tj["added_tokens"]:
    types[t["id"]] = gguf.TokenType.CONTROL
for i, s in enumerate(tokens):
    if s == "":
        tokens[i] = f"[PAD{i}]"; types[i] = gguf.TokenType.UNUSED
merges = [" ".join(m) if isinstance(m, list) else m for m in tj["model"]["merges"]]
w.add_tokenizer_model("gpt2"); w.add_tokenizer_pre("llama-bpe")
w.add_token_list(tokens); w.add_token_types(types); w.add_token_merges(merges)
w.add_bos_token_id(128000); w.add_eos_token_id(128009)

P = "model.language_model."
def add(gname, hname):
    a = tensor(P + hname)
    if a.ndim == 1:  # norms in f32, as llama.cpp's converter writes them
        w.add_tensor(gname, (a.astype(np.uint32) << 16).view(np.float32))
        return
    w.add_tensor(gname, a, raw_shape=a.shape, raw_dtype=gguf.GGMLQuantizationType.BF16)

add("token_embd.weight", "embed_tokens.weight")
add("output_norm.weight", "norm.weight")
for l in range(cfg["num_hidden_layers"]):
    for g, h in [("attn_norm", "input_layernorm"), ("ffn_norm", "post_attention_layernorm"),
                 ("attn_q", "self_attn.q_proj"), ("attn_k", "self_attn.k_proj"),
                 ("attn_v", "self_attn.v_proj"), ("attn_output", "self_attn.o_proj"),
                 ("ffn_gate", "mlp.gate_proj"), ("ffn_up", "mlp.up_proj"), ("ffn_down", "mlp.down_proj")]:
        add(f"blk.{l}.{g}.weight", f"layers.{l}.{h}.weight")
w.write_header_to_file(); w.write_kv_data_to_file(); w.write_tensors_to_file(); w.close()
print("wrote", out)
