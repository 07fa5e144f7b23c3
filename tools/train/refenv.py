"""Puts the reference environment (diffusers, transformers, huggingface_hub, ftfy) on sys.path.

Debian's python3-torch has no diffusers/transformers and PyPI is unreachable here, so the trainer and
exporter use pure-Python checkouts set up under $EASEL_REFENV (default /work/refenv), whose env.sh
exports their PYTHONPATH. Also puts tools/reference (safetensors_io) on sys.path.

    import refenv; refenv.ensure()
    import diffusers
"""

from __future__ import annotations

import os
import subprocess
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))


def ensure() -> None:
    ref_tools = os.path.join(_HERE, "..", "reference")
    if ref_tools not in sys.path:
        sys.path.insert(0, os.path.normpath(ref_tools))
    try:
        import diffusers  # noqa: F401
        import transformers  # noqa: F401
        _patch_slow_tokenizer_added_token()
        return
    except ImportError:
        pass
    root = os.environ.get("EASEL_REFENV", "/work/refenv")
    env_sh = os.path.join(root, "env.sh")
    if not os.path.exists(env_sh):
        sys.exit(f"error: diffusers/transformers are not importable and {env_sh} does not exist; "
                 "set EASEL_REFENV to the reference environment (diffusers v0.30.3, transformers 4.40)")
    out = subprocess.run(["bash", "-c", f'source "{env_sh}" >/dev/null && env -0'], check=True,
                         capture_output=True).stdout.decode()
    env = dict(kv.split("=", 1) for kv in out.split("\0") if "=" in kv)
    for p in reversed([p for p in env.get("PYTHONPATH", "").split(":") if p]):
        if p not in sys.path:
            sys.path.insert(0, p)
    for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "DIFFUSERS_NO_ADVISORY_WARNINGS"):
        if k in env:
            os.environ.setdefault(k, env[k])
    import diffusers  # noqa: F401,F811  (fail loudly here if the environment is broken)
    import transformers  # noqa: F401,F811
    _patch_slow_tokenizer_added_token()


def _patch_slow_tokenizer_added_token() -> None:
    """transformers 4.40 without the Rust `tokenizers` package falls back to its own AddedToken class,
    which has __eq__ but no __hash__ and no __setstate__; the slow CLIPTokenizer then fails to load
    (unhashable type / no __setstate__ on Python 3.11). Give it both, with tokenizers' meaning: hash
    by content, setstate updates the fields."""
    import transformers.tokenization_utils_base as base
    at = base.AddedToken
    if at.__module__ != "transformers.tokenization_utils_base":
        return  # the real tokenizers.AddedToken: nothing to fix
    if getattr(at, "__hash__", None) is None:
        at.__hash__ = lambda self: hash(self.content)
    if not hasattr(at, "__setstate__"):
        at.__setstate__ = lambda self, state: self.__dict__.update(state)
