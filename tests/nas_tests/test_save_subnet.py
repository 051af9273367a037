"""Saved models reload, and their TorchScript / ONNX files run without this project."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from nas import Supernet, export_subnet, load_subnet, save_subnet
from search_spaces import get_space

BLOCK = textwrap.dedent("""
    import sys
    class _Block:
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in {'nas', 'kernels', 'search_spaces', 'predictors', 'ui'}:
                raise ImportError('project import blocked: ' + name)
    sys.meta_path.insert(0, _Block())
""")


@pytest.mark.parametrize("name", ["hybrid_vit_tiny", "hybrid_lm_tiny"])
def test_save_load_and_run_without_project(name, tmp_path):
    torch.manual_seed(0)
    space = get_space(name)
    net = Supernet(space).eval()
    # an arch with every mixer in it
    arch = space.sample(np.random.default_rng(11))
    for seed in range(100):
        mixers = {layer.mixer for s in arch.stages for layer in s.layers}
        if len(mixers) == 4:
            break
        arch = space.sample(np.random.default_rng(100 + seed))
    model = export_subnet(net, arch)
    files = save_subnet(model, arch, tmp_path / "out")
    assert {"arch.json", "layers.json", "weights.pt", "model.torchscript.pt"} <= set(files)
    state = torch.load(files["weights.pt"], weights_only=True)
    assert set(state) == set(model.state_dict())
    x = space.example_input(arch, 2, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        ref = net(x, arch)
        assert (load_subnet(tmp_path / "out")(x) - ref).abs().max() <= 1e-5
    np.save(tmp_path / "x.npy", x.numpy())
    np.save(tmp_path / "ref.npy", ref.numpy())
    script = BLOCK + textwrap.dedent(f"""
        import numpy as np, torch
        x = torch.from_numpy(np.load({str(tmp_path / 'x.npy')!r}))
        ref = np.load({str(tmp_path / 'ref.npy')!r})
        m = torch.jit.load({str(files['model.torchscript.pt'])!r})
        err = float(np.abs(m(x).detach().numpy() - ref).max())
        assert err <= 1e-5, err
        try:
            import onnxruntime
        except ImportError:
            print('no onnxruntime'); raise SystemExit(0)
        s = onnxruntime.InferenceSession({str(tmp_path / 'out' / 'model.onnx')!r})
        err = float(np.abs(s.run(None, {{'input': x.numpy()}})[0] - ref).max())
        assert err <= 1e-4, err
        print('ok')
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                         cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    if "model.onnx" in files:
        assert "ok" in out.stdout


def test_failed_save_leaves_nothing(tmp_path):
    space = get_space("hybrid_vit_tiny")
    net = Supernet(space)
    arch = space.smallest()
    model = export_subnet(net, arch)
    with pytest.raises(ValueError, match="does not match"):
        save_subnet(model, space.largest(), tmp_path / "out")
    assert not (tmp_path / "out").exists()
    assert list(tmp_path.iterdir()) == []
