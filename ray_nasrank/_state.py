"""State files that cannot run code: JSON for the structure, arrays for the numbers.

A strategy's, a searcher's or a ranker's state is a tree of plain values, numpy arrays, torch
tensors, random generators and objects of the package's own classes. :func:`encode` turns such
a tree into a JSON document and a dict of numeric arrays; :func:`decode` turns them back.
Nothing in a file names code to run: a class is written as its ``module:qualname``, and reading
it checks, *before any object is built*, that the module is one of the package's and that the
class itself opted in with :func:`state_class`. Objects are rebuilt without calling their
constructors (``cls.__new__``, then their saved attributes), or by the class's own
``_from_state`` hook. Anything else in a tree (a function, a lambda, a Ray actor handle, an
arbitrary object) is refused when *writing*, with the path to it, so a file never depends on it.

The containers: :func:`write_npz` / :func:`read_npz` (one ``.npz``, read with
``allow_pickle=False``) and :func:`write_torch` / :func:`read_torch` (read with
``torch.load(weights_only=True)``).

>>> import numpy as np
>>> doc, arrays = encode({"a": (1, 2.5, None), "x": np.arange(3)})
>>> back = decode(doc, arrays)
>>> back["a"], back["x"].tolist()
((1, 2.5, None), [0, 1, 2])
"""

from __future__ import annotations

import base64
import collections
import importlib
import io
import json
import os
from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

#: the version of the tree format (``format`` key of every container)
STATE_FORMAT = "ray_nasrank.state/1"
_TAG = "$t"
#: the numpy bit generators a saved ``numpy.random.Generator`` may name
_BIT_GENERATORS = ("PCG64", "PCG64DXSM", "MT19937", "Philox", "SFC64")


class StateError(ValueError):
    """A state file is not one the package wrote (corrupt, truncated, or naming a class it does not load)."""


def state_class(cls: type | None = None, *, skip: tuple[str, ...] = ()) -> Any:
    """Class decorator: instances of ``cls`` may be written to and read from state files.

    The instance is written as its ``__dict__`` (less ``skip`` and the class's ``_TRANSIENT``
    attributes), or as what its ``_to_state()`` returns; it is read back with
    ``cls._from_state(state)`` when the class defines it, else ``cls.__new__(cls)`` plus the saved
    attributes, then ``_restore_transient()`` when defined. Subclasses must opt in themselves.
    """

    def mark(c: type) -> type:
        c._state_codec = (c, tuple(skip))  # the class itself: a subclass does not inherit the mark
        return c

    return mark if cls is None else mark(cls)


def _opted_in(cls: type) -> bool:
    mark = cls.__dict__.get("_state_codec")
    return isinstance(mark, tuple) and len(mark) == 2 and mark[0] is cls


def class_name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def resolve_class(name: Any) -> type:
    """The class a state file names, after checking it is one of the package's opted-in classes."""
    if not isinstance(name, str) or name.count(":") != 1:
        raise StateError(f"not a class name: {name!r}")
    module, qualname = name.split(":")
    if module != "ray_nasrank" and not module.startswith("ray_nasrank."):
        raise StateError(f"refusing class {name!r}: state files only name the package's own classes")
    if not all(part.isidentifier() for part in module.split(".") + qualname.split(".")):
        raise StateError(f"not a class name: {name!r}")
    try:
        obj: Any = importlib.import_module(module)
    except ImportError:
        raise StateError(f"unknown class {name!r} (no module {module!r})") from None
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
    if not isinstance(obj, type) or not _opted_in(obj):
        raise StateError(f"refusing class {name!r}: it is not a class the package saves state of")
    return obj


