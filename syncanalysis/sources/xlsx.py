"""Reading a big worksheet on every core.

calamine parses one worksheet on one core (releasing the GIL while it does). A big sheet's XML is
cut at row boundaries into blocks of a few megabytes; each block becomes a small stand-alone
workbook (the original's workbook, styles and shared strings, stored uncompressed, with that slice
of rows) which a pool of threads parses while the caller converts the blocks already parsed.
Cutting only ever happens between two ``</row>`` elements of the plain (unprefixed) SpreadsheetML
a sheet normally has; a workbook of several sheets, a small sheet or an unusual one is read whole,
the plain way. Either way the caller gets the same cells.
"""

from __future__ import annotations

import io
import os
import posixpath
import re
import threading
import zipfile
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from queue import SimpleQueue
from typing import Any
from xml.etree import ElementTree

from python_calamine import CalamineWorkbook

BLOCK_BYTES = 6 << 20  # uncompressed sheet XML per block
MIN_SPLIT_BYTES = 16 << 20  # smaller sheets are parsed whole: the cutting would cost more than it saves
_READ = 1 << 20
_OPEN = b"<sheetData>"
_TAIL = b"</sheetData></worksheet>"
_ROW = re.compile(rb"<row[\s>/]")
_MAIN = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_RELS = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_DOC_RELS = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}"


class NotCuttable(Exception):
    """A block of the sheet turned out not to stand alone (a row without its number): read it whole."""


@dataclass
class Block:
    """Consecutive rows of a sheet as calamine gives them, and where they start (0-based)."""

    row: int
    col: int
    rows: list[list[Any]]
    converted: Any = None  # what ``convert`` made of the rows, in the thread that parsed them


def _parse(sheet: Any) -> Block:
    rows = sheet.to_python()
    start = sheet.start or (0, 0)
    return Block(int(start[0]), int(start[1]), rows)


def _sheet_part(z: zipfile.ZipFile) -> str | None:
    """The zip member of the workbook's only worksheet (None with several sheets or odd metadata)."""
    try:
        book = ElementTree.fromstring(z.read("xl/workbook.xml"))
        rels = ElementTree.fromstring(z.read("xl/_rels/workbook.xml.rels"))
    except (KeyError, ElementTree.ParseError):
        return None
    sheets = book.findall(f"{_MAIN}sheets/{_MAIN}sheet")
    if len(sheets) != 1:
        return None
    rid = sheets[0].get(f"{_DOC_RELS}id")
    target = next((r.get("Target") for r in rels.findall(f"{_RELS}Relationship") if r.get("Id") == rid), None)
    if not target:
        return None
    part = target.lstrip("/") if target.startswith("/") else posixpath.normpath(posixpath.join("xl", target))
    return part if part in z.NameToInfo else None


