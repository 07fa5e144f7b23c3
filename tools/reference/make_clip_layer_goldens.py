#!/work/refvenv/bin/python
"""Writes tests/golden/data/clip_layers_tiny.safetensors: every layer of two tiny CLIP text encoders.

Run from the repository root with the pip venv (see README.md, "The pip venv"):

    /work/refvenv/bin/python tools/reference/make_clip_layer_goldens.py

It builds two random-weight text encoders with transformers (the versions pinned in
requirements-pip.txt), runs them on CPU in float32 and saves their weights, inputs and outputs.

Models (prefix "l" and "g" in the tensor names):

- "l": CLIPTextModel, hidden 32, MLP 64, 3 layers, 4 heads, quick_gelu, eos_token_id 2. An
  eos_token_id of 2 makes transformers pool with its legacy rule: the position of the largest id
  in each row (argmax(input_ids), first one on ties). Its BOS is 198 and its EOS 199, the largest
  id, as in CLIP's real vocabulary.
- "g": CLIPTextModelWithProjection, hidden 48, MLP 96, 4 layers, 4 heads, exact (erf) gelu,
  projection_dim 40, bos 149, eos_token_id 150. It pools at the first position whose id equals 150.
  Its rows carry the id 190 (larger than its EOS) at position 3, so the legacy argmax rule would
  pool elsewhere: the golden tells the two rules apart.

Both have vocab_size 200, 77 positions and layer_norm_eps 1e-5 (a small vocabulary keeps the
file small).

Random state: torch.manual_seed(0) once, then in this order: build "l", re-draw each of its
parameters in named_parameters() order, build "g", re-draw its parameters the same way, then
for "l" and then "g": draw the ids of row 0, draw the ids of row 1. Every parameter is re-drawn as randn * 0.1, except
layer norm weights, which are 1 + randn * 0.1.

The tensors are the same bits on every run. The header's metadata entries may come out in a
different order each run (safetensors keeps them in a hash map), so the file's bytes can differ.

Input ids, shape [2, 77], per model (BOS and EOS its own; "g" then sets position 3 to 190):
- row 0: BOS, 10 random ids in [1, 147], EOS, then EOS up to 77 (SD 1.x padding with EOS).
- row 1: BOS, 25 random ids in [1, 147], EOS, then 0 up to 77 (SD 2.x padding with 0).
No attention mask is passed; the models apply only their causal mask. Both models pool at
position 11 in row 0 and 26 in row 1 (their first EOS).

Tensors (float32 unless said):
    {m}.input_ids                  int32 [2, 77]
    {m}.hidden_states.{i}          [2, 77, hidden], i = 0 .. num_layers; 0 is the embedding
                                   output, i is the output of layer i-1 (before the final layer norm)
    {m}.last_hidden_state          [2, 77, hidden], after the final layer norm
    {m}.pooler_output              [2, hidden], last_hidden_state at the pooled position
    g.text_embeds                  [2, 40], text_projection(pooler_output)
    {m}.text_encoder.<key>         every entry of the model's state_dict (position_ids skipped)

Metadata: script, torch, transformers, seed, and {m}.config (the config's to_json_string()).
The script prints the pooled position of each row and the file's size.
"""

import os
import sys

import torch
import transformers
from safetensors.torch import load_file, save_file
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.normpath(os.path.join(HERE, "..", "..", "tests", "golden", "data", "clip_layers_tiny.safetensors"))
SCRIPT = "tools/reference/make_clip_layer_goldens.py"
SEED = 0
SIZE_LIMIT = 1024 * 1024

IDS = {"l": (198, 199), "g": (149, 150)}  # (BOS, EOS)
HIGH_ID = 190  # put at position 3 of "g"'s rows: above its EOS


def config_l():
    return CLIPTextConfig(
        vocab_size=200, hidden_size=32, intermediate_size=64, num_hidden_layers=3,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="quick_gelu",
        layer_norm_eps=1e-5, bos_token_id=0, eos_token_id=2, pad_token_id=1)


def config_g():
    return CLIPTextConfig(
        vocab_size=200, hidden_size=48, intermediate_size=96, num_hidden_layers=4,
        num_attention_heads=4, max_position_embeddings=77, hidden_act="gelu",
        layer_norm_eps=1e-5, projection_dim=40, bos_token_id=149, eos_token_id=150, pad_token_id=0)