# ---------------------------------------------------------------------- encode
class _Encoder:
    def __init__(self) -> None:
        self.arrays: dict[str, np.ndarray] = {}

    def array(self, a: np.ndarray) -> dict:
        key = f"a{len(self.arrays)}"
        self.arrays[key] = np.ascontiguousarray(a)
        return {_TAG: "nd", "k": key}

    def __call__(self, o: Any, path: str) -> Any:
        from ray_nasrank.spaces import INACTIVE

        if o is None or isinstance(o, (bool, str)):
            return o
        if isinstance(o, int) and type(o) is int:
            return o
        if isinstance(o, float) and type(o) is float:
            return o
        if o is INACTIVE:
            return {_TAG: "inactive"}
        if isinstance(o, np.ndarray):
            if o.dtype.kind in "biufc":
                return self.array(o)
            if o.dtype.kind == "U":
                return {_TAG: "ndU", "shape": list(o.shape), "v": o.ravel().tolist()}
            if o.dtype.kind == "O":
                return {_TAG: "ndO", "shape": list(o.shape),
                        "v": [self(v, f"{path}[{i}]") for i, v in enumerate(o.ravel().tolist())]}
            raise TypeError(f"{path}: cannot save an array of dtype {o.dtype}")
        if isinstance(o, np.generic):
            if o.dtype.kind not in "biuf":
                raise TypeError(f"{path}: cannot save a numpy scalar of dtype {o.dtype}")
            return {_TAG: "np", "dtype": o.dtype.str, "v": o.item()}
        if isinstance(o, np.random.Generator):
            return {_TAG: "rng", "state": self(o.bit_generator.state, f"{path}.state")}
        if isinstance(o, np.random.RandomState):
            return {_TAG: "randomstate", "state": self(o.get_state(legacy=False), f"{path}.state")}
        if type(o).__module__ == "torch" and type(o).__name__ in ("Tensor", "Parameter"):
            t = o.detach().cpu()
            return {_TAG: "tensor", "dtype": str(t.dtype).removeprefix("torch."), "a": self.array(t.numpy())}
        if type(o).__module__ == "torch" and type(o).__name__ == "device":
            return {_TAG: "device", "v": str(o)}
        if isinstance(o, (bytes, bytearray)):
            return {_TAG: "bytes", "v": base64.b64encode(bytes(o)).decode("ascii")}
        if isinstance(o, collections.OrderedDict):
            return {_TAG: "odict", "v": [[self(k, path), self(v, f"{path}[{k!r}]")] for k, v in o.items()]}
        if type(o) is dict:
            return {_TAG: "dict", "v": [[self(k, path), self(v, f"{path}[{k!r}]")] for k, v in o.items()]}
        if type(o) is list:
            return [self(v, f"{path}[{i}]") for i, v in enumerate(o)]
        if type(o) is tuple:
            return {_TAG: "tuple", "v": [self(v, f"{path}[{i}]") for i, v in enumerate(o)]}
        if type(o) in (set, frozenset):
            items = [self(v, f"{path}{{}}") for v in o]
            return {_TAG: type(o).__name__, "v": items}
        if type(o) is collections.deque:
            return {_TAG: "deque", "maxlen": o.maxlen, "v": [self(v, f"{path}[{i}]") for i, v in enumerate(o)]}
        cls = type(o)
        if _opted_in(cls):
            to_state = getattr(o, "_to_state", None)
            if to_state is not None:
                state = to_state()
            else:
                skip = set(cls._state_codec[1]) | set(getattr(cls, "_TRANSIENT", ()))
                state = {k: v for k, v in vars(o).items() if k not in skip}
            return {_TAG: "obj", "cls": class_name(cls), "state": self(state, f"{path}<{cls.__name__}>")}
        hook = _FOREIGN.get(f"{cls.__module__}:{cls.__qualname__}")
        if hook is not None:
            return {_TAG: "foreign", "kind": hook[0], "state": self(hook[1](o), f"{path}<{cls.__name__}>")}
        raise TypeError(f"{path or 'the state'}: cannot save a {cls.__module__}.{cls.__qualname__} "
                        f"({_short(o)}); state files hold data only (numbers, strings, arrays, the package's "
                        "own objects), never code or arbitrary objects")


def _short(o: Any) -> str:
    r = repr(o)
    return r if len(r) <= 80 else r[:77] + "..."


def encode(obj: Any) -> tuple[Any, dict[str, np.ndarray]]:
    """``(doc, arrays)``: a JSON-able document and the numeric arrays it refers to.

    Raises:
        TypeError: the tree holds something that is not data (the message gives its path).
    """
    enc = _Encoder()
    return enc(obj, ""), enc.arrays


