"""The twin as data: a JSON document plus numeric buffers, read back into the twin's own classes only.

Storing the simulation must not let a workspace file someone sends you run code when it is opened. So the
twin is written as plain data — JSON for its structure and scalars, raw little arrays (``numpy`` dtype and
shape named in the JSON) for its columns — and read back by constructing only the classes listed in
:data:`CLASSES`, with their attributes set from that data; any other type name in a document is refused.
Text columns (record keys, names, error texts) are stored as one UTF-8 buffer with character offsets, so a million
error texts do not become a million JSON strings. Objects referenced twice (the random generator the
simulation shares with its world, a mapping's configuration) are stored once and shared again on reading.
"""

from __future__ import annotations

import datetime as dt
import json
import weakref
from typing import Any

import numpy as np

from ..errors import TwinError
from . import engine, model, scenario

FORMAT = "syncanalysis-twin/2"
CLASSES: dict[str, type] = {c.__name__: c for c in (
    scenario.Simulation, scenario.ScenarioConfig, scenario.Incident, scenario.JobQueueEntry, engine.World,
    engine.Job, engine.ErrorLog, model.TableState, model.MappingConfig, model.FieldMapping, model.Parent)}
_NUMERIC = set("biufcU?")  # numpy kinds stored as raw bytes (U: fixed-width text, e.g. GUID columns)
# id(array) -> (weak reference, its values, their encoding): a twin is stored after every action, and most of
# its text columns (keys, names) did not change since; comparing the values is far cheaper than encoding them
Encodings = dict[int, tuple[weakref.ref, list, tuple[bytes, bytes, bytes]]]


def _remember(encodings: Encodings, a: np.ndarray, flat: list, encoded: tuple[bytes, bytes, bytes]) -> None:
    """Keep ``a``'s encoding while ``a`` lives (the entry goes with the array: a long session keeps no old twins)."""
    key = id(a)

    def gone(ref: weakref.ref, key: int = key) -> None:
        if encodings.get(key, (None,))[0] is ref:  # not a newer array that took the same id
            del encodings[key]

    encodings[key] = (weakref.ref(a, gone), flat, encoded)


class _Encoder:
    def __init__(self, encodings: Encodings | None = None) -> None:
        self.buffers: list[bytes] = []
        self.encodings: Encodings = {} if encodings is None else encodings
        self.memo: dict[int, int] = {}

    def buffer(self, data: bytes) -> int:
        self.buffers.append(data)
        return len(self.buffers) - 1

    def array(self, a: np.ndarray) -> dict[str, Any]:
        if a.dtype.kind in _NUMERIC:
            a = np.ascontiguousarray(a)
            return {"$a": self.buffer(a.tobytes()), "dtype": a.dtype.str, "shape": list(a.shape)}
        if a.dtype == object:
            flat = a.ravel().tolist()
            hit = self.encodings.get(id(a))
            if hit is not None and hit[0]() is a and hit[1] == flat:
                data, offsets, missing = hit[2]
            elif all(v is None or isinstance(v, str) for v in flat):
                # one join and one encode (C speed) instead of one per value; offsets count characters
                filled = ["" if v is None else v for v in flat]
                ends = np.cumsum(np.fromiter(map(len, filled), np.int64, len(filled)))
                data = "".join(filled).encode("utf-8")
                offsets = np.concatenate([np.zeros(1, np.int64), ends]).tobytes()
                missing = np.fromiter((v is None for v in flat), bool, len(flat)).tobytes()
                _remember(self.encodings, a, flat, (data, offsets, missing))
            else:
                return {"$objects": [self.value(v) for v in flat], "shape": list(a.shape)}
            return {"$text": self.buffer(data), "offsets": self.buffer(offsets), "none": self.buffer(missing),
                    "shape": list(a.shape)}
        raise TwinError(f"The twin holds an array of {a.dtype}, which cannot be stored as data.")

    def value(self, v: Any) -> Any:
        if v is None or isinstance(v, (bool, str)):
            return v
        if isinstance(v, (int, np.integer)):
            return int(v)
        if isinstance(v, (float, np.floating)):
            return {"$float": repr(float(v))}  # keeps nan/inf exact
        if isinstance(v, np.bool_):
            return bool(v)
        if isinstance(v, np.ndarray):
            return self.array(v)
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if isinstance(v, tuple):
            return {"$tuple": [self.value(x) for x in v]}
        if isinstance(v, (set, frozenset)):
            return {"$set": [self.value(x) for x in sorted(v, key=repr)]}
        if isinstance(v, dict):
            return {"$dict": [[self.value(k), self.value(x)] for k, x in v.items()]}
        if isinstance(v, dt.datetime):
            return {"$datetime": v.isoformat()}
        if id(v) in self.memo:
            return {"$ref": self.memo[id(v)]}
        if isinstance(v, np.random.Generator):
            self.memo[id(v)] = ref = len(self.memo)
            return {"$rng": ref, "state": self.value(v.bit_generator.state)}
        name = type(v).__name__
        if CLASSES.get(name) is not type(v):
            raise TwinError(f"The twin holds a {type(v).__module__}.{name}, which cannot be stored as data "
                            "(only its own classes, arrays and plain values can).")
        self.memo[id(v)] = ref = len(self.memo)
        return {"$object": name, "ref": ref, "attrs": {k: self.value(x) for k, x in vars(v).items()}}


