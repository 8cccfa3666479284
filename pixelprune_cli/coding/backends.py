"""Which preprocessing the kept pixels reproduce: a backend names the processor it matches.

- `pil`: transformers' `Qwen2VLImageProcessorPil`. Pillow's BICUBIC on uint8.
- `torchvision`: transformers' `Qwen2VLImageProcessor`, the class `AutoProcessor`
  picks when torchvision is installed. torch's antialiased bicubic on uint8
  (its own fixed-point arithmetic, not Pillow's), then a fused rescale and
  normalise in float32. The resize is torchvision's own call, not a copy of it:
  the kernel is the spec, and it may differ between CPU instruction sets.
- `qwen-vl-utils`: Qwen's `fetch_image` (0.0.14), whose output then goes through
  either processor without a second resize. Pillow's resize, but no EXIF
  orientation, its own RGB conversion and its own pixel bounds.

Decoding and the RGB conversion of `pil` and `torchvision` are the same steps
(`preprocess`); only the resize and the float steps differ.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from pixelprune_cli.coding.preprocess import MAX_ASPECT_RATIO, convert_rgb, load_image, model_size, resize_rgb
from pixelprune_cli.coding.presets import BACKENDS, DEFAULT_BACKEND, Preset, resolve_preset
from pixelprune_cli.errors import ConfigError, ResizeFailure

# The processor class each backend's rows match (and the one that gives their pixel_values).
MATCHES = {
    "pil": "Qwen2VLImageProcessorPil",
    "torchvision": "Qwen2VLImageProcessor",
    "qwen-vl-utils": "qwen_vl_utils.fetch_image, then Qwen2VLImageProcessor or Qwen2VLImageProcessorPil",
}
# Processor backends: the two ways transformers turns uint8 pixels into float32 pixel_values.
PROCESSOR_BACKENDS = ("pil", "torchvision")
# fetch_image's default bounds, in merged tokens (IMAGE_MIN_TOKEN_NUM, IMAGE_MAX_TOKEN_NUM).
QWEN_VL_UTILS_TOKENS = (4, 16384)
EXTRA = "pip install 'pixelprune[torchvision]'"


def check_backend(backend: str) -> None:
    """ConfigError for an unknown backend, or for torchvision when it cannot be imported."""
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend == "torchvision":
        try:
            import torch  # noqa: F401
            from torchvision.transforms.v2 import functional  # noqa: F401
        except Exception as exc:  # ImportError, or a torchvision built for another torch (RuntimeError)
            raise ConfigError(f"--backend torchvision needs torch and torchvision ({EXTRA}): "
                              f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}") from None


def preset_for(backend: str, preset: str | dict | Preset, **overrides) -> Preset:
    """resolve_preset, with fetch_image's own pixel bounds for a qwen-vl-utils preset given by name.

    fetch_image bounds an image to 4..16384 merged tokens whatever the model;
    Qwen3-VL's processor asks for at least 256 (65,536 px). Explicit
    min_pixels/max_pixels overrides win, as fetch_image's `min_pixels` keys do.
    """
    if backend != "qwen-vl-utils" or not isinstance(preset, str):
        return resolve_preset(preset, **overrides)
    sizes = {k: overrides.pop(k, None) for k in ("patch_size", "merge_size")}
    base = resolve_preset(preset, **sizes)
    low, high = (tokens * base.token_size**2 for tokens in QWEN_VL_UTILS_TOKENS)
    bounds = {"min_pixels": low, "max_pixels": high, **{k: v for k, v in overrides.items() if v is not None}}
    return resolve_preset(base, **bounds)


def runtime(backend: str) -> dict:
    """The library versions the backend's pixels depend on, for the output's metadata."""
    import PIL

    found = {"pillow": PIL.__version__}
    if backend == "torchvision":
        import torch
        import torchvision

        found.update(torch=torch.__version__, torchvision=torchvision.__version__,
                     cpu=torch.backends.cpu.get_cpu_capability())
    return found


# ------------------------------------------------------------- image -> uint8 (H, W, 3)

def load(image: Image.Image, backend: str) -> Image.Image:
    """Decode an opened image: EXIF orientation applied, except by qwen-vl-utils, which ignores it."""
    return load_image(image, orient=backend != "qwen-vl-utils")


def target_size(size: tuple[int, int], preset: Preset, backend: str) -> tuple[int, int]:
    """(width, height) the backend resizes an image of `size` (width, height) to."""
    if backend != "qwen-vl-utils":
        return model_size(size, preset)
    width, height = size
    new_height, new_width = qwen_vl_utils_smart_resize(height, width, preset.token_size, preset.min_pixels,
                                                       preset.max_pixels)
    return new_width, new_height


def qwen_vl_utils_smart_resize(height: int, width: int, factor: int, min_pixels: int,
                               max_pixels: int) -> tuple[int, int]:
    """fetch_image's smart_resize: the processor's, but rounding up to one factor first and not after the floor."""
    if height < 1 or width < 1:
        raise ResizeFailure(f"image has no pixels ({width}x{height})")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ResizeFailure(f"aspect ratio {max(height, width) / min(height, width):.1f} of {width}x{height} is "
                            f"over {MAX_ASPECT_RATIO}, which qwen-vl-utils refuses")
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = math.floor(height / beta / factor) * factor
        w_bar = math.floor(width / beta / factor) * factor
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    if h_bar < 1 or w_bar < 1:  # fetch_image would ask Pillow for an empty image
        raise ResizeFailure(f"qwen-vl-utils resizes {width}x{height} to {w_bar}x{h_bar}, an empty image")
    return h_bar, w_bar


def to_rgb(image: Image.Image, backend: str) -> Image.Image:
    """RGB as the backend makes it. qwen-vl-utils pastes RGBA onto white and converts every other mode
    plainly, so LA, PA and palette transparency lose their alpha (onto black) there."""
    if backend != "qwen-vl-utils":
        return convert_rgb(image)
    if image.mode == "RGBA":
        rgb = Image.new("RGB", image.size, (255, 255, 255))
        rgb.paste(image, mask=image.getchannel("A"))
        return rgb
    return image.convert("RGB")


def resize(rgb: Image.Image, target: tuple[int, int], backend: str) -> np.ndarray:
    """An RGB image resized to target (width, height) by the backend, as C-contiguous uint8 (H, W, 3)."""
    if backend == "torchvision":
        return torchvision_resize(rgb, target)
    resized = resize_rgb(rgb, target)
    key = rgb.info.get("transparency") if backend == "qwen-vl-utils" else None
    if key is not None:
        # fetch_image's RGB image keeps a PNG/palette transparency key through its resize, and the
        # processor's RGB conversion then puts every pixel that equals the key onto white.
        keyed = Image.fromarray(resized)
        keyed.info["transparency"] = key
        resized = np.asarray(convert_rgb(keyed))
    return resized


def resize_bytes(size: tuple[int, int], backend: str) -> int:
    """Memory the backend's resize takes beyond the RGB image: torchvision's array and channel-first copies."""
    return 6 * size[0] * size[1] if backend == "torchvision" else 0


def torchvision_resize(rgb: Image.Image, target: tuple[int, int]) -> np.ndarray:
    """torchvision's resize as Qwen2VLImageProcessor calls it: a (1, 3, H, W) contiguous uint8
    tensor, BICUBIC, antialias on; the same call returns the input when the size does not change."""
    import torch
    from torchvision.transforms.v2 import functional as tvF

    hwc = np.array(rgb)  # writable, as the processor's np.array: torch warns about read-only arrays
    chw = torch.from_numpy(hwc).permute(2, 0, 1).contiguous()
    del hwc
    try:
        out = tvF.resize(chw.unsqueeze(0), [target[1], target[0]],
                         interpolation=tvF.InterpolationMode.BICUBIC, antialias=True)
    except (MemoryError, RuntimeError) as exc:  # torch reports an allocation failure as RuntimeError
        if isinstance(exc, RuntimeError) and "memory" not in str(exc).lower():
            raise
        raise ResizeFailure(f"out of memory resizing {rgb.width}x{rgb.height} to {target[0]}x{target[1]}") from None
    del chw
    return np.ascontiguousarray(out[0].permute(1, 2, 0).numpy())


def resize_for_model(image: Image.Image, preset: Preset, backend: str = "pil") -> np.ndarray:
    """A decoded image as the backend's processor sees it: RGB, resized, uint8 (H, W, 3), C-contiguous."""
    return resize(to_rgb(image, backend), target_size(image.size, preset, backend), backend)