def redraw_parameters(model):
    """Replaces every parameter with randn * 0.1 (layer norm weights: 1 + randn * 0.1)."""
    norm_weights = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.LayerNorm)}
    with torch.no_grad():
        for _, p in model.named_parameters():
            noise = torch.randn(p.shape, dtype=torch.float32) * 0.1
            p.copy_(noise + 1.0 if id(p) in norm_weights else noise)


def build(cls, config):
    model = cls(config).to(torch.float32)
    redraw_parameters(model)
    return model.eval()


def make_ids(m):
    bos, eos = IDS[m]

    def row(n_random, pad):
        ids = [bos] + torch.randint(1, 148, (n_random,)).tolist() + [eos]
        ids = ids + [pad] * (77 - len(ids))
        if m == "g":
            ids[3] = HIGH_ID
        return ids

    rows = [row(10, eos), row(25, 0)]
    return torch.tensor(rows, dtype=torch.int64)


def expected_pool_positions(config, input_ids):
    """Where transformers 4.40 pools, restated: argmax of the ids for eos_token_id 2, else the
    first position equal to eos_token_id."""
    rows = []
    for r in input_ids.tolist():
        if config.eos_token_id == 2:
            rows.append(r.index(max(r)))
        else:
            rows.append(r.index(config.eos_token_id))
    return rows


def main():
    torch.manual_seed(SEED)
    models = {
        "l": build(CLIPTextModel, config_l()),
        "g": build(CLIPTextModelWithProjection, config_g()),
    }
    ids = {m: make_ids(m) for m in models}

    tensors = {}
    metadata = {
        "script": SCRIPT,
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "seed": str(SEED),
    }
    pooled = {}
    with torch.no_grad():
        for m, model in models.items():
            config = model.config
            input_ids = ids[m]
            # The inner CLIPTextTransformer gives pooler_output for both classes.
            out = model.text_model(input_ids=input_ids, output_hidden_states=True)
            hidden = out.hidden_states
            assert len(hidden) == config.num_hidden_layers + 1

            positions = expected_pool_positions(config, input_ids)
            rows = torch.arange(input_ids.shape[0])
            assert torch.equal(out.pooler_output, out.last_hidden_state[rows, torch.tensor(positions)])
            pooled[m] = positions

            tensors[f"{m}.input_ids"] = input_ids.to(torch.int32)
            for i, h in enumerate(hidden):
                tensors[f"{m}.hidden_states.{i}"] = h
            tensors[f"{m}.last_hidden_state"] = out.last_hidden_state
            tensors[f"{m}.pooler_output"] = out.pooler_output

            if m == "g":
                full = model(input_ids=input_ids, output_hidden_states=True)
                assert torch.equal(full.last_hidden_state, out.last_hidden_state)
                assert torch.allclose(full.text_embeds, out.pooler_output @ model.text_projection.weight.T,
                                      rtol=0, atol=1e-6)
                tensors[f"{m}.text_embeds"] = full.text_embeds

            for key, value in model.state_dict().items():
                if key == "text_model.embeddings.position_ids":
                    continue
                tensors[f"{m}.text_encoder.{key}"] = value
            metadata[f"{m}.config"] = config.to_json_string()

    for name, t in tensors.items():
        if t.is_floating_point():
            assert t.dtype == torch.float32, name
            assert torch.isfinite(t).all(), name
    tensors = {name: t.detach().clone().contiguous() for name, t in tensors.items()}

    save_file(tensors, OUT, metadata=metadata)

    back = load_file(OUT)
    assert back.keys() == tensors.keys()
    for name, t in tensors.items():
        assert torch.equal(back[name], t), name

    size = os.path.getsize(OUT)
    print(f"wrote {OUT}: {len(tensors)} tensors, {size} bytes")
    for m, positions in pooled.items():
        print(f"{m}: eos_token_id {models[m].config.eos_token_id}, pooled positions {positions}")
    if size >= SIZE_LIMIT:
        print(f"warning: {size} bytes is over the {SIZE_LIMIT}-byte limit for goldens in git", file=sys.stderr)


if __name__ == "__main__":
    main()
