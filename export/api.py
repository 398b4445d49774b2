"""``export_checkpoint``: one checkpoint -> one file format, with a size report."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from export import formats as fmt
from export.errors import ExportError
from export.source import open_checkpoint


@dataclass(frozen=True)
class ExportReport:
    format: str
    path: Path
    file_bytes: int  # the written weights file (HF: model.safetensors)
    ternary_bytes: int  # its linears (packed trits + scales; HF: effective weights)
    ternary_bf16_bytes: int  # the same linears as bf16
    step: int

    def summary(self) -> str:
        mib = 2**20
        return (
            f"wrote {self.path} ({self.format}, step {self.step}): "
            f"{self.file_bytes / mib:.2f} MiB; "
            f"linears {self.ternary_bytes / mib:.2f} MiB vs {self.ternary_bf16_bytes / mib:.2f} "
            f"MiB as bf16 ({self.ternary_bytes / self.ternary_bf16_bytes:.3f}x)"
        )


def export_checkpoint(
    checkpoint: str | Path,
    format_name: str,
    out: str | Path,
    *,
    hf_dtype: str = "bfloat16",
    progress: bool = False,
) -> ExportReport:
    """Restore ``checkpoint`` once and write it as ``format_name`` (see export.formats) at
    ``out`` (a file; a directory for ``hf``)."""
    if format_name not in fmt.EXPORT_FORMATS:
        raise ExportError(f"format {format_name!r}: expected one of {fmt.EXPORT_FORMATS}")
    out = Path(out)
    if format_name == fmt.FORMAT_HF and out.exists() and not out.is_dir():
        raise ExportError(f"--out {out} is a file; the hf format writes a directory")
    if format_name != fmt.FORMAT_HF and out.is_dir():
        raise ExportError(f"--out {out} is a directory; {format_name} writes one file")
    source = open_checkpoint(checkpoint)
    if format_name in fmt.NATIVE_LAYOUT_OF_FORMAT:
        from export.native import write_native

        sizes = write_native(source, out, fmt.NATIVE_LAYOUT_OF_FORMAT[format_name], progress)
    elif format_name == fmt.FORMAT_HF:
        from export.hf import write_hf

        sizes = write_hf(source, out, hf_dtype, progress)
        out = out / fmt.HF_WEIGHTS_FILE
    else:
        from export.gguf_export import write_gguf

        out.parent.mkdir(parents=True, exist_ok=True)
        sizes = write_gguf(source, out, format_name, progress)
    from export.native import linear_shapes

    n = sum(L * k * m for L, k, m in linear_shapes(source.config).values())
    return ExportReport(format_name, out, sizes["file"], sizes["ternary"], 2 * n, source.step)
