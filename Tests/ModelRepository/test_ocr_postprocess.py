"""Unit tests of ocr_engine's post-processing (ppocr.py), no Triton needed."""

import numpy as np
import pytest

from ocr_support.fixtures import ppocr

CHARS = ["a", "b", "c"]  # classes: 0 blank, 1 a, 2 b, 3 c, 4 space


def _probs(indices, p=0.9, classes=5):
    out = np.full((1, len(indices), classes), (1 - p) / (classes - 1), dtype=np.float32)
    for t, i in enumerate(indices):
        out[0, t, i] = p
    return out


@pytest.mark.parametrize(
    "indices, text",
    [
        ([1, 1, 1], "a"),  # repeats merge
        ([1, 0, 1], "aa"),  # a blank separates equal characters
        ([2, 4, 3], "b c"),  # the space is the last class
        ([0, 0, 0], ""),
        ([3, 3, 0, 2, 2, 4, 4, 1], "cb a"),
    ],
)
def test_ctc_greedy_decoding(indices, text):
    decoder = ppocr().CTCDecoder(CHARS)
    assert decoder.num_classes == 5
    [(got, confidence)] = decoder.decode(_probs(indices))
    assert got == text
    assert confidence == (pytest.approx(0.9) if text else 0.0)


def test_ctc_confidence_is_mean_of_kept_steps():
    probs = _probs([1, 1, 2])
    probs[0, 0, 1] = 0.5  # first of the merged pair: the kept step
    probs[0, 1, 1] = 0.99  # dropped duplicate, must not count
    [(text, confidence)] = ppocr().CTCDecoder(CHARS).decode(probs)
    assert text == "ab"
    assert confidence == pytest.approx((0.5 + 0.9) / 2)


def _box(x, y, w=50, h=20):
    return np.array([[x, y], [x + w, y], [x + w, y + h], [x, y + h]], dtype=np.float64)


def test_reading_order_rows_then_left_to_right():
    # Second row's right word sits 4 px higher than its left word.
    boxes = [_box(200, 104), _box(10, 108), _box(150, 10), _box(20, 12)]
    order = ppocr().reading_order(boxes)
    assert order == [3, 2, 1, 0]


def test_recognition_batch_geometry():
    module = ppocr()
    short = np.full((30, 60, 3), 255, dtype=np.uint8)  # ratio 2 -> 96 px
    long = np.full((20, 300, 3), 0, dtype=np.uint8)  # ratio 15 -> 720 px
    batch = module.recognition_batch([short, long])
    assert batch.shape == (2, 3, 48, 720)
    assert np.allclose(batch[0, :, :, :96], 1.0)  # white -> (1 - 0.5) / 0.5
    assert np.all(batch[0, :, :, 96:] == 0.0)  # padding is zero, as rapidocr
    assert np.allclose(batch[1], -1.0)
    assert module.recognition_batch([short]).shape == (1, 3, 48, 320)  # minimum width
    assert module.recognition_batch([long], max_width=400).shape == (1, 3, 48, 400)


def test_recognition_groups_bound_padding_and_batch():
    module = ppocr()
    crops = [np.zeros((10, w, 3), dtype=np.uint8) for w in (20, 50, 60, 100, 150, 400, 45)]
    groups = module.recognition_groups(crops, max_batch=32)
    # Ratios 2..6 count as 6.67 (the 320 px minimum); up to twice that (10)
    # joins them; 15 starts a batch, and 40 is more than twice 15.
    assert groups == [[0, 6, 1, 2, 3], [4], [5]]
    assert all(len(g) <= 2 for g in module.recognition_groups(crops, max_batch=2))
    assert sorted(sum(module.recognition_groups(crops, max_batch=2), [])) == list(range(7))


def test_detect_boxes_finds_and_unclips_a_text_region():
    module = ppocr()
    prob = np.zeros((96, 192), dtype=np.float32)
    prob[40:52, 30:150] = 0.95  # a 120 x 12 text kernel
    prob[5:7, 5:7] = 0.95  # a speck: too small to be text
    boxes = module.detect_boxes(prob, module.DetectionSettings())
    assert len(boxes) == 1
    box = boxes[0]
    # DB kernels are shrunk text; unclip grows them back by area*1.6/perimeter.
    assert box[0][0] < 30 and box[1][0] > 149
    assert box[0][1] < 40 and box[3][1] > 51
    assert np.all(box[:, 0] <= 191) and np.all(box[:, 1] <= 95)


def test_weak_regions_are_not_boxes():
    module = ppocr()
    prob = np.zeros((64, 128), dtype=np.float32)
    prob[20:40, 20:100] = 0.4  # above the 0.3 pixel threshold, below the 0.5 box score
    assert module.detect_boxes(prob, module.DetectionSettings()) == []


def test_bound_detector_input_shrinks_banners_and_keeps_coordinates():
    module = ppocr()
    h, w = 736, 29440
    image = np.zeros((h, w, 3), dtype=np.uint8)
    x = np.zeros((1, 3, h, w), dtype=np.float32)
    scale = np.array([60 / h, 2400 / w], dtype=np.float32)
    x2, image2, scale2 = module.bound_detector_input(x, image, scale, 2048 * 2048, 8192)
    new_h, new_w = image2.shape[:2]
    assert new_h * new_w <= 2048 * 2048 and max(new_h, new_w) <= 8192
    assert new_h % 32 == 0 and new_w % 32 == 0 and x2.shape == (1, 3, new_h, new_w)
    # The far corner still maps to the original image's corner.
    assert new_h * scale2[0] == pytest.approx(60, rel=1e-5)
    assert new_w * scale2[1] == pytest.approx(2400, rel=1e-5)
    assert np.allclose(x2, -1.0)  # black, normalised


def test_bound_detector_input_pads_ragged_sides_black():
    module = ppocr()
    image = np.full((40, 70, 3), 255, dtype=np.uint8)
    x = np.ones((1, 3, 40, 70), dtype=np.float32)
    scale = np.array([1.0, 1.0], dtype=np.float32)
    x2, image2, scale2 = module.bound_detector_input(x, image, scale, 2048 * 2048)
    assert x2.shape == (1, 3, 64, 96) and image2.shape == (64, 96, 3)
    assert np.all(x2[:, :, :40, :70] == 1.0) and np.all(x2[:, :, 40:, :] == -1.0)
    assert np.all(image2[40:] == 0) and np.array_equal(scale2, scale)


@pytest.mark.parametrize(
    "shapes, scale",
    [
        (((1, 3, 64, 64), (32, 64, 3)), (1.0, 1.0)),
        (((3, 64, 64), (64, 64, 3)), (1.0, 1.0)),
        (((1, 3, 64, 64), (64, 64, 3)), (0.0, 1.0)),
        (((1, 3, 64, 64), (64, 64, 3)), (float("nan"), 1.0)),
    ],
)
def test_contract_violations_raise_input_error(shapes, scale):
    module = ppocr()
    x = np.zeros(shapes[0], dtype=np.float32)
    image = np.zeros(shapes[1], dtype=np.uint8)
    with pytest.raises(module.InputError):
        module.check_inputs(x, image, np.array(scale, dtype=np.float32))
