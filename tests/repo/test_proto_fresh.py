"""The committed stubs in agentmesh/v1 are exactly what `make proto` generates from proto/ today."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PROTO_ROOT = REPO_ROOT / "proto"
STUBS_DIR = Path("agentmesh") / "v1"
# agentmesh.binpb: the descriptor set with comments that server reflection serves to grpcurl.
DESCRIPTOR_SET = "agentmesh.binpb"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi", DESCRIPTOR_SET)


def _generated_files(root: Path) -> dict[str, bytes]:
    return {
        path.name: path.read_bytes()
        for path in sorted((root / STUBS_DIR).glob("*"))
        if path.name.endswith(GENERATED_SUFFIXES)
    }


def _generate(out: Path) -> None:
    """Same command as `make proto`; the mypy-protobuf plugins live next to the venv's python."""
    protos = sorted(str(path.relative_to(PROTO_ROOT)) for path in (PROTO_ROOT / STUBS_DIR).glob("*.proto"))
    assert protos, f"no .proto files under {PROTO_ROOT / STUBS_DIR}"
    env = dict(os.environ, PATH=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")]))
    outputs = [f"--{kind}_out={out}" for kind in ("python", "grpc_python", "mypy", "mypy_grpc")]
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_ROOT}",
            *outputs,
            "--include_source_info",
            f"--descriptor_set_out={out / STUBS_DIR / DESCRIPTOR_SET}",
            *protos,
        ],
        cwd=PROTO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, f"protoc failed:\n{result.stderr}"


def test_committed_stubs_match_a_fresh_generation(tmp_path: Path) -> None:
    _generate(tmp_path)
    fresh = _generated_files(tmp_path)
    committed = _generated_files(REPO_ROOT)
    assert fresh, "protoc generated nothing"
    problems = [
        f"{STUBS_DIR / name}: differs"
        for name in sorted(fresh.keys() & committed.keys())
        if fresh[name] != committed[name]
    ]
    problems += [f"{STUBS_DIR / name}: missing" for name in sorted(fresh.keys() - committed.keys())]
    problems += [f"{STUBS_DIR / name}: no .proto generates it" for name in sorted(committed.keys() - fresh.keys())]
    assert not problems, "generated stubs are stale; run `make proto` and commit the result:\n  " + "\n  ".join(
        problems
    )
