"""Process-wide state of one loaded PKCS#11 module (internal).

Why this exists:

* python-pkcs11 calls ``C_Initialize(NULL_PTR)``. Per PKCS#11 v2.40 base spec §5.4
  (``C_Initialize`` / ``CK_C_INITIALIZE_ARGS``) a NULL ``pInitArgs`` means the application
  promises not to call the library from several threads at once, and SoftHSM then turns
  its own locking off. So *every* call into one module must be serialised process-wide,
  not per session: all :class:`~hsm.keystore.KeyStore` objects on the same module share
  the lock held here.
* ``C_Finalize``/``C_Initialize`` (``lib.reinitialize()``) is the only way to see tokens
  created after the module was initialised, and it invalidates every session in the
  process. Session handles are small integers that SoftHSM reuses after a re-init, so a
  stale handle could silently address *another* store's new session. Each re-init bumps
  :attr:`generation`; a store whose session is from an older generation drops it without
  touching it.
* PKCS#11 sessions and logins do not survive ``fork()``: the child must call
  ``C_Initialize`` itself (v2.40 base, "applications and processes"). After a fork the
  child gets fresh locks and the module is re-initialised before its first use.
* Login is per application and token, not per session (CKR_USER_ALREADY_LOGGED_IN).
  :attr:`login_owner` records (weakly) which store performed the login per token serial,
  so a store can resume its own login after losing its session but never borrows a live
  store's login; a login whose owner is gone is cleared by re-initialising.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

import pkcs11
from pkcs11.exceptions import PKCS11Error

from hsm.errors import HsmUnavailable

if TYPE_CHECKING:
    from pkcs11._pkcs11 import lib as Pkcs11Lib

__all__ = ["Library", "library_for", "loaded_module_paths"]


class Library:
    """One PKCS#11 module as used by this process. Mutate only while holding :attr:`lock`."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.lock = threading.Lock()
        self.generation = 0
        self.login_owner: dict[bytes, weakref.ref[Any]] = {}
        self._lib: Pkcs11Lib | None = None
        self._needs_reinit = False

    def __repr__(self) -> str:
        return f"Library(path={self.path!r}, generation={self.generation})"

    @property
    def loaded(self) -> bool:
        return self._lib is not None

    def get(self) -> Pkcs11Lib:
        """Load (and after a fork re-initialise) the module. Caller holds :attr:`lock`."""
        if self._lib is None:
            try:
                self._lib = pkcs11.lib(self.path)
            except PKCS11Error as exc:
                raise HsmUnavailable(f"cannot load PKCS#11 module {self.path!r}: {exc}") from exc
            self._needs_reinit = False
            self._bump()
        elif self._needs_reinit:
            self.reinitialize()
        return self._lib

    def reinitialize(self) -> None:
        """``C_Finalize`` + ``C_Initialize``: closes all sessions, rescans slots."""
        lib = self._lib
        if lib is None:
            self.get()
            return
        self._needs_reinit = True  # stays set if finalize/initialize fails half-way
        try:
            lib.reinitialize()
        except PKCS11Error as exc:
            raise HsmUnavailable(f"cannot re-initialise PKCS#11 module {self.path!r}") from exc
        finally:
            self._bump()
        self._needs_reinit = False

    def request_reinit(self) -> None:
        """Re-initialise before the next use (after device-level errors)."""
        if self._lib is not None:
            self._needs_reinit = True

    def _bump(self) -> None:
        self.generation += 1
        self.login_owner.clear()  # C_Finalize logs every token out

    def _after_fork_in_child(self) -> None:
        self.lock = threading.Lock()
        self.request_reinit()
        self._bump()


_registry: dict[str, Library] = {}
_registry_lock = threading.Lock()


def library_for(module_path: str) -> Library:
    """The shared :class:`Library` for ``module_path`` (not loaded until first use)."""
    key = os.path.realpath(module_path)
    with _registry_lock:
        state = _registry.get(key)
        if state is None:
            state = _registry[key] = Library(key)
        return state


def loaded_module_paths() -> list[str]:
    """Paths of the modules this process has actually loaded through :func:`library_for`."""
    with _registry_lock:
        return [path for path, state in _registry.items() if state.loaded]


def _after_fork_in_child() -> None:
    global _registry_lock
    _registry_lock = threading.Lock()
    for state in _registry.values():
        state._after_fork_in_child()


os.register_at_fork(after_in_child=_after_fork_in_child)
