"""The package's shape: the runtime never needs the build toolchain, and bundles change only through the writer."""

import ast
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from earful.export.writer import edit_bundle, new_bundle
from earful.models.bundle import Bundle, BundleError

ROOT = Path(__file__).resolve().parent.parent
BUILD_ONLY = {"torch", "onnx", "onnxscript", "transformers", "datasets", "sklearn"}
#: What loads a bundle and predicts, and every entry point that only serves or scores.
RUNTIME_FOLDERS = ("models", "serving", "batch")


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("folder", RUNTIME_FOLDERS)
def test_runtime_folders_import_no_build_toolchain(folder):
    found = {
        str(path.relative_to(ROOT)): sorted(_imported_roots(path) & BUILD_ONLY)
        for path in sorted((ROOT / folder).rglob("*.py"))
    }
    assert {name: mods for name, mods in found.items() if mods} == {}


def test_runtime_predicts_with_the_build_toolchain_unimportable(tiny_bundle):
    code = f"""
import sys
for name in {sorted(BUILD_ONLY)!r}:
    sys.modules[name] = None  # any import of it fails
from earful.cli import main
import earful.batch.score, earful.batch.report, earful.serving.service, earful.eval.run
from earful.models.predictor import Predictor
print(Predictor.load({str(tiny_bundle)!r}).predict(["my parcel went to the wrong address"])[0].complaint_type.label)
raise SystemExit(main(["classify", "--bundle", {str(tiny_bundle)!r}, "hello there"]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert lines[0] in {"order_error", "product", "poor_service", "none"}
    assert json.loads(lines[1])["status"] == "ok"


def test_a_failed_edit_leaves_the_bundle_as_it_was(tiny_bundle, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "b")
    before = {p.name: p.read_bytes() for p in bundle.iterdir()}
    with pytest.raises(RuntimeError, match="half way"), edit_bundle(bundle) as writer:
        writer.update_json("bundle.json", {"version": "9.9.9"})
        writer.write_text("MODEL_CARD.md", "# changed\n")
        raise RuntimeError("half way")
    assert {p.name: p.read_bytes() for p in bundle.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]  # no staged copy left behind


def test_an_edit_is_sealed_and_verifies(tiny_bundle, tmp_path):
    bundle = shutil.copytree(tiny_bundle, tmp_path / "b")
    with edit_bundle(bundle) as writer:
        writer.update_json("bundle.json", {"version": "9.9.9"})
    assert Bundle.load(bundle).version == "9.9.9"
    (bundle / "bundle.json").write_text((bundle / "bundle.json").read_text().replace("9.9.9", "1.0.0"))
    with pytest.raises(BundleError, match="bundle.json"):  # a change made around the writer is caught
        Bundle.load(bundle)
    with pytest.raises(BundleError), edit_bundle(bundle):
        pass  # and a bundle that does not verify is not edited


def test_a_new_bundle_never_replaces_a_folder_unasked(tiny_bundle, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="--overwrite"), new_bundle(out):
        pass
    assert (out / "notes.txt").read_text() == "mine"
    with new_bundle(out, overwrite=True) as writer:
        for p in Path(tiny_bundle).iterdir():
            writer.copy_in(p, p.name)
    assert Bundle.load(out).name and not (out / "notes.txt").exists()
