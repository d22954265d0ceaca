"""Files of the Gemini emulator: the resumable upload protocol the SDK speaks, ``files.get/list/
delete`` and the download of generated (batch result) files."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from support.emulators.gemini.wire import (
    CHUNK_GRANULARITY,
    ApiError,
    Response,
    Route,
    StoredFile,
    Upload,
    either_field,
    json_response,
    parse_json_body,
    timestamp,
    utc_now,
)


class FilesMixin:
    """The file handlers of :class:`~support.emulators.gemini.GeminiEmulator`;
    the state they use is set up in its ``__init__``."""

    if TYPE_CHECKING:  # provided by GeminiEmulator and the other mixins

        @property
        def url(self) -> str: ...

        def _page(self, items: list[Any], query: Mapping[str, str]) -> tuple[list[Any], str | None]: ...

    def _file_wire(self, file: StoredFile) -> dict[str, Any]:
        file_id = file.name.split("/", 1)[1]
        wire: dict[str, Any] = {"name": file.name}
        if file.display_name:
            wire["displayName"] = file.display_name
        wire.update(
            {
                "mimeType": file.mime_type,
                "sizeBytes": str(len(file.data)),
                "createTime": timestamp(file.create_time),
                "updateTime": timestamp(file.create_time),
                "expirationTime": timestamp(file.create_time + timedelta(hours=48)),
                "sha256Hash": base64.b64encode(hashlib.sha256(file.data).hexdigest().encode()).decode(),
                "uri": f"{self.url}/v1beta/files/{file_id}",
                "state": "ACTIVE",
                "source": file.source,
            }
        )
        if file.source == "GENERATED":
            wire["downloadUri"] = f"{self.url}/download/v1beta/files/{file_id}:download?alt=media"
        return wire

    def _h_upload_start(self, route: Route, headers: Mapping[str, str], body: bytes) -> Response:
        if headers.get("x-goog-upload-protocol", "").lower() != "resumable":
            raise ApiError(400, "Only the resumable upload protocol is emulated.")
        if headers.get("x-goog-upload-command", "").lower() != "start":
            raise ApiError(400, "Expected X-Goog-Upload-Command: start.")
        payload = parse_json_body(body)
        meta = payload.get("file") or {}
        declared = headers.get("x-goog-upload-header-content-length")
        mime_type = (
            headers.get("x-goog-upload-header-content-type")
            or either_field(meta, "mimeType", "mime_type")
            or "application/octet-stream"
        )
        name = meta.get("name")
        with self._lock:
            if name and name in self._files:
                raise ApiError(409, f"File {name} already exists.", "ALREADY_EXISTS")
            upload_id = secrets.token_urlsafe(24)
            self._uploads[upload_id] = Upload(
                upload_id=upload_id,
                declared_size=int(declared) if declared else None,
                mime_type=mime_type,
                name=name,
                display_name=either_field(meta, "displayName", "display_name"),
            )
        upload_url = (
            f"{self.url}/upload/{route.version}/files?upload_id={upload_id}&upload_protocol=resumable"
        )
        return Response(
            200,
            b"",
            {
                "X-Goog-Upload-Status": "active",
                "X-Goog-Upload-URL": upload_url,
                "X-Goog-Upload-Control-URL": upload_url,
                "X-Goog-Upload-Chunk-Granularity": str(CHUNK_GRANULARITY),
                "Content-Type": "text/plain; charset=utf-8",
            },
        )

    def _h_upload_chunk(self, query: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Response:
        command = {c.strip() for c in headers.get("x-goog-upload-command", "").lower().split(",")}
        with self._lock:
            upload = self._uploads.get(query.get("upload_id", ""))
            if upload is None:
                raise ApiError(404, "Upload session not found.", "NOT_FOUND")
            if "query" in command:
                return Response(
                    200,
                    b"",
                    {
                        "X-Goog-Upload-Status": "active",
                        "X-Goog-Upload-Size-Received": str(len(upload.buffer)),
                    },
                )
            if "upload" in command:
                offset = int(headers.get("x-goog-upload-offset") or 0)
                if offset != len(upload.buffer):
                    raise ApiError(
                        400,
                        f"Invalid upload offset {offset}, expected {len(upload.buffer)}.",
                    )
                upload.buffer.extend(body)
            if "finalize" not in command:
                return Response(200, b"", {"X-Goog-Upload-Status": "active"})
            del self._uploads[upload.upload_id]
            if upload.declared_size is not None and upload.declared_size != len(upload.buffer):
                raise ApiError(
                    400,
                    f"Upload size {len(upload.buffer)} does not match the declared "
                    f"X-Goog-Upload-Header-Content-Length {upload.declared_size}.",
                )
            name = upload.name or f"files/{secrets.token_hex(6)}"
            file = StoredFile(
                name=name,
                display_name=upload.display_name,
                mime_type=upload.mime_type,
                data=bytes(upload.buffer),
                create_time=utc_now(),
                source="UPLOADED",
            )
            self._files[name] = file
            self._uploaded_sizes.append(len(file.data))
            response = json_response({"file": self._file_wire(file)})
            response.headers["X-Goog-Upload-Status"] = "final"
            return response

    def _file_or_raise(self, name: str) -> StoredFile:
        file = self._files.get(name)
        if file is None:
            file_id = name.split("/", 1)[-1]
            raise ApiError(
                403,
                f"You do not have permission to access the File {file_id} or it may not exist.",
                "PERMISSION_DENIED",
            )
        return file

    def _h_file_get(self, name: str) -> Response:
        with self._lock:
            return json_response(self._file_wire(self._file_or_raise(name)))

    def _h_file_list(self, query: Mapping[str, str]) -> Response:
        with self._lock:
            files = sorted(self._files.values(), key=lambda f: f.create_time)
            page, token = self._page(files, query)
            out: dict[str, Any] = {}
            if page:
                out["files"] = [self._file_wire(f) for f in page]
            if token:
                out["nextPageToken"] = token
            return json_response(out)

    def _h_file_delete(self, name: str) -> Response:
        with self._lock:
            self._file_or_raise(name)
            del self._files[name]
            return json_response({})

    def _h_file_download(self, name: str, query: Mapping[str, str]) -> Response:
        with self._lock:
            file = self._file_or_raise(name)
            if file.source != "GENERATED":
                raise ApiError(
                    400,
                    f"Only generated files can be downloaded; {name} has source {file.source}.",
                    "INVALID_ARGUMENT",
                )
            if query.get("alt") != "media":
                return json_response(self._file_wire(file))
            return Response(200, file.data, {"Content-Type": file.mime_type})
