"""Generate the Python code for proto/outrider/v1/*.proto into outrider/proto/v1/.

    python -m outrider.proto.generate          # regenerate
    python -m outrider.proto.generate --check  # exit 1 if the committed code is stale

protoc names generated imports after the .proto package path (`outrider.v1`);
they are rewritten to the importable location `outrider.proto.v1`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
PROTO_PACKAGE_DIR = PROTO_ROOT / "outrider" / "v1"
OUTPUT_DIR = Path(__file__).resolve().parent / "v1"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def _rewrite_imports(source: str) -> str:
    return source.replace("from outrider.v1 import", "from outrider.proto.v1 import")


def generate_to(out_dir: Path) -> dict[str, str]:
    """Run protoc for every .proto file; return {file name: generated text}."""
    protos = sorted(str(p.relative_to(PROTO_ROOT)) for p in PROTO_PACKAGE_DIR.glob("*.proto"))
    if not protos:
        raise SystemExit(f"no .proto files under {PROTO_PACKAGE_DIR}")
    well_known = str(resources.files("grpc_tools") / "_proto")
    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--pyi_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *protos,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed (see messages above)")
    generated = out_dir / "outrider" / "v1"
    return {
        path.name: _rewrite_imports(path.read_text())
        for path in sorted(generated.iterdir())
        if path.name.endswith(GENERATED_SUFFIXES)
    }


def stale_files() -> list[str]:
    """Names of generated files that differ from what protoc produces now."""
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_to(Path(tmp))
    committed = {p.name: p.read_text() for p in OUTPUT_DIR.iterdir() if p.name.endswith(GENERATED_SUFFIXES)}
    names = set(fresh) | set(committed)
    return sorted(name for name in names if fresh.get(name) != committed.get(name))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report stale generated files")
    args = parser.parse_args(argv)
    if args.check:
        stale = stale_files()
        for name in stale:
            print(f"stale: outrider/proto/v1/{name} (run `python -m outrider.proto.generate`)")
        return 1 if stale else 0
    with tempfile.TemporaryDirectory() as tmp:
        fresh = generate_to(Path(tmp))
    for old in OUTPUT_DIR.iterdir():
        if old.name.endswith(GENERATED_SUFFIXES) and old.name not in fresh:
            old.unlink()
    for name, text in fresh.items():
        (OUTPUT_DIR / name).write_text(text)
    print(f"generated {len(fresh)} files into {OUTPUT_DIR.relative_to(REPO_ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
