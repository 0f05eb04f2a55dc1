#!/usr/bin/python3
"""PyTorch side of tests/test_layer_parity.c (run by that test; not alone).

Usage: /usr/bin/python3 tests/parity_layers.py CASE_DIR [CASE_DIR ...]

Each CASE_DIR holds one layer's case, written by the C test:
  meta.txt     "layer TYPE", "shape ROWS C H W", "train 0|1", "inputs REF..."
               (whole | a | b), "key NAME VALUE" for the layer's keys,
               "view NAME OFFSET COUNT DIM..." per parameter and
               "buffer NAME OFFSET COUNT DIM..." per buffer
  x.npy        (ROWS, C*H*W) float32 input
  dy.npy       (1, n) float32 gradient of the output
  params.npy   (1, P) float32; buffers.npy (1, B) float32 (before the step)
The layer is computed with torch ops (no code shared with the C side):
  torch_y.npy (1, n), torch_dx.npy (ROWS, C*H*W), torch_grads.npy (1, P),
  torch_buffers.npy (1, B) (after the forward: batch norm's running
  statistics move in training). Exit status 77: torch cannot be imported.
"""
import os
import sys

try:
    import numpy as np
    import torch
    import torch.nn.functional as F
except ImportError as exc:  # the C test turns this into a failure with advice
    print(f"parity_layers: cannot import torch/numpy with {sys.executable} ({exc}); "
          "`make deps` (run by `make test`) installs Debian's python3-torch", file=sys.stderr)
    sys.exit(77)


def read_meta(path):
    meta = {"views": [], "buffers": [], "keys": {}}
    with open(path) as f:
        for line in f:
            tok = line.split()
            if not tok:
                continue
            if tok[0] in ("view", "buffer"):
                entry = (tok[1], int(tok[2]), int(tok[3]), tuple(int(s) for s in tok[4:]))
                meta["views" if tok[0] == "view" else "buffers"].append(entry)
            elif tok[0] == "key":
                meta["keys"][tok[1]] = tok[2]
            else:
                meta[tok[0]] = tok[1:]
    return meta


def correlation(fa, fb, d, dil):
    """Li et al. 2018: per displacement (dy, dx) in [-d, d]^2 (times dil),
    sum over channels of fa(p) * fb(p + disp) / C, zero outside the map."""
    n, c, h, w = fa.shape
    r = d * dil
    fbp = F.pad(fb, (r, r, r, r))
    out = []
    for ky in range(-d, d + 1):
        for kx in range(-d, d + 1):
            sy, sx = r + ky * dil, r + kx * dil
            out.append((fa * fbp[:, :, sy:sy + h, sx:sx + w]).sum(1) / c)
    return torch.stack(out, 1)


def run_case(d):
    meta = read_meta(os.path.join(d, "meta.txt"))
    layer = meta["layer"][0]
    rows, c, h, w = (int(s) for s in meta["shape"])
    train = meta["train"][0] == "1"
    keys = meta["keys"]
    x = torch.from_numpy(np.load(os.path.join(d, "x.npy")).reshape(rows, c, h, w)).requires_grad_(True)
    params = np.load(os.path.join(d, "params.npy")).reshape(-1)
    buffers = np.load(os.path.join(d, "buffers.npy")).reshape(-1)
    views = {}
    for name, off, count, shape in meta["views"]:
        views[name.split(".")[-1]] = torch.from_numpy(params[off:off + count].reshape(shape).copy()).requires_grad_(True)
    bufs = {}
    for name, off, count, shape in meta["buffers"]:
        bufs[name.split(".")[-1]] = torch.from_numpy(buffers[off:off + count].reshape(shape).copy())
    half = rows // 2
    ins = [x if r == "whole" else x[:half] if r == "a" else x[half:] for r in meta["inputs"]]

    if layer == "concat":
        y = torch.cat(ins, 1)
    elif layer == "add":
        y = sum(ins[1:], ins[0])
    elif layer == "difference":
        y = ins[0] - ins[1]
    elif layer == "absdiff":
        y = (ins[0] - ins[1]).abs()
    elif layer == "upsample":
        mode = keys["mode"]
        y = F.interpolate(ins[0], scale_factor=int(keys["factor"]), mode=mode,
                          align_corners=False if mode == "bilinear" else None)
    elif layer == "deconv2d":
        y = F.conv_transpose2d(ins[0], views["weight"], views["bias"], stride=int(keys["stride"]),
                               padding=int(keys["pad"]))
    elif layer == "avgpool":
        y = F.adaptive_avg_pool2d(ins[0], 1)
    elif layer == "batchnorm":
        y = F.batch_norm(ins[0], bufs["running_mean"], bufs["running_var"], views["weight"], views["bias"],
                         training=train, momentum=float(keys["momentum"]), eps=float(keys["eps"]))
        if train:
            bufs["num_batches_tracked"] += 1
    elif layer == "leaky_relu":
        y = F.leaky_relu(ins[0], negative_slope=float(keys["slope"]))
    elif layer == "tanh":
        y = torch.tanh(ins[0])
    elif layer == "softmax":
        y = torch.softmax(ins[0], dim=1)
    elif layer == "correlation":
        disp, dil = int(keys["displacement"]), int(keys["dilation"])
        if len(ins) == 2:
            y = correlation(ins[0], ins[1], disp, dil)
        else:  # both directions: a against its partner b, then b against a
            y = torch.cat([correlation(x[:half], x[half:], disp, dil), correlation(x[half:], x[:half], disp, dil)])
    else:
        raise SystemExit(f"parity_layers: no torch version of layer {layer}")

    dy = torch.from_numpy(np.load(os.path.join(d, "dy.npy")).reshape(y.shape))
    y.backward(dy)
    grads = np.zeros_like(params)
    for name, off, count, _ in meta["views"]:
        grads[off:off + count] = views[name.split(".")[-1]].grad.numpy().reshape(-1)
    after = np.zeros_like(buffers)
    for name, off, count, _ in meta["buffers"]:
        after[off:off + count] = bufs[name.split(".")[-1]].numpy().reshape(-1)
    np.save(os.path.join(d, "torch_y.npy"), y.detach().numpy().reshape(1, -1).astype(np.float32))
    np.save(os.path.join(d, "torch_dx.npy"), x.grad.numpy().reshape(rows, -1).astype(np.float32))
    np.save(os.path.join(d, "torch_grads.npy"), grads.reshape(1, -1).astype(np.float32))
    np.save(os.path.join(d, "torch_buffers.npy"), after.reshape(1, -1).astype(np.float32))


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    torch.set_num_threads(1)
    for d in sys.argv[1:]:
        run_case(d)


if __name__ == "__main__":
    main()