# ------------------------------------------------------------- uint8 -> float32 pixel_values

def normalisation_table(preset: Preset, processor_backend: str = "pil") -> np.ndarray:
    """(3, 256) float32: each uint8 level of each channel as that processor backend's pixel_values hold it.

    pil rescales in float64, casts to float32, then subtracts the float32 mean
    and divides by the float32 std (a table built with the same steps gives the
    same bits for every pixel); torchvision folds 1/255 into float32 mean and
    std (mean * 255, std * 255) and computes (x - mean) / std in float32. The
    two differ in the last bits.
    """
    mean = np.asarray(preset.image_mean, dtype=np.float32)[:, None]
    std = np.asarray(preset.image_std, dtype=np.float32)[:, None]
    if processor_backend == "pil":
        levels = (np.arange(256, dtype=np.uint8).astype(np.float64) * (1 / 255)).astype(np.float32)
        return (levels[None, :] - mean) / std
    scale = np.float32(1.0 / (1 / 255))  # the processor's 1 / rescale_factor, as a float32 multiplier
    return (np.arange(256, dtype=np.float32)[None, :] - mean * scale) / (std * scale)


def rows_backend(meta) -> str:
    """The backend an output's rows were coded with (pil for outputs older than the setting, or a preset)."""
    return str(meta.get("backend", DEFAULT_BACKEND)) if isinstance(meta, dict) else DEFAULT_BACKEND


