"""Imported by the enumeration workers' fork server: loads the compiled kernels once, before workers fork."""

from maso import kernels as _kernels

_kernels.warm()
