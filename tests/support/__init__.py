"""Test support for gofleet.cache: real Go caches made offline.

Pure standard library; importable from the repository root as ``tests.support``.

- :mod:`tests.support.goproxy` writes a ``file://`` GOPROXY (``write_proxy``,
  ``default_modules``) and a consumer project (``write_project``).
- :mod:`tests.support.gorun` finds the Go toolchain (``find_go``) and runs it as
  a given (non-root) user with an explicit, HOME-independent environment
  (``go_env``, ``run_go``, ``populate_caches``, ``reset_caches``).
"""
