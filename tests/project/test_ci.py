"""CI and the README agree: one test command, a fresh environment, outputs outside the source tree."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _readme_commands() -> list[str]:
    block = re.search(r"```bash\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    return [line for line in block.splitlines() if line and not line.startswith("#")]


MAIN_JOB = ("dagl-infer jpeg ../shared/datasets/classic5/jpeg_q10/barbara.jpeg -o out/barbara.png "
            "--reference ../shared/datasets/classic5/barbara.bmp")


def test_readme_top_is_exactly_two_commands_install_and_test():
    install, test = _readme_commands()
    assert "python3 -m venv" in install and "pip install torch==2.13.0" in install
    assert "pip install -e '.[test]'" in install
    assert install.split(" && ")[-1] == MAIN_JOB
    assert test == "tools/test.sh"


@pytest.mark.slow
def test_the_readme_main_job_restores_barbara_with_the_shipped_weights(datasets_dir, tmp_path):
    """The first command's job, as written but into a scratch folder: the shipped jpeg weights on the CPU
    raise the PSNR of the stored MATLAB q10 barbara against its clean original."""
    args = MAIN_JOB.replace("../shared/datasets", str(datasets_dir)).replace("out/", f"{tmp_path}/").split()
    done = subprocess.run([str(Path(sys.executable).parent / args[0]), *args[1:], "--device", "cpu"], cwd=ROOT,
                          capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, done.stderr
    [(before, after)] = re.findall(r"barbara.jpeg: PSNR ([\d.]+) -> ([\d.]+) dB against barbara.bmp", done.stderr)
    assert float(before) == pytest.approx(25.79, abs=0.01)  # the stored JPEG, as dagl-eval scored it (docs/eval)
    assert float(after) > float(before) + 0.2
    assert (tmp_path / "barbara.png").is_file()


def test_main_job_output_folder_is_ignored_by_git():
    assert "/out/" in (ROOT / ".gitignore").read_text().splitlines()


def test_ci_makes_a_fresh_venv_and_runs_the_readme_test_command():
    script = (ROOT / ".ci" / "run").read_text()
    steps = [line.strip() for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    assert any(re.fullmatch(r'venv="\$\(mktemp -d\)/venv"', step) for step in steps)
    assert 'python3 -m venv "$venv"' in steps and '. "$venv/bin/activate"' in steps
    install = [step for step in steps if step.startswith("python3 -m pip install")]
    assert install == ["python3 -m pip install -q torch==2.13.0", "python3 -m pip install -q -e '.[test]'"]
    # the serving environment, made the documented way, then the README's test command, which runs the serving
    # tests in it too (nvidia-pytriton pins numpy < 2)
    assert steps[-2:] == ['SERVE_VENV="$(dirname "$venv")/serve-venv" tools/serve-env.sh',
                          'SERVE_PYTHON="$(dirname "$venv")/serve-venv/bin/python3" ' + _readme_commands()[1]]


@pytest.mark.slow
def test_test_command_fails_when_pytest_collects_nothing():
    env = os.environ | {"PYTHON": sys.executable}
    result = subprocess.run(["bash", str(ROOT / "tools" / "test.sh"), "tests/core/test_configs.py", "-k",
                             "no_test_has_this_name", "-p", "no:cacheprovider"], capture_output=True, text=True,
                            env=env, cwd=ROOT, check=False)
    assert result.returncode == 1
    assert "tools/test.sh: error: pytest collected no tests (exit 5); nothing was tested" in result.stderr


def fake_python(folder: Path, label: str) -> Path:
    """A ``python3`` that prints its label and arguments instead of running anything."""
    folder.mkdir(parents=True, exist_ok=True)
    fake = folder / "python3"
    fake.write_text(f"#!/bin/sh\necho {label} python \"$@\"\n")
    fake.chmod(0o755)
    return fake


SERVE_RUN = "serve python -m pytest -q -x tests/runtime/test_serve.py tests/runtime/test_serve_gate.py tests/export/test_triton_repo.py"


def test_test_command_uses_the_checkouts_venv_in_a_new_shell(tmp_path):
    """No activated environment: .venv/bin/python3 (the README's install); an activated one wins; $PYTHON over both.
    The whole suite then runs the serving tests in the serving environment; a run of given paths does not."""
    checkout = tmp_path / "checkout"
    (checkout / "tools").mkdir(parents=True)
    (checkout / "tools" / "test.sh").write_text((ROOT / "tools" / "test.sh").read_text())
    (checkout / "tests").mkdir()
    (checkout / "tests" / "test_x.py").write_text("")
    fake_python(checkout / ".venv" / "bin", "venv")
    fake_python(tmp_path / "bin", "path")
    fake_python(checkout / ".venv-serve" / "bin", "serve")
    base = {"PATH": f"{tmp_path / 'bin'}:/usr/bin:/bin", "HOME": str(tmp_path)}

    def run(*args: str, **env: str) -> list[str]:
        done = subprocess.run(["bash", str(checkout / "tools" / "test.sh"), *args], capture_output=True, text=True,
                              env=base | env, cwd=tmp_path, check=True)
        return done.stdout.strip().splitlines()

    assert run("-x") == ["venv python -m pytest -q -x", SERVE_RUN]
    assert run("-x", VIRTUAL_ENV=str(tmp_path / "other")) == ["path python -m pytest -q -x", SERVE_RUN]
    assert run("-x", PYTHON=str(tmp_path / "bin" / "python3")) == ["path python -m pytest -q -x", SERVE_RUN]
    assert run("tests/test_x.py", "-x") == ["venv python -m pytest -q tests/test_x.py -x"]
    other = fake_python(tmp_path / "ci-serve" / "bin", "ci")
    assert run("-x", SERVE_PYTHON=str(other))[1] == SERVE_RUN.replace("serve python", "ci python")


def test_test_command_makes_the_serving_environment_when_missing(tmp_path):
    """No .venv-serve/: the test command makes it with tools/serve-env.sh (here a stand-in), then uses it."""
    checkout = tmp_path / "checkout"
    (checkout / "tools").mkdir(parents=True)
    (checkout / "tools" / "test.sh").write_text((ROOT / "tools" / "test.sh").read_text())
    maker = checkout / "tools" / "serve-env.sh"
    maker.write_text(f"#!/bin/sh\nmkdir -p .venv-serve/bin && printf '#!/bin/sh\\necho serve python \"$@\"\\n' "
                     f"> .venv-serve/bin/python3 && chmod +x .venv-serve/bin/python3\n")
    maker.chmod(0o755)
    fake_python(checkout / ".venv" / "bin", "venv")
    done = subprocess.run(["bash", str(checkout / "tools" / "test.sh"), "-x"], capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}, cwd=tmp_path, check=True)
    assert done.stdout.strip().splitlines() == ["venv python -m pytest -q -x", SERVE_RUN]
    assert "making the serving environment .venv-serve/ (tools/serve-env.sh)" in done.stderr


def test_serve_env_script_installs_the_serve_extra_beside_the_main_environment():
    script = (ROOT / "tools" / "serve-env.sh").read_text()
    assert 'venv="${SERVE_VENV:-.venv-serve}"' in script
    assert "\"$venv/bin/python3\" -m pip install -q -e '.[test,serve]'" in script
    assert "/.venv-serve/" in (ROOT / ".gitignore").read_text().splitlines()
