"""One mechanism for every name -> thing table of cnnlab: models, tasks and datasets.

A :class:`Registry` is filled by the modules that define its entries (``@register_model`` in a family file,
``register_task(...)`` in a task module) and read by the layers below them, which never import those
modules. What fills the tables is imported on the first look-up by :func:`load_plugins`: the packages
listed in :data:`BUILTIN_PLUGINS` (configuration, like Django's ``INSTALLED_APPS``) and every package a
third party declares in the ``cnnlab.plugins`` entry-point group of its ``pyproject.toml``::

    [project.entry-points."cnnlab.plugins"]
    mydetector = "mypackage.cnnlab_plugin"     # importing it calls register_model / register_task

So ``TrainConfig(task="segmentation")`` and ``create_model("fcn8s_vgg16")`` work without the user
importing anything, and an unknown name is one error naming the known ones (with close matches).
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterator
from importlib.metadata import entry_points
from typing import Generic, TypeVar

from cnnlab.errors import CnnlabError, ConfigError

#: Packages whose import registers models, tasks or datasets, in dependency order.
BUILTIN_PLUGINS = ("cnnlab.models", "cnnlab.train.task", "cnnlab.segmentation", "cnnlab.detection")
ENTRY_POINT_GROUP = "cnnlab.plugins"

_state = {"loaded": False}


def load_plugins() -> None:
    """Import every built-in and installed plugin package once (their imports fill the registries)."""
    if _state["loaded"]:
        return
    _state["loaded"] = True  # set first: a plugin that looks a name up while importing must not recurse
    for name in BUILTIN_PLUGINS:
        importlib.import_module(name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        ep.load()


T = TypeVar("T")


class Registry(Generic[T]):
    """``name -> entry`` with registration, listing and one-line errors for unknown names."""

    def __init__(self, kind: str, error: type[CnnlabError] = ConfigError, hint: str = ""):
        self.kind = kind  # "model", "task", ... in messages
        self.error = error
        self.hint = hint  # where the user finds the full list; "{n}" becomes the number of entries
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T) -> T:
        """Add ``name``; registering a name twice is a bug (two modules claiming it)."""
        if name in self._entries and self._entries[name] is not entry:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry
        return entry

    def names(self) -> list[str]:
        load_plugins()
        return sorted(self._entries)

    def items(self) -> Iterator[tuple[str, T]]:
        load_plugins()
        return iter(sorted(self._entries.items()))

    def __contains__(self, name: object) -> bool:
        load_plugins()
        return name in self._entries

    def __len__(self) -> int:
        load_plugins()
        return len(self._entries)

    def get(self, name: str) -> T:
        """The entry of ``name``; an unknown name raises ``self.error`` with close matches and the known ones."""
        load_plugins()
        try:
            return self._entries[name]
        except KeyError:
            raise self.error(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(str(name), self._entries, n=3, cutoff=0.5)
        if close:
            hint = f"; did you mean {', '.join(close)}?"
        elif len(self._entries) <= 12:
            hint = f"; use one of {', '.join(sorted(self._entries))}"
        else:
            hint = ""
        more = f" ({self.hint.format(n=len(self._entries))})" if self.hint else ""
        return f"unknown {self.kind} {name!r}{hint}{more}"


#: Training tasks: ``TrainConfig.task`` -> a factory of :class:`cnnlab.train.task.Task` (``register_task``).
TASKS: Registry = Registry("task")
