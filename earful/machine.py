"""The machine a measurement ran on, as the measuring script prints it (standard library only).

Speed figures differ several-fold between processors with and without AVX-512, VNNI or AMX, and int8
results can differ in the last digits between them, so every measured table is headed by
:func:`heading` of the :func:`stamp` its run recorded.
"""

from __future__ import annotations

import datetime as dt
import os
import platform
from pathlib import Path

#: Instruction-set flags that change onnxruntime's (int8) or torch's (bf16) speed, listed where present.
ISA_FLAGS = (
    "sse4_2",
    "avx",
    "avx2",
    "fma",
    "f16c",
    "avx512f",
    "avx512bw",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "sve",
    "bf16",
    "i8mm",
)

#: What a table says when the run that measured it did not record its machine.
NOT_RECORDED = "not recorded by the run that measured it"


def _cpuinfo_fields(cpuinfo: str) -> tuple[str, set[str]]:
    """Processor model and flags from the text of /proc/cpuinfo (x86 ``model name``/``flags``, Arm ``Features``)."""
    model, flags = "", set()
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key = key.strip()
        if key == "model name" and not model:
            model = value.strip()
        elif key in ("flags", "Features") and not flags:
            flags = set(value.split())
    return model, flags


def machine(cpuinfo: str | None = None, cores: int | None = None) -> str:
    """The processor in words: model, visible cores, vector extensions and the flags of :data:`ISA_FLAGS` it has.

    ``cpuinfo`` (the text of /proc/cpuinfo) and ``cores`` default to the machine this runs on.
    """
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text(errors="replace") if path.exists() else ""
    model, flags = _cpuinfo_fields(cpuinfo)
    model = model or platform.processor() or platform.machine() or "unknown processor"
    cores = cores if cores is not None else os.cpu_count()
    simd = "AVX-512" if "avx512f" in flags else "AVX2" if "avx2" in flags else "no AVX2"
    vnni = "VNNI" if flags & {"avx512_vnni", "avx_vnni"} else "no VNNI"
    amx = ", AMX" if flags & {"amx_int8", "amx_bf16"} else ""
    listed = " ".join(f for f in ISA_FLAGS if f in flags) or "none listed"
    return f"{model}, {cores} cores, {simd}, {vnni}{amx} (flags: {listed})"


def stamp(now: dt.datetime | None = None) -> dict[str, str]:
    """What a measuring run records beside its figures: ``machine`` and the UTC ``date``."""
    now = now or dt.datetime.now(dt.UTC)
    return {"machine": machine(), "date": now.strftime("%Y-%m-%d")}


def heading(record: dict | None) -> str:
    """The line a table of figures is headed by: the machine and date ``record`` (a :func:`stamp`, or a
    results file holding ``machine`` and ``date``) names, or that its run did not record them."""
    record = record or {}
    if not record.get("machine"):
        return f"Machine: {NOT_RECORDED}."
    date = f"; {record['date']}" if record.get("date") else ""
    return f"Machine: {record['machine']}{date}."
