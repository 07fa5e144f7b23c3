#!/work/refvenv/bin/python
"""An unmodified webuiapi client (PyPI webuiapi 0.9.17, pinned in tools/reference/requirements-pip.txt) against
`easel serve`: ControlNetUnit with its own defaults (resize_mode "Resize and Fill", thresholds 64/64,
processor_res 512), controlnet_detect, two units, img2img with a unit, and an IP-Adapter unit with and without a
guidance window. Not part of `make
test` (the client comes from PyPI); run by hand after changing the ControlNet API:

    G=$PWD/tests/golden/data
    build/release/apps/easel serve -m $G/pipeline_sd1 --port 7913 --data /tmp/wua1 --controlnet-dir $G/controlnet &
    tools/compat/webuiapi_controlnet.py 7913 $G controlnet
    build/release/apps/easel serve -m $G/pipeline_sd1 --port 7914 --data /tmp/wua2 --controlnet-dir $G/ip_adapter &
    tools/compat/webuiapi_controlnet.py 7914 $G ip-adapter

Exits non-zero when a call fails or an answer lacks what it should hold.
"""
import sys

import webuiapi
from PIL import Image


def main():
    port, gold, which = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    api = webuiapi.WebUIApi(host="127.0.0.1", port=port)
    models, modules = api.controlnet_model_list(), api.controlnet_module_list()
    print("models:", models)
    print("modules:", modules)
    assert "canny" in modules and "ip-adapter_clip_h" in modules
    if which == "controlnet":
        img = Image.open(f"{gold}/preprocessors/shapes_150x113.png")
        det = api.controlnet_detect(images=[img], module="canny", threshold_a=50, threshold_b=150)
        # processor_res 512 (webuiapi's default): the 150x113 image with its shorter side at 512, as the extension
        assert len(det.images) == 1 and det.images[0].size == (680, 512), det.images[0].size
        unit = webuiapi.ControlNetUnit(image=img, module="canny", model="sd1_a")
        r = api.txt2img(prompt="a red circle", width=32, height=32, steps=4, seed=3, controlnet_units=[unit])
        info = r.info["infotexts"][0]
        print("txt2img:", info)
        assert r.images[0].size == (32, 32) and 'ControlNet 0: "Module: canny, Model: sd1_a' in info
        unit2 = webuiapi.ControlNetUnit(image=Image.open(f"{gold}/controlnet/control_c.png"), module="none",
                                        model="sd1_b_ldm", weight=0.5, resize_mode="Just Resize", control_mode=2)
        r = api.txt2img(prompt="a red circle", width=32, height=32, steps=4, seed=3, controlnet_units=[unit, unit2])
        print("two units:", r.info["infotexts"][0])
        assert "ControlNet 1:" in r.info["infotexts"][0]
        r = api.img2img(images=[Image.open(f"{gold}/controlnet/control_b.png")], prompt="a red circle", width=32,
                        height=32, steps=4, seed=3, denoising_strength=0.6, controlnet_units=[unit])
        print("img2img:", r.info["infotexts"][0])
        assert "Denoising strength: 0.6" in r.info["infotexts"][0] and "ControlNet 0:" in r.info["infotexts"][0]
    else:
        unit = webuiapi.ControlNetUnit(image=Image.open(f"{gold}/ip_adapter/ip_ref_a.png"), module="ip-adapter-auto",
                                       model="sd1_plus", weight=0.7)
        r = api.txt2img(prompt="a red circle", width=32, height=32, steps=4, seed=3, controlnet_units=[unit])
        print("ip-adapter:", r.info["infotexts"][0])
        assert 'Model: sd1_plus, Weight: 0.7' in r.info["infotexts"][0]
        unit.guidance_start = 0.5  # a guidance window on the IP-Adapter unit
        r = api.txt2img(prompt="a red circle", width=32, height=32, steps=4, seed=3, controlnet_units=[unit])
        print("ip-adapter, window:", r.info["infotexts"][0])
        assert 'Weight: 0.7, Guidance Start: 0.5, Guidance End: 1' in r.info["infotexts"][0]
    print("ok")


if __name__ == "__main__":
    main()
