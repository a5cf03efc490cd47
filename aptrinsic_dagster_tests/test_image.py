"""deploy/Dockerfile without Docker (no daemon on these machines): its COPY and uv steps replayed in a temp
folder, then the code location loads from that environment as the image's CMD would load it."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .helpers import ROOT

# The one step after WORKDIR only an image needs: its runtime user (uv is installed before WORKDIR).
_SYSTEM_STEPS = ("useradd ",)


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(instruction, arguments) after WORKDIR, continuation lines joined, comments dropped."""
    text = dockerfile.read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    steps = [tuple(line.split(None, 1)) for line in lines]
    start = next(i for i, (op, _) in enumerate(steps) if op == "WORKDIR")
    return steps[start + 1 :]


@pytest.mark.slow
def test_the_images_install_steps_give_an_environment_that_loads_the_code_location(tmp_path: Path):
    app = tmp_path / "app"
    app.mkdir()
    # Not UV_LINK_MODE=copy or UV_COMPILE_BYTECODE (they only make the image self-contained and start
    # faster); the lock decides what is installed either way. uv.lock's wheels come from uv's cache.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "UV_PROJECT_ENVIRONMENT")}
    env |= {"UV_PYTHON_DOWNLOADS": "never", "UV_PYTHON": sys.executable}
    ran, skipped = [], []
    for op, args in _instructions(ROOT / "deploy" / "Dockerfile"):
        if op == "COPY":
            *sources, dest = shlex.split(args)
            for source in sources:
                target = (app / dest / Path(source).name) if dest.endswith("/") else app / dest
                if (ROOT / source).is_dir():
                    # As a .dockerignore would: no generated dbt target, no caches from this checkout.
                    ignore = shutil.ignore_patterns("target", "logs", "__pycache__", ".user.yml")
                    shutil.copytree(ROOT / source, target, ignore=ignore)
                else:
                    target.parent.mkdir(parents=True, exist_ok=True)  # as COPY creates missing folders
                    shutil.copy(ROOT / source, target)
        elif op == "RUN":
            if args.startswith(_SYSTEM_STEPS):
                skipped.append(args)
                continue
            done = subprocess.run(args, shell=True, cwd=app, env=env, capture_output=True, text=True)
            assert done.returncode == 0, f"{args}: {done.stdout[-2000:]} {done.stderr[-2000:]}"
            ran.append(args)
    assert len(skipped) == 1 and any("uv sync --frozen --no-dev" in r for r in ran), (ran, skipped)

    # The image's environment: no dev group (no pytest), and the code location its CMD serves loads.
    python = app / ".venv" / "bin" / "python"
    assert subprocess.run([str(python), "-c", "import pytest"], capture_output=True).returncode != 0
    assert (app / "aptrinsic_dbt" / "target" / "manifest.json").exists(), "the manifest was parsed in the build"
    # Both code locations run from this one image (deploy/helm-values.yaml: two user deployments).
    load = (
        "import sys, dlt, importlib; d = importlib.import_module(sys.argv[1]).defs(); "
        "g = d.resolve_asset_graph(); "
        "print(len([k for k in g.get_all_asset_keys() if g.get(k).is_materializable]), "
        "sorted(j.name for j in d.jobs), dlt.config.get('normalize.parquet_normalizer.add_dlt_load_id'))"
    )
    image_env = env | {
        "APTRINSIC_DESTINATION": "postgres",
        "APTRINSIC_PIPELINES_DIR": str(tmp_path / "pipelines"),
        "DAGSTER_HOME": str(tmp_path),
    }
    loaded = {}
    for module in ("aptrinsic_dagster.definitions", "aptrinsic_dagster.marts_definitions"):
        done = subprocess.run([str(python), "-c", load, module], cwd=app, env=image_env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-3000:]
        loaded[module] = done.stdout
    loads, marts = loaded.values()
    assert loads.split()[0] == "22" and marts.split()[0] == "6", loaded
    assert "'aptrinsic_daily_events'" in loads and "'aptrinsic_snapshots'" in loads, loads
    assert "'aptrinsic_marts'" in marts, marts
    assert loads.split()[-1] == "True", "dlt's settings (.dlt/config.toml) are in the image"