class _Decoder:
    def __init__(self, buffers: list[bytes | bytearray], encodings: Encodings | None = None) -> None:
        self.buffers = buffers
        self.memo: dict[int, Any] = {}
        self.encodings = encodings

    def array(self, d: dict[str, Any]) -> np.ndarray:
        shape = tuple(d["shape"])
        if "$a" in d:
            # a writable copy: the twin changes its arrays in place
            return np.frombuffer(bytearray(self.buffers[d["$a"]]), dtype=np.dtype(d["dtype"])).reshape(shape)
        if "$text" in d:
            data, ends, nones = (bytes(self.buffers[d[k]]) for k in ("$text", "offsets", "none"))
            text = data.decode("utf-8")
            offsets = np.frombuffer(ends, dtype=np.int64).tolist()
            missing = np.frombuffer(nones, dtype=bool)
            out = np.empty(len(missing), dtype=object)
            out[:] = [text[a:b] for a, b in zip(offsets[:-1], offsets[1:])]
            out[missing] = None
            out = out.reshape(shape)
            if self.encodings is not None:  # what it was read from is its encoding until it changes
                _remember(self.encodings, out, out.ravel().tolist(), (data, ends, nones))
            return out
        out = np.empty(len(d["$objects"]), dtype=object)
        out[:] = [self.value(v) for v in d["$objects"]]
        return out.reshape(shape)

    def value(self, v: Any) -> Any:
        if not isinstance(v, (dict, list)):
            return v
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if "$a" in v or "$text" in v or "$objects" in v:
            return self.array(v)
        if "$float" in v:
            return float(v["$float"])
        if "$tuple" in v:
            return tuple(self.value(x) for x in v["$tuple"])
        if "$set" in v:
            return {self.value(x) for x in v["$set"]}
        if "$dict" in v:
            return {self.value(k): self.value(x) for k, x in v["$dict"]}
        if "$datetime" in v:
            return dt.datetime.fromisoformat(v["$datetime"])
        if "$ref" in v:
            return self.memo[v["$ref"]]
        if "$rng" in v:
            rng = np.random.default_rng()
            rng.bit_generator.state = self.value(v["state"])
            self.memo[v["$rng"]] = rng
            return rng
        if "$object" in v:
            cls = CLASSES.get(v["$object"])
            if cls is None:
                raise TwinError(f"The stored twin names an unknown type {v['$object']!r}; it is not read.")
            obj = cls.__new__(cls)  # no __init__: the attributes below are the whole state
            self.memo[v["ref"]] = obj
            object.__getattribute__(obj, "__dict__").update({k: self.value(x) for k, x in v["attrs"].items()})
            return obj
        raise TwinError(f"The stored twin has a value this version cannot read: {sorted(v)[:3]}.")


def dumps(sim: Any, encodings: Encodings | None = None) -> tuple[bytes, list[bytes]]:
    """The twin as ``(document, buffers)``: UTF-8 JSON and the raw bytes it refers to by position.

    ``encodings`` keeps the text arrays' encodings for the next call (the caller owns it, e.g. a workspace).
    """
    enc = _Encoder(encodings)
    doc = {"format": FORMAT, "root": enc.value(sim)}
    return json.dumps(doc, separators=(",", ":")).encode("utf-8"), enc.buffers


def loads(document: bytes, buffers: list[bytes | bytearray], encodings: Encodings | None = None) -> Any:
    """Read a twin written by :func:`dumps`; anything that is not such a document is refused.

    ``encodings`` (as for :func:`dumps`) gets the text arrays' stored bytes: saving them unchanged encodes nothing.
    """
    try:
        doc = json.loads(bytes(document).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise TwinError("The stored twin is not in the data format of this syncanalysis (it may have been written "
                        "by an older version, in a format that could run code when read, so it is not read). "
                        "Rebuild the workspace: delete the file and run `syncanalysis demo` (or `syncanalysis "
                        "simulate --workspace FILE`).") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise TwinError(f"The stored twin has format {doc.get('format') if isinstance(doc, dict) else None!r}; "
                        f"this syncanalysis reads {FORMAT!r}. Rebuild the workspace (`syncanalysis demo`).")
    return _Decoder(buffers, encodings).value(doc["root"])


__all__ = ["CLASSES", "FORMAT", "dumps", "loads"]
