"""AssemblyAI's OpenAPI spec as JSON Schema validators for tests.

Requests the service sends to AssemblyAI are checked against the provider's
own published spec (shared/reference/assemblyai-openapi.yml), so a renamed or
newly required field fails a test here instead of in production.
"""

from __future__ import annotations

import copy
import os
import re
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, FormatChecker, ValidationError
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

SPEC_RELATIVE = Path("reference") / "assemblyai-openapi.yml"
SPEC_URI = "urn:callscribe:assemblyai-openapi"
MERGED_PARAMS = "CallscribeTranscriptParamsAsServed"

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path:
    """The shared/ folder: $CALLSCRIBE_SHARED_DIR, else beside the repo."""
    override = os.environ.get("CALLSCRIBE_SHARED_DIR")
    return Path(override) if override else REPO_ROOT.parent / "shared"


def expected_path() -> Path:
    return shared_dir() / SPEC_RELATIVE


def spec_path() -> Path | None:
    """Path of the AssemblyAI OpenAPI file, or None when it is not there."""
    path = expected_path()
    return path if path.is_file() else None


def spec_or_skip() -> None:
    """For tests that exist to validate against the spec: skip (fail in CI) without it."""
    if spec_path() is None:
        from tests.skips import unavailable

        unavailable(f"AssemblyAI's OpenAPI spec is not at {expected_path()} (set CALLSCRIBE_SHARED_DIR)")


class _Yaml12Loader(yaml.CSafeLoader if yaml.__with_libyaml__ else yaml.SafeLoader):  # type: ignore[misc]
    """YAML 1.2 scalars: `no` (Norwegian) stays a string, dates stay strings.

    PyYAML follows YAML 1.1, which would turn the language code `no` in
    TranscriptLanguageCode into False and unquoted dates into date objects.
    """


_Yaml12Loader.yaml_implicit_resolvers = {
    first: [
        (tag, rx)
        for tag, rx in resolvers
        if tag not in ("tag:yaml.org,2002:bool", "tag:yaml.org,2002:timestamp")
    ]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool",
    re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"),
    list("tTfF"),
)


def load_spec() -> dict[str, Any]:
    """The parsed spec; FileNotFoundError names the path that was looked at."""
    path = spec_path()
    if path is None:
        looked_at = shared_dir() / SPEC_RELATIVE
        raise FileNotFoundError(
            f"AssemblyAI OpenAPI spec not found at {looked_at} "
            "(set CALLSCRIBE_SHARED_DIR to the shared/ folder)"
        )
    return _load(str(path))


@lru_cache(maxsize=4)
def _load(path: str) -> dict[str, Any]:
    with open(path, encoding="utf-8") as fh:
        return yaml.load(fh, Loader=_Yaml12Loader)  # noqa: S506 - a SafeLoader subclass


def _format_checker() -> FormatChecker:
    """Standard formats plus the spec's own `url` (absolute http(s) URL)."""
    checker = FormatChecker()

    @checker.checks("url")
    def is_url(value: object) -> bool:
        if not isinstance(value, str):
            return True
        parts = urlsplit(value)
        return parts.scheme in ("http", "https") and bool(parts.netloc)

    return checker


def _resolve_local(spec: dict[str, Any], ref: str) -> dict[str, Any]:
    node: Any = spec
    for part in ref.removeprefix("#/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@lru_cache(maxsize=4)
def _validators(path: str) -> tuple[Registry, FormatChecker]:
    """Registry whose root resource is the whole spec, plus merged params."""
    spec = copy.deepcopy(_load(path))
    schemas = spec["components"]["schemas"]
    properties: dict[str, Any] = {}
    required: list[str] = []
    for branch in schemas["TranscriptParams"]["allOf"]:
        if "$ref" in branch:
            branch = _resolve_local(spec, branch["$ref"])
        properties.update(branch.get("properties", {}))
        required += [name for name in branch.get("required", []) if name not in required]
    for name in ("audio_url", "speech_models"):
        if name not in required:
            required.append(name)
    # The spec's allOf of two closed objects rejects every body; the API
    # behaves like one closed object with the union of the properties.
    schemas[MERGED_PARAMS] = {
        "type": "object",
        "properties": properties,
        "additionalProperties": False,
        "required": required,
    }
    resource = Resource(contents=spec, specification=DRAFT202012)
    return Registry().with_resource(SPEC_URI, resource), _format_checker()


def component_validator(name: str) -> Draft202012Validator:
    """Validator for `#/components/schemas/<name>`, refs resolved in the spec."""
    load_spec()
    return _component_validator(str(spec_path()), name)


@lru_cache(maxsize=32)
def _component_validator(path: str, name: str) -> Draft202012Validator:
    registry, checker = _validators(path)
    schema = {"$ref": f"{SPEC_URI}#/components/schemas/{name}"}
    return Draft202012Validator(schema, registry=registry, format_checker=checker)


def transcript_params_validator() -> Draft202012Validator:
    """TranscriptParams as the API enforces it (see MERGED_PARAMS above)."""
    return component_validator(MERGED_PARAMS)


def validate_transcript_params(body: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError if AssemblyAI would reject the body."""
    errors = sorted(
        transcript_params_validator().iter_errors(body),
        key=lambda e: list(e.absolute_path),
    )
    if errors:
        raise errors[0]


def transcript_params_errors(body: dict[str, Any]) -> list[str]:
    """Every problem with the body, as `$.path: message` lines."""
    spec_or_skip()
    errors = transcript_params_validator().iter_errors(body)
    return sorted(f"{e.json_path}: {e.message}" for e in errors)


__all__ = [
    "ValidationError",
    "component_validator",
    "load_spec",
    "shared_dir",
    "spec_path",
    "transcript_params_errors",
    "transcript_params_validator",
    "validate_transcript_params",
]