def _workbook(others: list[tuple[zipfile.ZipInfo, bytes]], part: str, *xml: bytes | memoryview) -> io.BytesIO:
    """A stored (uncompressed) workbook of ``others`` and the sheet ``part`` made of the pieces ``xml``."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as z:
        for info, data in others:
            z.writestr(info.filename, data)
        with z.open(part, "w") as w:  # written piece by piece: no joined copy of the block
            for piece in xml:
                w.write(piece)
    out.seek(0)
    return out


def _block(others: list[tuple[zipfile.ZipInfo, bytes]], part: str, prefix: bytes, pending: bytearray, cut: int,
           tail: bytes) -> io.BytesIO:
    """The workbook of ``pending[:cut]`` (a run of whole rows) between ``prefix`` and ``tail``."""
    with memoryview(pending) as view, view[:cut] as rows:
        return _workbook(others, part, prefix, rows, tail)


def _parse_block(buf: io.BytesIO, convert: Callable[[Block], Any] | None) -> Block:
    block = _parse(CalamineWorkbook.from_filelike(buf).get_sheet_by_index(0))
    if convert is not None:
        block.converted = convert(block)
    return block


def sheet_blocks(path: str | Path, workbook: Any, name: str, *, block_bytes: int | None = None,
                 min_bytes: int | None = None, workers: int | None = None,
                 convert: Callable[[Block], Any] | None = None) -> Generator[Block, None, None]:
    """The rows of sheet ``name`` in order, as one or more :class:`Block` s.

    Parameters
    ----------
    path
        The workbook file.
    workbook
        The open :class:`python_calamine.CalamineWorkbook` of ``path`` (used to read a sheet whole).
    name
        The sheet's name.
    block_bytes, min_bytes
        Size of a block's XML, and the sheet size from which it is cut into blocks (default
        :data:`BLOCK_BYTES` and :data:`MIN_SPLIT_BYTES`).
    workers
        Threads parsing blocks (default: the number of cores, at most 4).
    convert
        Called on each block in the thread that parsed it (its result is ``Block.converted``), so
        the conversion of one block overlaps the inflating and cutting of the next ones.

    Raises
    ------
    NotCuttable
        When a block cannot stand alone (it starts with a row that carries no row number ``r``, or
        a part of the workbook is one Python's zipfile cannot read), after the blocks before it:
        read the sheet whole (``workers=1``).
    Exception
        Whatever calamine or :mod:`zipfile` raise on a corrupt workbook (the caller names the file).
    """
    workers = workers or min(4, os.cpu_count() or 1)
    blocks = _cut(path, block_bytes or BLOCK_BYTES, MIN_SPLIT_BYTES if min_bytes is None else min_bytes,
                  workers) if workers > 1 else None
    if blocks is None:
        yield _parse(workbook.get_sheet_by_name(name))
        return
    pool = ThreadPoolExecutor(workers, thread_name_prefix="syncanalysis-xlsx")
    queue: SimpleQueue[Future[Block] | BaseException | None] = SimpleQueue()
    stop = threading.Event()
    slots = threading.BoundedSemaphore(2 * workers)  # blocks cut but not yet taken: bounds the memory ahead

    def produce() -> None:  # inflates and cuts (zlib releases the GIL) while the caller converts
        try:
            for buf in blocks:
                while not slots.acquire(timeout=0.05):
                    if stop.is_set():
                        return
                if stop.is_set():
                    return
                queue.put(pool.submit(_parse_block, buf, convert))
        except BaseException as exc:  # raised to the caller in its turn, after the blocks before it
            queue.put(exc)
        finally:
            try:
                blocks.close()
            finally:
                queue.put(None)

    producer = threading.Thread(target=produce, name="syncanalysis-xlsx-cut", daemon=True)
    producer.start()
    try:
        while (item := queue.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            block = item.result()
            slots.release()
            yield block
    finally:
        stop.set()
        producer.join()
        pool.shutdown(wait=True, cancel_futures=True)


def _cut(path: str | Path, block_bytes: int, min_bytes: int, workers: int) -> Generator[io.BytesIO, None, None] | None:
    """Stand-alone workbooks of consecutive row slices of the only sheet, or None to read it whole."""
    try:
        z = zipfile.ZipFile(path)
    except Exception:  # e.g. an .xls (BIFF) workbook: calamine reads it, and says what is wrong if anything
        return None
    try:
        part = _sheet_part(z)
        size = z.getinfo(part).file_size if part is not None else 0
        if part is None or size < min_bytes:
            z.close()
            return None
        # every block's workbook parses the shared strings again: with many, cut only one block per thread
        shared = sum(i.file_size for i in z.infolist() if i.filename.lower().endswith("sharedstrings.xml"))
        if shared > size // 8:
            block_bytes = max(block_bytes, size // workers + (1 << 16))
        with z.open(part) as f:
            head = f.read(_READ)
    except Exception:  # a zip feature Python lacks (calamine may not), or damage: calamine reads it whole
        z.close()
        return None
    at = head.find(_OPEN)
    if at < 0 or not re.search(rb"<worksheet[\s>]", head[:at]) or not _numbered(head, at):
        z.close()
        return None  # prefixed or unusual XML, or rows without numbers: calamine reads it whole

    def gen() -> Generator[io.BytesIO, None, None]:
        with z:
            try:
                others = [(i, z.read(i)) for i in z.infolist() if i.filename != part and not i.is_dir()]
            except Exception as exc:  # parts calamine may never need to read: let it read the sheet whole
                raise NotCuttable from exc
            with z.open(part) as f:
                data = f.read(_READ)
                start = data.find(_OPEN) + len(_OPEN)
                prefix, pending = data[:start], bytearray(data[start:])
                while True:
                    piece = f.read(_READ)
                    pending += piece
                    while len(pending) >= block_bytes:
                        at = pending.rfind(b"</row>", 0, block_bytes)
                        if at < 0:  # a row longer than a block
                            at = pending.find(b"</row>", block_bytes)
                        if at < 0:
                            break  # read on to the row's end
                        cut = at + len(b"</row>")
                        if not _numbered(pending, 0):
                            raise NotCuttable
                        yield _block(others, part, prefix, pending, cut, _TAIL)
                        del pending[:cut]
                    if not piece:  # the last rows, with the sheet's own end
                        if not _numbered(pending, 0):
                            raise NotCuttable
                        yield _block(others, part, prefix, pending, len(pending), b"")
                        return

    return gen()


def _numbered(xml: bytes | bytearray, start: int) -> bool:
    """Whether the first row from ``start`` (if any starts there) carries its row number ``r``.

    Rows without it are numbered by their place, which a block alone would count from its own start.
    """
    m = _ROW.search(xml, start)
    if m is None:
        return True
    end = xml.find(b">", m.start())
    tag = xml[m.start():end if end >= 0 else len(xml)]
    return re.search(rb"\sr\s*=", tag) is not None
