"""Exceptions of the export package: each message is one line naming the file, key or tensor."""

from __future__ import annotations


class ExportError(ValueError):
    """Base class: an export or import cannot proceed; the message says what and where."""


class UnsupportedShapeError(ExportError):
    """A tensor's shape cannot be held by the chosen format (e.g. GGUF TQ rows not % 256)."""


class PackedFileError(ExportError):
    """A native packed file is unreadable or inconsistent (base of the specific errors below)."""


class TruncatedFileError(PackedFileError):
    """The file is shorter than its header says."""


class FormatVersionError(PackedFileError):
    """Unknown format name or a version this code does not read."""


class LayoutError(PackedFileError):
    """Unknown trit layout, or packed bytes that are not valid codes of the layout."""


class MissingTensorError(PackedFileError):
    """A tensor the model config requires is absent."""


class TensorShapeError(PackedFileError):
    """A tensor's shape or dtype does not match what the model config requires."""


class MetadataError(PackedFileError):
    """A required metadata key is missing or its value is malformed."""


class HFImportError(ExportError):
    """A Hugging Face directory cannot be imported (config, tensor names, shapes)."""