def default_processor_backend(backend: str) -> str:
    """The processor whose float steps a backend's rows get by default. qwen-vl-utils needs
    torchvision, so AutoProcessor gives its users the torchvision class."""
    return "pil" if backend == "pil" else "torchvision"


def processor_backend(processor) -> str | None:
    """'pil' or 'torchvision' from the image processor's class (or the processor holding it); None if neither."""
    image_processor = getattr(processor, "image_processor", processor)
    names = {cls.__name__ for cls in type(image_processor).__mro__}
    if "TorchvisionBackend" in names:
        return "torchvision"
    if "PilBackend" in names:
        return "pil"
    return None


def check_processor_fits(backend: str, processor) -> str:
    """The processor backend to normalise with; ValueError when the rows were resized for another one."""
    found = processor_backend(processor)
    if found is None:
        return default_processor_backend(backend)
    if backend in PROCESSOR_BACKENDS and found != backend:
        name = type(getattr(processor, "image_processor", processor)).__name__
        raise ValueError(f"the rows were coded with --backend {backend} ({MATCHES[backend]}) but the processor is "
                         f"{name} ({found}); recode with --backend {found}, or load the processor with "
                         f"backend={backend!r}")
    return found


def pillow_runtime_warning(meta) -> str | None:
    """One line when the rows were resized by a Pillow whose resize pass order differs from this one's.

    Pillow 13 runs the vertical pass first when the height shrinks by more
    than twice the width's shrink; earlier versions always ran horizontal
    first, so some images resize to different bytes.
    """
    import PIL

    if not isinstance(meta, dict) or rows_backend(meta) == "torchvision":
        return None
    made = str((meta.get("runtime") or {}).get("pillow") or "")
    then, now = _major(made), _major(PIL.__version__)
    if then is None or now is None or (then >= 13) == (now >= 13):
        return None
    return (f"the rows were resized with Pillow {made} and this processor runs Pillow {PIL.__version__}; "
            "Pillow 13 changed the order of the resize passes, so some images' pixels differ from this "
            "processor's: recode them here to match it")


def _major(version: str) -> int | None:
    head = version.split(".")[0]
    return int(head) if head.isdigit() else None