# ---------------------------------------------------------------------- decode
class _Decoder:
    def __init__(self, arrays: Mapping[str, Any]) -> None:
        self.arrays = arrays

    def array(self, ref: Any) -> np.ndarray:
        if not isinstance(ref, dict) or ref.get(_TAG) != "nd" or ref.get("k") not in self.arrays:
            raise StateError(f"missing array {ref!r}")
        a = self.arrays[ref["k"]]
        if type(a).__module__ == "torch":
            a = a.numpy()
        if not isinstance(a, np.ndarray) or a.dtype.kind not in "biufc":
            raise StateError(f"array {ref['k']!r} is not numeric")
        return a

    def __call__(self, o: Any) -> Any:
        if o is None or isinstance(o, (bool, int, float, str)):
            return o
        if isinstance(o, list):
            return [self(v) for v in o]
        if not isinstance(o, dict) or not isinstance(o.get(_TAG), str):
            raise StateError(f"unexpected item in a state file: {_short(o)}")
        tag = o[_TAG]
        v = o.get("v")
        if tag == "nd":
            return self.array(o).copy()
        if tag == "dict":
            return {self._key(k): self(x) for k, x in self._pairs(v)}
        if tag == "odict":
            return collections.OrderedDict((self._key(k), self(x)) for k, x in self._pairs(v))
        if tag == "tuple":
            return tuple(self(x) for x in self._list(v))
        if tag == "set":
            return {self._key(x) for x in self._list(v)}
        if tag == "frozenset":
            return frozenset(self._key(x) for x in self._list(v))
        if tag == "deque":
            maxlen = o.get("maxlen")
            if maxlen is not None and (type(maxlen) is not int or maxlen < 0):
                raise StateError(f"bad deque length {maxlen!r}")
            return collections.deque((self(x) for x in self._list(v)), maxlen=maxlen)
        if tag == "inactive":
            from ray_nasrank.spaces import INACTIVE

            return INACTIVE
        if tag == "ndU":
            return np.asarray([str(x) for x in self._list(v)], dtype=str).reshape(self._shape(o))
        if tag == "ndO":
            items = [self(x) for x in self._list(v)]
            out = np.empty(len(items), dtype=object)
            for i, x in enumerate(items):
                out[i] = x
            return out.reshape(self._shape(o))
        if tag == "np":
            dtype = np.dtype(str(o.get("dtype")))
            if dtype.kind not in "biuf":
                raise StateError(f"bad numpy scalar dtype {dtype}")
            return dtype.type(v)
        if tag == "rng":
            state = self(o.get("state"))
            name = state.get("bit_generator") if isinstance(state, dict) else None
            if name not in _BIT_GENERATORS:
                raise StateError(f"unknown bit generator {name!r}")
            bg = getattr(np.random, name)()
            bg.state = state
            return np.random.Generator(bg)
        if tag == "randomstate":
            rs = np.random.RandomState()
            rs.set_state(self(o.get("state")))
            return rs
        if tag == "tensor":
            import torch

            return torch.from_numpy(self.array(o.get("a")).copy())
        if tag == "device":
            import torch

            return torch.device(str(v))
        if tag == "bytes":
            return base64.b64decode(str(v), validate=True)
        if tag == "obj":
            cls = resolve_class(o.get("cls"))  # checked before anything is built
            state = self(o.get("state"))
            from_state = cls.__dict__.get("_from_state")
            if from_state is not None:
                return getattr(cls, "_from_state")(state)
            if not isinstance(state, dict) or not all(isinstance(k, str) for k in state):
                raise StateError(f"the state of {o.get('cls')!r} is not a dict of attributes")
            obj = cls.__new__(cls)
            obj.__dict__.update(state)
            restore = getattr(obj, "_restore_transient", None)
            if restore is not None:
                restore()
            return obj
        if tag == "foreign":
            hook = _FOREIGN_BY_KIND.get(o.get("kind"))
            if hook is None:
                raise StateError(f"unknown object kind {o.get('kind')!r}")
            return hook(self(o.get("state")))
        raise StateError(f"unknown tag {tag!r} in a state file")

    def _key(self, k: Any) -> Any:
        key = self(k)
        try:
            hash(key)
        except TypeError:
            raise StateError(f"unhashable key {_short(key)}") from None
        return key

    @staticmethod
    def _list(v: Any) -> list:
        if not isinstance(v, list):
            raise StateError(f"expected a list, got {_short(v)}")
        return v

    def _pairs(self, v: Any) -> list:
        pairs = self._list(v)
        if not all(isinstance(p, list) and len(p) == 2 for p in pairs):
            raise StateError("a mapping's items are not [key, value] pairs")
        return pairs

    def _shape(self, o: dict) -> tuple[int, ...]:
        shape = o.get("shape")
        if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
            raise StateError(f"bad array shape {shape!r}")
        return tuple(shape)


