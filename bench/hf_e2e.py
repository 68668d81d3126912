# Image -> first token with Hugging Face transformers on the CPU, random-weight PLM-1B-shaped
# checkpoint (the folder `plm bench` writes). Usage:
#   hf_e2e.py MODEL_DIR TILES THREADS [DTYPE [novision [IMAGE PROCESSOR_DIR]]]
# (novision: skip the separate timing of the vision tower, only image -> first token). With IMAGE
# and PROCESSOR_DIR (a folder with processor_config.json, tokenizer and chat template) it also
# times the whole path from the image file instead: the processor (image loading, tiling, chat
# template, tokenizer) and the forward pass on what it returns.
import sys, time, os
import torch
from transformers import PerceptionLMForConditionalGeneration

model_dir, tiles, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
dtype = {"bf16": torch.bfloat16, "f32": torch.float32, "auto": "auto"}[sys.argv[4] if len(sys.argv) > 4 else "auto"]
torch.set_num_threads(threads)
t0 = time.time()
model = PerceptionLMForConditionalGeneration.from_pretrained(model_dir, dtype=dtype)
model.eval()
print(f"load {time.time()-t0:.1f}s dtype={next(model.parameters()).dtype} threads={torch.get_num_threads()}", flush=True)
cfg = model.config
tok_per_tile = (cfg.vision_config.model_args["img_size"][0] // 14 // cfg.projector_pooling_ratio) ** 2
g = torch.Generator().manual_seed(0)
pix = torch.rand(1, tiles, 3, 448, 448, generator=g).to(next(model.parameters()).dtype) * 2 - 1
text = 16
ids = torch.tensor([[128000] + [cfg.image_token_id] * (tiles * tok_per_tile) + [1000 + i for i in range(text)]])
with torch.inference_mode():
    # warm-up on one tile
    model.model.get_image_features(pixel_values=pix[:, :1])
    if not (len(sys.argv) > 5 and sys.argv[5] == "novision"):
        t0 = time.time()
        feats = model.model.get_image_features(pixel_values=pix)
        tv = time.time() - t0
        print(f"vision+projector {tv:.2f}s for {tiles} tiles = {tv/tiles:.3f} s/tile", flush=True)
    if len(sys.argv) <= 7:
        t0 = time.time()
        out = model(input_ids=ids, pixel_values=pix, logits_to_keep=1)
        te = time.time() - t0
        print(f"image->first token {te:.2f}s ({tiles} tiles, {ids.shape[1]} tokens), argmax {int(out.logits[0, -1].argmax())}", flush=True)
    else:
        from transformers import AutoProcessor
        processor = AutoProcessor.from_pretrained(sys.argv[7])
        messages = [{"role": "user", "content": [{"type": "image", "url": sys.argv[6]},
                                                 {"type": "text", "text": "Describe the image."}]}]
        t0 = time.time()
        inputs = processor.apply_chat_template(messages, add_generation_prompt=True, tokenize=True,
                                               return_dict=True, return_tensors="pt")
        tp = time.time() - t0
        inputs["pixel_values"] = inputs["pixel_values"].to(next(model.parameters()).dtype)
        t1 = time.time()
        out = model(**inputs, logits_to_keep=1)
        tf = time.time() - t1
        print(f"image file->first token {tp + tf:.2f}s (processor {tp:.2f}s + forward {tf:.2f}s; "
              f"{inputs['pixel_values'].shape[1]} tiles, {inputs['input_ids'].shape[1]} tokens)", flush=True)
