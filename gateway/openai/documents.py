"""OpenAI ``file`` content parts as the run's documents: a data URL decoded to text, or a clear 400.

Pure (no fastapi, no grpc). Documents travel to the workers as text, so text formats are accepted (plain text,
Markdown, CSV, JSON, XML, YAML, ...); a PDF or any other binary format is refused with a message saying what to
send instead. A file part needs ``file_data``: this service has no Files API to resolve a ``file_id`` against.
"""

from __future__ import annotations

import base64
import binascii
import urllib.parse
from pathlib import PurePosixPath

from gateway.openai.protocol import FileIn, InvalidRequest

TEXT_TYPES = frozenset(
    {"application/json", "application/xml", "application/yaml", "application/x-yaml", "application/x-ndjson"}
)
# What a client that sends no useful media type (application/octet-stream) most likely means, by extension.
TEXT_EXTENSIONS = frozenset({".txt", ".md", ".markdown", ".csv", ".tsv", ".json", ".xml", ".yaml", ".yml", ".html"})


def document_text(file: FileIn, param: str) -> str:
    """The text of one file part; ``param`` names it in the error."""
    if file.file_data is None:
        if file.file_id is not None:
            raise InvalidRequest(
                f"{param}: file_id references are not supported (this service has no Files API); "
                "send the file inline as file_data, a data URL",
                param,
            )
        raise InvalidRequest(
            f"{param}: a file part needs file_data, a data URL such as data:text/plain;base64,…", param
        )
    media_type, data = _data_url(file.file_data, param)
    if not _is_text(media_type, file.filename):
        if media_type == "application/pdf":
            raise InvalidRequest(
                f"{param}: PDF documents are not supported: the workers receive documents as text. "
                "Send the document's text as text/plain or text/markdown",
                param,
            )
        raise InvalidRequest(
            f"{param}: files of type {media_type!r} are not supported; send text (text/plain, text/markdown, "
            "text/csv, application/json, ...)",
            param,
        )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidRequest(f"{param}: the file is not UTF-8 text", param) from None


def _data_url(url: str, param: str) -> tuple[str, bytes]:
    """(media type, bytes) of ``data:[<type>][;base64],<data>``."""
    header, comma, payload = url.partition(",")
    if not header.startswith("data:") or not comma:
        raise InvalidRequest(f"{param}: file_data must be a data URL (data:<media type>;base64,<data>)", param)
    media_type, *parameters = header.removeprefix("data:").split(";")
    if "base64" not in parameters:
        return media_type.strip().lower() or "text/plain", urllib.parse.unquote_to_bytes(payload)
    try:
        return media_type.strip().lower() or "text/plain", base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InvalidRequest(f"{param}: file_data is not valid base64", param) from None


def _is_text(media_type: str, filename: str | None) -> bool:
    if media_type.startswith("text/") or media_type in TEXT_TYPES:
        return True
    guessed = PurePosixPath(filename or "").suffix.lower()
    return media_type in ("", "application/octet-stream") and guessed in TEXT_EXTENSIONS