def decode(doc: Any, arrays: Mapping[str, Any]) -> Any:
    """The tree :func:`encode` wrote (``arrays``: numpy arrays or torch tensors by key).

    Raises:
        StateError: the document is malformed or names a class the package does not load.
    """
    try:
        return _Decoder(arrays)(doc)
    except StateError:
        raise
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError, RecursionError) as e:
        raise StateError(f"malformed state ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------- objects of other libraries
def _gbdt_to_state(model: Any) -> dict:
    """A fitted scikit-learn ``GradientBoostingRegressor`` as the arrays that predict with it."""
    return TreeEnsemble.from_sklearn(model)._to_state()


def _tree_ensemble_from_state(state: Any) -> "TreeEnsemble":
    return TreeEnsemble._from_state(state)


#: ``module:qualname`` of a foreign class -> (kind, to_state); read back as ``_FOREIGN_BY_KIND[kind]``
_FOREIGN: dict[str, tuple[str, Callable[[Any], Any]]] = {
    "sklearn.ensemble._gb:GradientBoostingRegressor": ("tree_ensemble", _gbdt_to_state),
}
_FOREIGN_BY_KIND: dict[str, Callable[[Any], Any]] = {"tree_ensemble": _tree_ensemble_from_state}


@state_class
class TreeEnsemble:
    """The prediction of a fitted gradient-boosted regression-tree ensemble, from plain arrays.

    What a saved ranker's trust tree becomes when read back: it predicts exactly as the
    scikit-learn model it was taken from (the same float32 split tests, the same summation
    order), without unpickling anything.
    """

    def __init__(self, *, init: float, learning_rate: float, left: list[np.ndarray], right: list[np.ndarray],
                 feature: list[np.ndarray], threshold: list[np.ndarray], value: list[np.ndarray]) -> None:
        self.init, self.learning_rate = float(init), float(learning_rate)
        self.left, self.right, self.feature, self.threshold, self.value = left, right, feature, threshold, value

    @classmethod
    def from_sklearn(cls, model: Any) -> "TreeEnsemble":
        trees = [est[0].tree_ for est in model.estimators_]
        init = float(np.ravel(model.init_.constant_)[0]) if hasattr(model.init_, "constant_") else 0.0
        return cls(init=init, learning_rate=model.learning_rate,
                   left=[t.children_left.copy() for t in trees], right=[t.children_right.copy() for t in trees],
                   feature=[t.feature.copy() for t in trees], threshold=[t.threshold.copy() for t in trees],
                   value=[t.value[:, 0, 0].copy() for t in trees])

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float32).astype(np.float64)  # scikit-learn splits on float32 inputs
        out = np.full(x.shape[0], self.init, dtype=np.float64)
        rows = np.arange(x.shape[0])
        for left, right, feat, thr, val in zip(self.left, self.right, self.feature, self.threshold, self.value):
            node = np.zeros(x.shape[0], dtype=np.int64)
            while True:
                inner = left[node] != -1
                if not inner.any():
                    break
                go_left = x[rows, np.where(inner, feat[node], 0)] <= thr[node]
                node = np.where(inner, np.where(go_left, left[node], right[node]), node)
            out += self.learning_rate * val[node]
        return out

    def _to_state(self) -> dict:
        return {"init": self.init, "learning_rate": self.learning_rate, "left": self.left, "right": self.right,
                "feature": self.feature, "threshold": self.threshold, "value": self.value}

    @classmethod
    def _from_state(cls, state: Any) -> "TreeEnsemble":
        if not isinstance(state, dict):
            raise StateError("a tree ensemble's state is not a dict")
        try:
            parts = {k: [np.asarray(a) for a in state[k]] for k in ("left", "right", "feature", "threshold", "value")}
            n = len(parts["left"])
            if any(len(v) != n for v in parts.values()):
                raise StateError("a tree ensemble's arrays disagree in length")
            for i in range(n):
                size = parts["left"][i].size
                if any(parts[k][i].shape != (size,) for k in parts):
                    raise StateError(f"tree {i} of a tree ensemble has arrays of different sizes")
                for k in ("left", "right"):
                    kids = parts[k][i]
                    if kids.dtype.kind not in "iu" or ((kids != -1) & ((kids < 0) | (kids >= size))).any():
                        raise StateError(f"tree {i} of a tree ensemble links to nodes it does not have")
            return cls(init=float(state["init"]), learning_rate=float(state["learning_rate"]), **parts)
        except (KeyError, TypeError) as e:
            raise StateError(f"a tree ensemble's state is incomplete ({e})") from None


