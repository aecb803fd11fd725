"""Lay out the Spark job code for one version, as the artifacts bucket holds it.

build/jobs/<version>/
  spark_jobs.zip                   pipeline_core/ + spark_jobs/ (--py-files)
  spark_jobs/<job>/main.py         each job's entry point
  datasets/<name>.dqdl             the rules files the jobs evaluate (--rules)
  manifest.json                    version, files and their sha256

The zip is reproducible (sorted entries, fixed timestamps), so the same tree gives the same bytes.

usage: python scripts/package_jobs.py <version> [--root .] [--out build/jobs]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import re
import shutil
import sys
import zipfile
from pathlib import Path

PACKAGES = ("pipeline_core", "spark_jobs")
FIXED_TIME = (2020, 1, 1, 0, 0, 0)
VERSION = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _python_files(root: Path, package: str) -> list[Path]:
    base = root / package
    if not (base / "__init__.py").is_file():
        raise SystemExit(f"error: {base} is not a Python package (no __init__.py)")
    return sorted(p for p in base.rglob("*.py") if "__pycache__" not in p.parts)


def build_zip(root: Path, target: Path) -> list[str]:
    names = []
    # The job reads the warehouse's column limits from the migrations it ships with (one
    # source of truth for what the tables accept: spark_jobs/common/warehouse.py).
    files = [p for package in PACKAGES for p in _python_files(root, package)]
    files += sorted((root / "warehouse" / "migrations").glob("*.sql"))
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            name = path.relative_to(root).as_posix()
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
            names.append(name)
    return names


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def package(root: Path, out: Path, version: str) -> Path:
    if not VERSION.match(version):
        raise SystemExit(f"error: version {version!r} must match {VERSION.pattern}")
    dest = out / version
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)

    build_zip(root, dest / "spark_jobs.zip")
    entry_points = sorted((root / "spark_jobs").glob("*/main.py"))
    if not entry_points:
        raise SystemExit("error: no spark_jobs/<job>/main.py found")
    for main in entry_points:
        target = dest / main.relative_to(root)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(main, target)
    rules = sorted((root / "datasets").glob("*.dqdl"))
    (dest / "datasets").mkdir()
    for path in rules:
        shutil.copy2(path, dest / "datasets" / path.name)

    files = sorted(p for p in dest.rglob("*") if p.is_file())
    manifest = {
        "code_version": version,
        "files": {p.relative_to(dest).as_posix(): _sha256(p) for p in files},
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("version")
    parser.add_argument("--root", default=".", type=Path)
    parser.add_argument("--out", default="build/jobs", type=Path)
    args = parser.parse_args(argv)
    dest = package(args.root.resolve(), args.out, args.version)
    for path in sorted(p for p in dest.rglob("*") if p.is_file()):
        print(f"  {path}")
    print(f"job code {args.version} packaged in {dest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
