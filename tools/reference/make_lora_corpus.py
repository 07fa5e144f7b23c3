"""Seed corpus for the LoRA reader's fuzz target (tests/fuzz/lora_fuzz.cpp): one small file per format that
the reader accepts (kohya-ss LoRA, LoCon with a CP core, LoHa, LoKr, a full `diff`, diffusers/PEFT names), the
shapes fitting the 16x16 and 16x8x3x3 layers the target tries.

    /work/refvenv/bin/python tools/reference/make_lora_corpus.py   # numpy for the corpus, torch for the .pt copy; writes tests/fuzz/corpus/lora/*.safetensors
"""
import os

import numpy as np

import safetensors_io

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(os.path.dirname(os.path.dirname(HERE)), "tests", "fuzz", "corpus", "lora")


def main():
    rng = np.random.default_rng(0)

    def r(*shape):
        return rng.standard_normal(shape).astype(np.float32) * 0.1

    q = "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q"
    c = "lora_unet_down_blocks_0_resnets_0_conv1"
    files = {
        "kohya.safetensors": {q + ".lora_down.weight": r(4, 16), q + ".lora_up.weight": r(16, 4),
                              q + ".alpha": np.array(2.0, np.float32),
                              "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_down.weight": r(2, 16),
                              "lora_te_text_model_encoder_layers_0_self_attn_q_proj.lora_up.weight": r(16, 2)},
        "locon_cp.safetensors": {c + ".lora_down.weight": r(2, 8, 1, 1), c + ".lora_up.weight": r(16, 2, 1, 1),
                                 c + ".lora_mid.weight": r(2, 2, 3, 3), c + ".alpha": np.array(1.0, np.float32)},
        "loha.safetensors": {q + ".hada_w1_a": r(16, 2), q + ".hada_w1_b": r(2, 16), q + ".hada_w2_a": r(16, 2),
                             q + ".hada_w2_b": r(2, 16), q + ".alpha": np.array(1.0, np.float32)},
        "lokr.safetensors": {q + ".lokr_w1": r(4, 4), q + ".lokr_w2_a": r(4, 2), q + ".lokr_w2_b": r(2, 4),
                             q + ".alpha": np.array(1.0, np.float32)},
        "diff.safetensors": {q + ".diff": r(16, 16), q + ".diff_b": r(16)},
        "peft.safetensors": {"unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.lora_A.weight": r(4, 16),
                             "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_k.lora_B.weight": r(16, 4)},
    }
    os.makedirs(OUT, exist_ok=True)
    for name, tensors in files.items():
        safetensors_io.save_file(tensors, os.path.join(OUT, name), metadata={"script": "tools/reference/make_lora_corpus.py"})
        print("wrote", name)




def write_pt_copy():
    """tests/golden/data/lora/sd1_kohya_pt.pt: make_lora_goldens.py's sd1_kohya.safetensors saved again with
    torch.save (the zip format, a plain dict of tensors), as older kohya-ss and A1111-era LoRAs ship: the unit test
    reads both and expects the same modules (needs torch: the pip venv)."""
    import torch
    root = os.path.dirname(os.path.dirname(HERE))
    src = os.path.join(root, "tests", "golden", "data", "lora", "sd1_kohya.safetensors")
    out = os.path.join(root, "tests", "golden", "data", "lora", "sd1_kohya_pt.pt")
    tensors = {k: torch.from_numpy(v) for k, v in safetensors_io.load_file(src).items()}
    torch.save(tensors, out)
    print("wrote", out)


if __name__ == "__main__":
    main()
    write_pt_copy()