# ---------------------------------------------------------------------- containers
def _dump(doc: Any) -> str:
    return json.dumps(doc, allow_nan=True, separators=(",", ":"))


def _load_doc(text: str, path: Path) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, RecursionError) as e:
        raise StateError(f"{str(path)!r} is corrupt: its JSON does not parse ({e})") from None


def write_npz(path: str | os.PathLike, kind: str, obj: Any) -> Path:
    """Write ``obj`` to ``path`` (an ``.npz``: the JSON document plus the arrays), atomically.

    ``kind`` names what the file holds; :func:`read_npz` checks it.
    """
    from ray_nasrank._io import atomic_write_bytes

    doc, arrays = encode(obj)
    head = _dump({"format": STATE_FORMAT, "kind": kind, "doc": doc})
    buf = io.BytesIO()
    np.savez(buf, __state__=np.frombuffer(head.encode("utf-8"), dtype=np.uint8), **arrays)
    return atomic_write_bytes(path, buf.getvalue())


def read_npz(path: str | os.PathLike, kind: str) -> Any:
    """The object :func:`write_npz` wrote as ``kind`` (``allow_pickle=False``: nothing runs).

    Raises:
        StateError: not such a file (another format, another kind, corrupt, a refused class).
        FileNotFoundError: no file.
    """
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as z:
            files = dict(z.items())
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - zip, npy and value errors of a corrupt file all mean the same
        raise StateError(f"{str(path)!r} is not a state file the package wrote ({type(e).__name__}: {e})") from None
    head = files.pop("__state__", None)
    if head is None or head.dtype != np.uint8:
        raise StateError(f"{str(path)!r} is not a state file the package wrote (no state record)")
    return _check_head(_load_doc(head.tobytes().decode("utf-8", errors="replace"), path), path, kind, files)


def _check_head(head: Any, path: Path, kind: str, arrays: Mapping[str, Any]) -> Any:
    if not isinstance(head, dict) or head.get("format") != STATE_FORMAT:
        raise StateError(f"{str(path)!r} is not a state file of this version of the package "
                         f"(format {head.get('format') if isinstance(head, dict) else None!r})")
    if head.get("kind") != kind:
        raise StateError(f"{str(path)!r} holds {head.get('kind')!r}, not {kind!r}")
    try:
        return decode(head.get("doc"), arrays)
    except StateError as e:
        raise StateError(f"{str(path)!r}: {e}") from None


def write_torch(path: str | os.PathLike, kind: str, obj: Any) -> Path:
    """Write ``obj`` with ``torch.save`` as plain tensors and a JSON string, atomically
    (what ``torch.load(weights_only=True)`` reads)."""
    import torch

    from ray_nasrank._io import atomic_write_bytes

    doc, arrays = encode(obj)
    payload = {"format": STATE_FORMAT, "kind": kind, "json": _dump(doc),
               "tensors": {k: torch.from_numpy(a) for k, a in arrays.items()}}
    buf = io.BytesIO()
    torch.save(payload, buf)
    return atomic_write_bytes(path, buf.getvalue())


def read_torch(path: str | os.PathLike, kind: str) -> Any:
    """The object :func:`write_torch` wrote as ``kind``, read with ``torch.load(weights_only=True)``.

    Raises:
        StateError: not such a file (a pickle of objects, another kind, corrupt, a refused class).
        FileNotFoundError: no file.
    """
    import torch

    path = Path(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:  # noqa: BLE001 - the restricted unpickler's refusals and a truncated zip alike
        raise StateError(f"{str(path)!r} is not a file the package wrote or it is corrupt "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''})") from None
    if not isinstance(payload, dict) or not isinstance(payload.get("json"), str) \
            or not isinstance(payload.get("tensors"), dict):
        raise StateError(f"{str(path)!r} is not a state file of this version of the package")
    head = {"format": payload.get("format"), "kind": payload.get("kind"), "doc": _load_doc(payload["json"], path)}
    return _check_head(head, path, kind, payload["tensors"])


__all__ = ["STATE_FORMAT", "StateError", "TreeEnsemble", "decode", "encode", "read_npz", "read_torch",
           "resolve_class", "state_class", "write_npz", "write_torch"]
